"""Quotas given outright (a resolution table, a hand-made case): no formula.

Useful to replay real resolutions, and for small hand-counted tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .base import base_output, check_input, shares
from .rounding import largest_remainder


@dataclass(frozen=True)
class FixedQuotas:
    """Quotas per municipality as given.

    Parameters
    ----------
    quotas
        ``municipality_id -> persons``; municipalities not named get 0.
    file
        Alternatively a CSV with ``municipality_id`` and ``quota`` columns.
    scale_to_total
        If ``True``, the given numbers are only weights and are scaled to the national number
        (largest remainder); otherwise they are used as they are and ``total`` is ignored.
    """

    quotas: dict[str, int] = field(default_factory=dict)
    file: str | None = None
    scale_to_total: bool = False
    name: str = "fixed"

    def given(self, munis: pd.DataFrame) -> np.ndarray:
        table = dict(self.quotas)
        if self.file is not None:
            data = pd.read_csv(Path(self.file), dtype={"municipality_id": str})
            table.update(zip(data["municipality_id"], data["quota"].astype(int)))
        unknown = set(table) - set(munis["municipality_id"])
        if unknown:
            raise ValueError(f"quotas for unknown municipalities: {sorted(unknown)[:5]}")
        values = munis["municipality_id"].map(table).fillna(0).astype(int).to_numpy()
        if (values < 0).any():
            raise ValueError("quotas must be >= 0")
        return values

    def compute(self, municipalities: pd.DataFrame, total: int) -> pd.DataFrame:
        munis = check_input(municipalities, total)
        values = self.given(munis)
        quota = largest_remainder(values, int(total)) if self.scale_to_total else values
        out = base_output(munis, shares(values), quota)
        out.attrs["notes"] = ["quotas given in the scenario"]
        out.attrs["rule"] = self.name
        return out

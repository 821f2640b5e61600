"""The one interface every request or quota rule implements, and helpers they share."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .rounding import largest_remainder

#: Columns every rule needs in its ``municipalities`` input.
REQUIRED = ("municipality_id", "name", "county_id", "population")
#: Columns every rule's output starts with; rules add their own intermediate columns after.
OUTPUT = ("municipality_id", "name", "county_id", "population", "share", "quota")


@runtime_checkable
class QuotaRule(Protocol):
    """A request or quota rule: splits a national number of persons over municipalities.

    ``compute`` returns one row per input municipality, in input order, with at least the
    columns of :data:`OUTPUT`: ``share`` (the rule's final share before rounding) and
    ``quota`` (whole persons; for the Norwegian rule, the request). Rule-specific intermediate
    columns follow, so every number can be traced. ``result.attrs["notes"]`` lists where each
    input came from (real, supplied, or a named proxy).
    """

    name: str

    def compute(self, municipalities: pd.DataFrame, total: int) -> pd.DataFrame:  # pragma: no cover
        ...


def check_input(municipalities: pd.DataFrame, total: int) -> pd.DataFrame:
    """Validate the common input and return a clean copy (population as float, ids as text)."""
    missing = [c for c in REQUIRED if c not in municipalities.columns]
    if missing:
        raise ValueError(f"municipalities table lacks column(s): {', '.join(missing)}")
    if int(total) < 0:
        raise ValueError(f"the national number must be >= 0, got {total}")
    out = municipalities.reset_index(drop=True).copy()
    out["municipality_id"] = out["municipality_id"].astype(str)
    out["county_id"] = out["county_id"].astype(str)
    out["population"] = pd.to_numeric(out["population"], errors="raise").astype(float)
    if (out["population"] < 0).any():
        raise ValueError("population must be >= 0")
    if out["municipality_id"].duplicated().any():
        raise ValueError("municipality_id must be unique")
    return out


def base_output(munis: pd.DataFrame, share: np.ndarray, quota: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame({
        "municipality_id": munis["municipality_id"].to_numpy(),
        "name": munis["name"].to_numpy(),
        "county_id": munis["county_id"].to_numpy(),
        "population": munis["population"].round().astype(int).to_numpy(),
        "share": np.asarray(share, dtype=float),
        "quota": np.asarray(quota, dtype=int),
    })
    return out


def shares(values: pd.Series | np.ndarray) -> np.ndarray:
    """Values as shares of their sum (all zero if the sum is zero)."""
    v = np.asarray(values, dtype=float)
    total = v.sum()
    return v / total if total > 0 else np.zeros_like(v)


def supplied(munis: pd.DataFrame, column: str) -> bool:
    """Whether the input carries a complete, numeric ``column``."""
    if column not in munis.columns:
        return False
    values = pd.to_numeric(munis[column], errors="coerce")
    return bool(values.notna().all())


def regional_sums(quotas: pd.DataFrame, by: str = "county_id") -> pd.DataFrame:
    """Regional quotas: the sums of the municipal quotas (and populations) over each region."""
    return (quotas.groupby(by, sort=True)
            .agg(municipalities=("municipality_id", "size"), population=("population", "sum"),
                 quota=("quota", "sum"))
            .reset_index())


def split_minors(quota: np.ndarray | pd.Series, minors: int) -> np.ndarray:
    """Split a national number of unaccompanied minors in proportion to the persons' quotas.

    Largest remainder, so the minors add up to ``minors`` (when the quotas are above 0) and no
    municipality gets more minors than persons.
    """
    q = np.asarray(quota, dtype=int)
    if minors <= 0 or q.sum() <= 0:
        return np.zeros(len(q), dtype=int)
    return np.minimum(largest_remainder(q.astype(float), min(int(minors), int(q.sum()))), q)

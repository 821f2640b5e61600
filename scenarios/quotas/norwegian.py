"""The Norwegian request ("anmodning"): weighted criteria, an over-asking factor, a minimum.

Each criterion gives every municipality a share (its value over the sum). The municipality's
share is the weighted mean of its criterion shares. IMDi asks for more than the need, because
municipalities resolve fewer than asked: the requests add up to ``round(over_ask * total)``.
As a rule no municipality is asked for fewer than ``min_request`` persons: by default those
below it are raised to it and the rest is split again over the others by their shares
("raise"; repeated until nobody left is below); ``below_minimum = "drop"`` asks them for none
instead. Whole persons by the largest-remainder method.

Criteria (ministry, 2020-2022) and what stands for them here:

================  ==========================================================================
criterion         value used (column in the inputs CSV overrides the proxy)
================  ==========================================================================
population        population 2025 (real)
labour_market     ``labour_market`` column, else the proxy ``population ** 1.1``
integration       ``integration`` column (introduction-programme results), else neutral:
                  the population share (no data, so no municipality gains or loses)
capacity          ``capacity`` column, else settled capacity shown in 2016-2017: the county's
                  real resolutions split by population within the county
================  ==========================================================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from .. import reference
from .base import base_output, check_input, shares, supplied
from .rounding import largest_remainder

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = {"population": 0.25, "labour_market": 0.35, "integration": 0.25, "capacity": 0.15}


@dataclass(frozen=True)
class NorwegianRequest:
    """IMDi's request to each municipality.

    Parameters
    ----------
    over_ask
        Requests add up to this times the national need. The default 1.13 is the 2016-2017
        ratio of request to resolution (18,517/16,523 = 1.12; 12,522/10,915 = 1.15).
    min_request
        No municipality is asked for fewer persons (as a rule: 10).
    below_minimum
        ``"raise"`` lifts small requests to the minimum, ``"drop"`` asks those municipalities
        for none. If raising everyone is impossible (``min_request * n > requested total``),
        the rule falls back to ``"drop"`` and logs a warning.
    weights
        Criterion weights (normalised to add up to 1).
    labour_market_elasticity
        Exponent of the labour-market proxy ``population ** e``.
    """

    over_ask: float = 1.13
    min_request: int = 10
    below_minimum: Literal["raise", "drop"] = "raise"
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    labour_market_elasticity: float = 1.1
    name: str = "norwegian"

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown Norwegian criteria: {sorted(unknown)}; use {sorted(DEFAULT_WEIGHTS)}")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("criterion weights must be >= 0 and not all 0")
        if self.over_ask <= 0 or self.min_request < 0:
            raise ValueError("over_ask must be > 0 and min_request >= 0")
        if self.below_minimum not in ("raise", "drop"):
            raise ValueError("below_minimum must be 'raise' or 'drop'")

    def criteria(self, munis: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
        """The value of each criterion per municipality, and where each came from."""
        notes = ["population: 2025 population (real)"]
        values = pd.DataFrame({"population": munis["population"].astype(float)})
        if supplied(munis, "labour_market"):
            values["labour_market"] = pd.to_numeric(munis["labour_market"]).astype(float)
            notes.append("labour_market: supplied in the inputs")
        else:
            values["labour_market"] = reference.labour_market_proxy(munis, self.labour_market_elasticity)
            notes.append(f"labour_market: PROXY population ** {self.labour_market_elasticity} (no data)")
        if supplied(munis, "integration"):
            values["integration"] = pd.to_numeric(munis["integration"]).astype(float)
            notes.append("integration: supplied in the inputs")
        else:
            values["integration"] = munis["population"].astype(float)
            notes.append("integration: no data, neutral (population share)")
        if supplied(munis, "capacity"):
            values["capacity"] = pd.to_numeric(munis["capacity"]).astype(float)
            notes.append("capacity: supplied in the inputs")
        else:
            values["capacity"] = reference.earlier_reception_by_municipality(munis)
            notes.append("capacity: 2016-2017 county resolutions (real), split by population (proxy)")
        return values, notes

    def compute(self, municipalities: pd.DataFrame, total: int) -> pd.DataFrame:
        """Requests adding up to ``round(over_ask * total)``; see the module docstring."""
        munis = check_input(municipalities, total)
        values, notes = self.criteria(munis)
        weight_sum = sum(self.weights.values())
        share = np.zeros(len(munis))
        out_shares = {}
        for criterion in DEFAULT_WEIGHTS:
            s = shares(values[criterion])
            out_shares[f"{criterion}_share"] = s
            share += self.weights.get(criterion, 0.0) / weight_sum * s
        requested = int(np.floor(self.over_ask * int(total) + 0.5))
        request = with_minimum(share, requested, self.min_request, self.below_minimum)
        out = base_output(munis, share, request)
        for column, s in out_shares.items():
            out[column] = s
        out["exact_without_minimum"] = share * requested
        out.attrs["notes"] = notes + [f"requests add up to round({self.over_ask} x national number), "
                                      f"at least {self.min_request} each ({self.below_minimum})"]
        out.attrs["rule"] = self.name
        return out


def with_minimum(share: np.ndarray, total: int, minimum: int, mode: str = "raise") -> np.ndarray:
    """Whole-person requests adding up to ``total`` with none between 0 and ``minimum``.

    ``"raise"``: water-filling: municipalities whose proportional request is below the minimum
    get the minimum, the rest is split over the others by share, repeated until none left is
    below. ``"drop"``: the smallest municipality below the minimum gets 0 and the rest is split over
    the others, repeated until none left is below (dropping one raises everyone else).
    Municipalities with share 0 always get 0.
    """
    share = np.asarray(share, dtype=float)
    active = share > 0
    out = np.zeros(len(share), dtype=int)
    if total <= 0 or not active.any():
        return out
    if mode == "raise" and minimum * int(active.sum()) > total:
        log.warning("cannot ask %d municipalities for at least %d persons within %d; "
                    "dropping the smallest instead", int(active.sum()), minimum, total)
        mode = "drop"
    if mode == "raise":
        fixed = np.zeros(len(share), dtype=bool)
        while True:
            free = active & ~fixed
            rest = total - minimum * int(fixed.sum())
            if not free.any():
                break
            exact = np.where(free, rest * share / share[free].sum(), np.inf)
            low = free & (exact < minimum)
            if not low.any():
                break
            fixed |= low
        out[fixed] = minimum
        free = active & ~fixed
        if free.any():
            out[free] = largest_remainder(share[free], total - minimum * int(fixed.sum()))
        return out
    keep = active.copy()
    while True:
        exact = np.where(keep, total * share / share[keep].sum(), np.inf)
        low = keep & (exact < minimum)
        if not low.any():
            break
        # Drop only the smallest (and any equal to it): dropping raises everyone else's number.
        smallest = share[low].min()
        keep &= ~(low & (share <= smallest))
        if not keep.any():  # the total is below one minimum: ask the largest municipality alone
            keep[int(np.argmax(share))] = True
            break
    out[keep] = largest_remainder(share[keep], total)
    return out

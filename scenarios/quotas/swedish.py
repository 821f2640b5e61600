"""The Swedish key (settlement act 2016): county numbers from weighted criteria, then
municipal numbers within each county.

County numbers ("länstal"): each criterion gives every county a share; the county's share is
the weighted sum (2019 weights: 43% labour market, 37% population, 20% earlier reception of
new arrivals and asylum seekers); whole persons by the largest-remainder method. A county that
received relatively more earlier gets less: by default the reception criterion is
compensating, ``max(0, 2 p_c - e_c)`` normalised (``p_c`` the population share, ``e_c`` the
share of earlier reception), the same form as the Danish rule; ``reception_effect =
"proportional"`` uses ``e_c`` itself instead.

Municipal numbers ("kommuntal"): the county number split over its municipalities by
population (largest remainder within the county). The Swedish agency also weighs municipal
criteria; the bundled data do not hold them, so population stands in (documented proxy).

Inputs and proxies: population (real); ``labour_market`` column summed per county, else the
proxy ``population ** 1.1``; ``earlier_reception`` column summed per county, else the real
2016-2017 resolutions per county (IMDi) mapped to the 2025 counties.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from .. import reference
from .base import base_output, check_input, shares, supplied
from .rounding import largest_remainder

DEFAULT_WEIGHTS = {"labour_market": 0.43, "population": 0.37, "reception": 0.20}


@dataclass(frozen=True)
class SwedishKey:
    """Binding municipal numbers by the Swedish county key.

    Parameters
    ----------
    weights
        Criterion weights (normalised): ``labour_market``, ``population``, ``reception``.
    reception_effect
        ``"compensating"`` (more earlier reception, smaller number) or ``"proportional"``.
    labour_market_elasticity
        Exponent of the labour-market proxy.
    """

    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    reception_effect: Literal["compensating", "proportional"] = "compensating"
    labour_market_elasticity: float = 1.1
    name: str = "swedish"

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown Swedish criteria: {sorted(unknown)}; use {sorted(DEFAULT_WEIGHTS)}")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("criterion weights must be >= 0 and not all 0")
        if self.reception_effect not in ("compensating", "proportional"):
            raise ValueError("reception_effect must be 'compensating' or 'proportional'")

    def county_table(self, munis: pd.DataFrame, total: int) -> tuple[pd.DataFrame, list[str]]:
        """One row per county: criterion values and shares, county share and county number."""
        notes = ["population: 2025 population (real)"]
        if supplied(munis, "labour_market"):
            labour = pd.to_numeric(munis["labour_market"]).astype(float)
            notes.append("labour_market: supplied in the inputs")
        else:
            labour = reference.labour_market_proxy(munis, self.labour_market_elasticity)
            notes.append(f"labour_market: PROXY population ** {self.labour_market_elasticity} (no data)")
        if supplied(munis, "earlier_reception"):
            reception = pd.to_numeric(munis["earlier_reception"]).astype(float)
            notes.append("earlier reception: supplied in the inputs")
        else:
            reception = reference.earlier_reception_by_municipality(munis)
            notes.append("earlier reception: 2016-2017 resolutions per county (real, IMDi)")
        by = munis["county_id"].to_numpy()
        counties = pd.DataFrame({
            "population": munis["population"].groupby(by).sum(),
            "labour_market": labour.groupby(by).sum(),
            "earlier_reception": reception.groupby(by).sum(),
        }).sort_index()
        p = shares(counties["population"])
        e = shares(counties["earlier_reception"])
        reception_share = shares(np.clip(2 * p - e, 0, None)) if self.reception_effect == "compensating" else e
        criteria = {"labour_market": shares(counties["labour_market"]), "population": p,
                    "reception": reception_share}
        weight_sum = sum(self.weights.values())
        county_share = sum(self.weights.get(c, 0.0) / weight_sum * s for c, s in criteria.items())
        for c, s in criteria.items():
            counties[f"{c}_share"] = s
        counties["county_share"] = county_share
        counties["county_quota"] = largest_remainder(county_share, int(total)) if total > 0 else 0
        counties.index.name = "county_id"
        return counties, notes

    def compute(self, municipalities: pd.DataFrame, total: int) -> pd.DataFrame:
        """Municipal numbers adding up to ``total``; see the module docstring."""
        munis = check_input(municipalities, total)
        counties, notes = self.county_table(munis, total)
        quota = np.zeros(len(munis), dtype=int)
        share = np.zeros(len(munis))
        for county_id, row in counties.iterrows():
            members = np.flatnonzero(munis["county_id"].to_numpy() == county_id)
            pop = munis["population"].to_numpy(dtype=float)[members]
            within = shares(pop)
            share[members] = row["county_share"] * within
            if row["county_quota"] > 0:
                quota[members] = largest_remainder(pop, int(row["county_quota"]))
        out = base_output(munis, share, quota)
        c = counties.reindex(munis["county_id"])
        out["county_share"] = c["county_share"].to_numpy()
        out["county_quota"] = c["county_quota"].to_numpy().astype(int)
        out["within_county_share"] = share / np.where(c["county_share"].to_numpy() > 0,
                                                      c["county_share"].to_numpy(), 1.0)
        out.attrs["notes"] = notes + ["municipal split within the county: by population (proxy)"]
        out.attrs["rule"] = self.name
        out.attrs["counties"] = counties.reset_index()
        return out

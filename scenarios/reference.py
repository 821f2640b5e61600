"""Reference data the policies use, and the documented proxies for criteria the data lacks.

Real figures (bundled with the allocator, see ``allocator/data/SOURCE.md``):

- the 357 municipalities of 2025 with population and county;
- IMDi's requests and municipal resolutions per (old) county, 2016 and 2017.

Everything else a policy needs is either supplied by the scenario (an inputs CSV) or replaced
by a proxy defined here. Each proxy says in its docstring what it is; the report lists which
ones a run used. Synthetic proxies are seeded and are never real figures.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from allocator.demo import reference_municipalities

from .quotas.rounding import largest_remainder

log = logging.getLogger(__name__)

#: The 19 counties of 2016-2017 and the 2025 county (``county_id``) that holds most of each.
#: Approximate: a few municipalities changed county in the 2020 and 2024 reforms (e.g. Jevnaker
#: and Lunner left Oppland); their share of the old county's figures is small.
OLD_COUNTY_TO_2025 = {
    "Østfold": "31",
    "Akershus": "32",
    "Oslo": "03",
    "Hedmark": "34",
    "Oppland": "34",
    "Buskerud": "33",
    "Vestfold": "39",
    "Telemark": "40",
    "Aust-Agder": "42",
    "Vest-Agder": "42",
    "Rogaland": "11",
    "Hordaland": "46",
    "Sogn og Fjordane": "46",
    "Møre og Romsdal": "15",
    "Sør-Trøndelag": "50",
    "Nord-Trøndelag": "50",
    "Nordland": "18",
    "Troms": "55",
    "Finnmark": "56",
}

MUNICIPALITY_COLUMNS = ["municipality_id", "name", "county_id", "county", "population"]


def municipalities() -> pd.DataFrame:
    """The real 357 municipalities (``municipality_id``, ``name``, ``county_id``, ``county``,
    ``population``), ids as text."""
    ref = reference_municipalities()
    out = ref[MUNICIPALITY_COLUMNS].copy()
    out["population"] = out["population"].astype(int)
    return out.reset_index(drop=True)


@lru_cache(maxsize=1)
def _county_requests() -> pd.DataFrame:
    path = resources.files("allocator.data").joinpath("settlement_requests_by_county_2016_2017.csv")
    with path.open("rb") as f:
        return pd.read_csv(f)


def county_requests() -> pd.DataFrame:
    """IMDi's 2016-2017 requests and resolutions per old county (a copy of the bundled CSV)."""
    return _county_requests().copy()


def earlier_reception_by_county() -> pd.Series:
    """Persons the municipalities resolved to settle in 2016 and 2017, per 2025 county.

    Real figures (IMDi), summed over the two years and mapped to the 2025 counties with
    :data:`OLD_COUNTY_TO_2025`. Used as "earlier reception" (Swedish key) and as demonstrated
    capacity (Norwegian request).
    """
    data = _county_requests()
    county = data["county_2016"].map(OLD_COUNTY_TO_2025)
    if county.isna().any():
        raise ValueError(f"unmapped counties: {sorted(data.loc[county.isna(), 'county_2016'])}")
    total = data["resolution_2016"] + data["resolution_2017"]
    return total.groupby(county.to_numpy()).sum().rename("earlier_reception")


def earlier_reception_by_municipality(munis: pd.DataFrame) -> pd.Series:
    """The county's 2016-2017 resolutions split over its municipalities by population.

    Real at county level; the split within the county is a proxy (by population).
    """
    rate = earlier_reception_by_county() / municipalities().groupby("county_id")["population"].sum()
    per_capita = rate.reindex(munis["county_id"]).fillna(0.0).to_numpy(dtype=float)
    return pd.Series(per_capita * munis["population"].to_numpy(dtype=float), index=munis.index,
                     name="earlier_reception")


def labour_market_proxy(munis: pd.DataFrame, elasticity: float = 1.1) -> pd.Series:
    """Proxy for labour-market capacity: ``population ** elasticity``.

    The bundled data hold no employment figures. With ``elasticity > 1`` larger municipalities
    (larger and more varied labour markets) weigh a little more than their population. Supply
    a ``labour_market`` column in the scenario's inputs CSV to use real figures instead.
    """
    return munis["population"].astype(float) ** float(elasticity)


def synthetic_immigrant_share(munis: pd.DataFrame, seed: int, concentration: float = 0.35,
                              noise: float = 0.3) -> pd.Series:
    """SYNTHETIC share ``i_k`` of refugees and non-Western immigrants already resident.

    Not a real figure. Drawn as ``population * (population / median) ** concentration *
    lognormal(0, noise)``, normalised to add up to 1: larger municipalities hold relatively
    more immigrants, as in the real pattern, with seeded noise. Supply an ``immigrants`` column
    in the inputs CSV to use real figures.
    """
    rng = np.random.default_rng([int(seed), 101])
    pop = munis["population"].to_numpy(dtype=float)
    raw = pop * (pop / np.median(pop)) ** concentration * rng.lognormal(0.0, noise, len(pop))
    return pd.Series(raw / raw.sum(), index=munis.index, name="immigrant_share")


def synthetic_family_reunified(munis: pd.DataFrame, immigrant_share: pd.Series, total: int,
                               seed: int, noise: float = 0.5) -> pd.Series:
    """SYNTHETIC last-year family reunifications ``F_k``, adding up to ``total``.

    Not a real figure. ``total`` persons split by the largest-remainder method in proportion
    to ``immigrant_share * lognormal(0, noise)`` (reunified family joins those already there).
    """
    rng = np.random.default_rng([int(seed), 202])
    weights = immigrant_share.to_numpy(dtype=float) * rng.lognormal(0.0, noise, len(munis))
    return pd.Series(largest_remainder(weights, int(total)), index=munis.index, name="family_reunified")

"""Dwellings municipalities make available, generated once per seed for all policies.

Each municipality gets an initial stock of free dwellings and new ones every month, both
Poisson in proportion to its population (``initial_per_1000``, ``monthly_per_1000`` per
1,000 inhabitants; the monthly rate grows by ``monthly_growth`` a month), times its
``housing_factor`` when the inputs CSV gives one. A new dwelling of
month ``t`` becomes free on a day within ``(d_t, d_(t+1)]`` and is known ``announce_days``
before. Bedrooms follow the configured mix; some are step-free; some larger ones are flats
shared by single adults (one place per bedroom).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .config import HousingConfig

COLUMNS = ["dwelling_id", "municipality_id", "bedrooms", "max_occupants", "step_free", "shared", "available_from"]


def dwelling_attributes(rng: np.random.Generator, cfg: HousingConfig, n: int) -> dict[str, np.ndarray]:
    """Bedrooms, occupancy, step-free access and sharing of ``n`` new dwellings."""
    sizes = np.array(list(cfg.bedrooms))
    bedrooms = rng.choice(sizes, size=n, p=[cfg.bedrooms[b] for b in sizes])
    shared = (bedrooms >= 3) & (rng.random(n) < cfg.shared_share)
    occupants = np.where(shared, bedrooms, 2 * bedrooms + (rng.random(n) < 0.5))
    return {"bedrooms": bedrooms.astype(int), "max_occupants": occupants.astype(int),
            "step_free": rng.random(n) < cfg.step_free_share, "shared": shared}


def generate_dwellings(cfg: HousingConfig, municipalities: pd.DataFrame, starts: list[pd.Timestamp],
                       rng: np.random.Generator) -> pd.DataFrame:
    """All dwellings of the horizon, with the day each becomes free (``available_from``).

    A ``housing_factor`` column in ``municipalities`` (from the scenario's inputs CSV) scales
    a municipality's rates: 2 doubles its supply, 0 gives it none (default 1).
    """
    pop = municipalities["population"].to_numpy(dtype=float) / 1000.0
    if "housing_factor" in municipalities.columns:
        factor = pd.to_numeric(municipalities["housing_factor"], errors="coerce").fillna(1.0).to_numpy(dtype=float)
        if (factor < 0).any():
            raise ValueError("housing_factor must be >= 0")
        pop = pop * factor
    ids = municipalities["municipality_id"].to_numpy()
    owners: list[np.ndarray] = []
    dates: list[np.ndarray] = []
    initial = rng.poisson(cfg.initial_per_1000 * pop)
    owners.append(np.repeat(ids, initial))
    offsets = rng.integers(0, 61, int(initial.sum()))
    dates.append((starts[0] - pd.to_timedelta(offsets, unit="D")).to_numpy())
    for t in range(len(starts) - 1):
        rate = cfg.monthly_per_1000 * (1 + cfg.monthly_growth) ** t
        count = rng.poisson(rate * pop)
        owners.append(np.repeat(ids, count))
        days = (starts[t + 1] - starts[t]).days
        offsets = rng.integers(1, days + 1, int(count.sum()))
        dates.append((starts[t] + pd.to_timedelta(offsets, unit="D")).to_numpy())
    owner = np.concatenate(owners)
    n = len(owner)
    out = pd.DataFrame({
        "dwelling_id": np.array([f"D{i:06d}" for i in range(1, n + 1)], dtype=object),
        "municipality_id": owner.astype(object),
        **dwelling_attributes(rng, cfg, n),
        "available_from": pd.to_datetime(np.concatenate(dates)),
    })
    return out[COLUMNS]


def read_dwellings(path: Path) -> pd.DataFrame:
    """Explicit dwellings: a CSV with the allocator's ``dwellings.csv`` columns
    (``available_from`` required here: the day the dwelling is free)."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = set(COLUMNS) - {"step_free", "shared"} - set(raw.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    yes = lambda c: raw.get(c, pd.Series("false", index=raw.index)).str.lower().isin(["true", "1", "yes"])  # noqa: E731
    return pd.DataFrame({
        "dwelling_id": raw["dwelling_id"].astype(object),
        "municipality_id": raw["municipality_id"].astype(object),
        "bedrooms": raw["bedrooms"].astype(int),
        "max_occupants": raw["max_occupants"].astype(int),
        "step_free": yes("step_free"),
        "shared": yes("shared"),
        "available_from": pd.to_datetime(raw["available_from"]),
    })[COLUMNS]

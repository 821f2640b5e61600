"""Settlement-ready cases arriving month by month, generated once per seed for all policies.

Every policy of a seed sees the very same arrivals (common random numbers), so differences
between policies are the policies' own. The composition follows the demo generator of the
allocator: single adults, families of one or two adults with 1-7 children (geometric), the
odd pair of unaccompanied siblings, resettlement households; ages by role.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .config import ArrivalsConfig

DAY = pd.Timedelta(days=1)


def month_starts(start: pd.Timestamp, months: int) -> list[pd.Timestamp]:
    """``d_0 .. d_months``: the first day of each month of the horizon and the day after it."""
    return [pd.Timestamp(start) + pd.DateOffset(months=t) for t in range(months + 1)]


def expected_children(p: float, cap: int) -> float:
    """Mean of ``min(G, cap)`` for a geometric ``G`` on 1, 2, ...: ``sum_{k<=cap} (1-p)^(k-1)``."""
    return float(sum((1 - p) ** (k - 1) for k in range(1, cap + 1)))


def expected_case(cfg: ArrivalsConfig) -> dict[str, float]:
    """Expected persons and unaccompanied minors per arriving case."""
    comp = cfg.composition
    adults_family = 1 + cfg.family_two_adults
    children = expected_children(cfg.children_p, cfg.max_children)
    size = {
        "single": 1.0,
        "family": adults_family + children,
        "unaccompanied_minor": 1.0 + cfg.minor_siblings,
        "resettlement": cfg.resettlement_family_share * (adults_family + children)
        + (1 - cfg.resettlement_family_share),
    }
    return {
        "persons": sum(comp.get(c, 0.0) * s for c, s in size.items()),
        "minors": comp.get("unaccompanied_minor", 0.0) * (1.0 + cfg.minor_siblings),
    }


def _households(rng: np.random.Generator, cfg: ArrivalsConfig, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    names = list(cfg.composition)
    category = rng.choice(names, size=n, p=[cfg.composition[c] for c in names]).astype(object)
    is_family = (category == "family") | (
        (category == "resettlement") & (rng.random(n) < cfg.resettlement_family_share))
    adults = np.where(is_family, 1 + (rng.random(n) < cfg.family_two_adults), 0)
    adults[(category == "single") | ((category == "resettlement") & ~is_family)] = 1
    children = np.where(is_family, np.minimum(rng.geometric(cfg.children_p, size=n), cfg.max_children), 0)
    minor = category == "unaccompanied_minor"
    children[minor] = 1 + (rng.random(int(minor.sum())) < cfg.minor_siblings)
    return category, adults.astype(int), children.astype(int)


def generate_arrivals(cfg: ArrivalsConfig, municipalities: pd.DataFrame, starts: list[pd.Timestamp],
                      rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cases and persons for the whole horizon.

    The initial backlog has residence dates before ``starts[0]`` (waits exponential, capped);
    the cases of month ``t`` have residence dates uniform within ``[starts[t], starts[t+1])``.

    Returns
    -------
    cases
        ``case_id``, ``residence_date`` (Timestamp), ``category``, ``tie_municipality_id``
        (``""`` for none), ``needs_step_free``.
    persons
        ``person_id``, ``case_id``, ``age``.
    """
    months = len(starts) - 1
    counts = [cfg.initial_backlog]
    for t in range(months):
        mean = cfg.mean_cases(t)
        counts.append(int(rng.poisson(mean)) if cfg.variation == "poisson" else int(round(mean)))
    n = int(sum(counts))
    category, adults, children = _households(rng, cfg, n)
    month = np.repeat(np.arange(-1, months), counts)
    residence = np.empty(n, dtype="datetime64[ns]")
    backlog = month == -1
    waits = np.minimum(np.ceil(rng.exponential(cfg.initial_wait_days_mean, int(backlog.sum()))),
                       cfg.initial_wait_days_max).astype(int)
    residence[backlog] = (starts[0] - pd.to_timedelta(waits, unit="D")).to_numpy()
    for t in range(months):
        mask = month == t
        days = (starts[t + 1] - starts[t]).days
        offsets = rng.integers(0, days, int(mask.sum()))
        residence[mask] = (starts[t] + pd.to_timedelta(offsets, unit="D")).to_numpy()
    ids = municipalities["municipality_id"].to_numpy()
    weights = municipalities["population"].to_numpy(dtype=float)
    weights = weights / weights.sum()
    tie = np.where(rng.random(n) < cfg.tie_share, rng.choice(ids, size=n, p=weights), "")
    step_free = rng.random(n) < cfg.step_free_share
    case_ids = np.array([f"C{i:06d}" for i in range(1, n + 1)], dtype=object)
    cases = pd.DataFrame({
        "case_id": case_ids,
        "residence_date": pd.to_datetime(residence),
        "category": category,
        "tie_municipality_id": tie.astype(object),
        "needs_step_free": step_free,
    })
    size = adults + children
    member_case = np.repeat(np.arange(n), size)
    position = np.arange(len(member_case)) - np.repeat(np.cumsum(size) - size, size)
    is_adult = position < np.repeat(adults, size)
    em = np.repeat(category == "unaccompanied_minor", size)
    age = np.where(is_adult, rng.integers(18, 64, len(member_case)), rng.integers(0, 18, len(member_case)))
    age = np.where(em, rng.integers(13, 18, len(member_case)), age)
    persons = pd.DataFrame({
        "person_id": [f"P{i:07d}" for i in range(1, len(member_case) + 1)],
        "case_id": case_ids[member_case],
        "age": age.astype(int),
    })
    return cases, persons


def read_arrivals(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Explicit arrivals: a CSV with ``case_id``, ``residence_date``, ``category``, ``ages``
    (the members' ages separated by ``;``) and optional ``tie_municipality_id``,
    ``needs_step_free`` (true/false)."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"case_id", "residence_date", "category", "ages"} - set(raw.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    cases = pd.DataFrame({
        "case_id": raw["case_id"].astype(object),
        "residence_date": pd.to_datetime(raw["residence_date"]),
        "category": raw["category"].astype(object),
        "tie_municipality_id": raw.get("tie_municipality_id", pd.Series("", index=raw.index)).astype(object),
        "needs_step_free": raw.get("needs_step_free", pd.Series("false", index=raw.index))
        .str.lower().isin(["true", "1", "yes"]),
    })
    rows = [(case_id, int(age)) for case_id, ages in zip(raw["case_id"], raw["ages"])
            for age in str(ages).split(";") if age.strip() != ""]
    persons = pd.DataFrame(rows, columns=["case_id", "age"])
    persons.insert(0, "person_id", [f"P{i:07d}" for i in range(1, len(persons) + 1)])
    persons["case_id"] = persons["case_id"].astype(object)
    return cases, persons


def case_composition(cases: pd.DataFrame, persons: pd.DataFrame, adult_age: int = 18) -> pd.DataFrame:
    """Per case: ``size``, ``adults``, ``children`` (under ``adult_age``), ``minors``
    (members of unaccompanied-minor cases) and ``has_children`` (a family with children)."""
    adult = persons["age"].to_numpy() >= adult_age
    grouped = pd.DataFrame({"case_id": persons["case_id"].to_numpy(), "adult": adult}).groupby("case_id")
    size = grouped.size().reindex(cases["case_id"]).fillna(0).astype(int).to_numpy()
    adults = grouped["adult"].sum().reindex(cases["case_id"]).fillna(0).astype(int).to_numpy()
    em = (cases["category"] == "unaccompanied_minor").to_numpy()
    return pd.DataFrame({
        "size": size,
        "adults": adults,
        "children": size - adults,
        "minors": np.where(em, size, 0),
        "has_children": (size - adults > 0) & ~em,
    }, index=cases.index)

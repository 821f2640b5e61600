"""Seeded, named demo and benchmark instances over the real 357 municipalities.

The generator draws a realistic round: resolutions weighted by population (some municipalities
resolve nothing, some take unaccompanied minors), a mix of single adults and families of up to
nine, dwellings by bedroom count (some step-free, some shared flats, some not yet free), service
capacities, ties, step-free needs and, optionally, employment scores by case profile.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .reading import write_problem

DEMO_AS_OF = dt.date(2026, 1, 15)


@dataclass(frozen=True)
class InstanceSpec:
    """What to generate. ``capacity_ratio`` is resolution persons per waiting person."""

    cases: int
    seed: int = 7
    with_scores: bool = False
    capacity_ratio: float = 0.9
    tie_share: float = 0.08
    step_free_share: float = 0.03
    profiles: int = 6


#: Named data sets: ``allocator demo --name national-30k`` etc.
NAMED = {
    "demo": InstanceSpec(cases=3000, seed=7),
    "demo-scores": InstanceSpec(cases=3000, seed=7, with_scores=True),
    "small": InstanceSpec(cases=200, seed=3),
    **{f"national-{n // 1000}k": InstanceSpec(cases=n, seed=11) for n in (1000, 2000, 5000, 10000, 30000)},
    **{
        f"national-{n // 1000}k-scores": InstanceSpec(cases=n, seed=11, with_scores=True)
        for n in (1000, 2000, 5000, 10000, 30000)
    },
}


def reference_municipalities() -> pd.DataFrame:
    """The 357 municipalities of 2025 with population (bundled; see data/SOURCE.md)."""
    with resources.files("allocator.data").joinpath("municipalities_no_2025.csv").open("rb") as f:
        return pd.read_csv(f, dtype={"municipality_id": str, "county_id": str})


def _municipalities(rng: np.random.Generator, total_persons: int, capacity_ratio: float) -> pd.DataFrame:
    ref = reference_municipalities()
    pop = ref["population"].to_numpy(dtype=float)
    share = pop / pop.sum()
    resolves = rng.random(len(ref)) > 0.08  # some councils say no
    noise = rng.lognormal(0.0, 0.35, len(ref))
    want = share * noise * resolves
    resolution = np.floor(want / want.sum() * total_persons * capacity_ratio).astype(int)
    resolution[resolves & (resolution < 5)] = np.minimum(5, resolution[resolves & (resolution < 5)] + 5)
    takes_minors = resolves & (rng.random(len(ref)) < 0.55)
    minors = np.where(takes_minors, np.ceil(resolution * rng.uniform(0.05, 0.2, len(ref))), 0).astype(int)
    # Service places per resolved person. Councils resolve what they can serve, so capacities
    # bind in some municipalities, not most (an assumption: no public figures per municipality).
    slack = lambda low, high: rng.uniform(low, high, len(ref))  # noqa: E731 - a draw per service
    return pd.DataFrame(
        {
            "municipality_id": ref["municipality_id"],
            "name": ref["name"],
            "county_id": ref["county_id"],
            "population": ref["population"],
            "resolution_persons": resolution,
            "resolution_minors": minors,
            "capacity_school": np.ceil(resolution * slack(0.2, 0.6)).astype(int),
            "capacity_kindergarten": np.ceil(resolution * slack(0.1, 0.35)).astype(int),
            "capacity_introduction": np.ceil(resolution * slack(0.6, 1.1)).astype(int),
        }
    )


def _cases_and_persons(
    rng: np.random.Generator, spec: InstanceSpec, munis: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = spec.cases
    kind = rng.choice(["single", "unaccompanied_minor", "family"], size=n, p=[0.55, 0.05, 0.40])
    adults = np.where(kind == "family", rng.choice([1, 2], size=n, p=[0.25, 0.75]), 0)
    adults[kind == "single"] = 1
    children = np.where(kind == "family", np.minimum(rng.geometric(0.38, size=n), 7), 0)
    children[kind == "unaccompanied_minor"] = 1 + (rng.random((kind == "unaccompanied_minor").sum()) < 0.08)
    size = adults + children
    wait_days = np.minimum(rng.exponential(110, size=n), 700).astype(int)
    residence = pd.Timestamp(DEMO_AS_OF) - pd.to_timedelta(wait_days, unit="D")
    weights = munis["population"].to_numpy(dtype=float)
    weights /= weights.sum()
    ids = munis["municipality_id"].to_numpy()
    tie = np.where(rng.random(n) < spec.tie_share, rng.choice(ids, size=n, p=weights), "")
    reception = rng.choice(ids, size=n, p=weights)
    case_ids = np.char.add("C", np.char.zfill(np.arange(1, n + 1).astype(str), 6))
    category = kind.copy()
    category[(kind == "family") & (rng.random(n) < 0.1)] = "resettlement"
    cases = pd.DataFrame(
        {
            "case_id": case_ids,
            "residence_date": residence.strftime("%Y-%m-%d"),
            "category": category,
            "reception_municipality_id": reception,
            "tie_municipality_id": tie,
            "needs_step_free": np.where(rng.random(n) < spec.step_free_share, "true", "false"),
        }
    )
    member_case = np.repeat(np.arange(n), size)
    first = np.repeat(np.cumsum(size) - size, size)
    position = np.arange(len(member_case)) - first
    is_adult = position < np.repeat(adults, size)
    em = np.repeat(kind == "unaccompanied_minor", size)
    age = np.where(is_adult, rng.integers(18, 64, len(member_case)), rng.integers(0, 18, len(member_case)))
    age = np.where(em, rng.integers(13, 18, len(member_case)), age)
    persons = pd.DataFrame(
        {
            "person_id": np.char.add("P", np.char.zfill(np.arange(1, len(member_case) + 1).astype(str), 7)),
            "case_id": case_ids[member_case],
            "age": age,
            "sex": rng.choice(["F", "M"], len(member_case)),
        }
    )
    if spec.with_scores:
        cases["profile"] = rng.integers(0, spec.profiles, n)
    return cases, persons


def _dwellings(rng: np.random.Generator, munis: pd.DataFrame, mean_case_size: float) -> pd.DataFrame:
    counts = np.ceil(munis["resolution_persons"].to_numpy() / mean_case_size * rng.uniform(0.8, 1.3, len(munis)))
    counts = counts.astype(int)
    owner = np.repeat(munis["municipality_id"].to_numpy(), counts)
    total = len(owner)
    bedrooms = rng.choice([1, 2, 3, 4, 5], size=total, p=[0.33, 0.30, 0.20, 0.12, 0.05])
    shared = (bedrooms >= 3) & (rng.random(total) < 0.12)
    occupants = np.where(shared, bedrooms, 2 * bedrooms + (rng.random(total) < 0.5))
    later = rng.random(total) < 0.12
    available = pd.Timestamp(DEMO_AS_OF) + pd.to_timedelta(
        np.where(later, rng.integers(1, 120, total), -rng.integers(0, 60, total)), unit="D"
    )
    return pd.DataFrame(
        {
            "dwelling_id": np.char.add("D", np.char.zfill(np.arange(1, total + 1).astype(str), 6)),
            "municipality_id": owner,
            "bedrooms": bedrooms,
            "max_occupants": occupants,
            "step_free": np.where(rng.random(total) < 0.15, "true", "false"),
            "shared": np.where(shared, "true", "false"),
            "available_from": available.strftime("%Y-%m-%d"),
        }
    )


def _scores(rng: np.random.Generator, cases: pd.DataFrame, munis: pd.DataFrame, profiles: int) -> pd.DataFrame:
    """Predicted employment (0..1) by case profile and municipality, as a model would give."""
    base = rng.normal(0.0, 0.5, len(munis))
    effect = rng.normal(0.0, 0.6, (profiles, 1)) + rng.normal(0.0, 0.3, (profiles, len(munis)))
    table = np.round(1.0 / (1.0 + np.exp(-(base + effect - 0.3))), 3)
    profile = cases["profile"].to_numpy()
    n, m = len(cases), len(munis)
    return pd.DataFrame(
        {
            "case_id": np.repeat(cases["case_id"].to_numpy(), m),
            "municipality_id": np.tile(munis["municipality_id"].to_numpy(), n),
            "score": table[profile].reshape(-1),
        }
    )


def generate_tables(spec: InstanceSpec) -> dict[str, pd.DataFrame]:
    """Generate the raw tables of one instance (deterministic for a spec)."""
    rng = np.random.default_rng(spec.seed)
    expected_persons = int(spec.cases * 2.3)
    munis = _municipalities(rng, expected_persons, spec.capacity_ratio)
    cases, persons = _cases_and_persons(rng, spec, munis)
    tables = {
        "municipalities.csv": munis,
        "cases.csv": cases.drop(columns=["profile"], errors="ignore"),
        "persons.csv": persons,
        "dwellings.csv": _dwellings(rng, munis, len(persons) / len(cases)),
    }
    if spec.with_scores:
        tables["scores.csv"] = _scores(rng, cases, munis, spec.profiles)
    return {name: df.astype(str) for name, df in tables.items()}


def demo_settings(time_limit: float = 60.0) -> dict[str, object]:
    return {"as_of": DEMO_AS_OF, "solver": {"time_limit": time_limit}}


def write_instance(spec: InstanceSpec, folder: str | Path, time_limit: float = 60.0) -> Path:
    """Write an instance as a problem folder, with a ``settings.toml`` fixing ``as_of``."""
    return write_problem(generate_tables(spec), folder, demo_settings(time_limit))

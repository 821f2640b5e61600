"""Shared fixtures: tiny problems written as tables, a solve-and-verify helper, and faked service breaks."""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator import Settings, build_problem, solve, verify_plan, write_problem
from allocator.backend import highs_mip_options

AS_OF = dt.date(2026, 1, 15)


def table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).astype(str)


def tiny_tables(
    munis: list[dict],
    cases: list[dict],
    persons: list[dict],
    dwellings: list[dict] | None = None,
    **extra: list[dict],
) -> dict[str, pd.DataFrame]:
    """Raw tables from lists of row dicts (``extra``: scores, exclusions, pins)."""
    out = {
        "municipalities.csv": table(munis),
        "cases.csv": table(cases),
        "persons.csv": table(persons),
    }
    if dwellings is not None:
        out["dwellings.csv"] = table(dwellings)
    for name, rows in extra.items():
        out[f"{name}.csv"] = table(rows) if rows else pd.DataFrame(columns=_columns(name))
    return out


def _columns(name: str) -> list[str]:
    return {"scores": ["case_id", "municipality_id", "score"],
            "exclusions": ["case_id", "municipality_id", "reason"],
            "pins": ["case_id", "municipality_id", "dwelling_id"]}[name]


def settings(**overrides) -> Settings:
    base = Settings(as_of=AS_OF)
    overrides.setdefault("solver__time_limit", 20.0)
    return base.with_overrides(**overrides)


def single(case_id: str, days: int = 30, **fields) -> tuple[dict, list[dict]]:
    """A single adult case waiting ``days``."""
    case = {"case_id": case_id, "residence_date": str(AS_OF - dt.timedelta(days=days)),
            "category": "single", **fields}
    return case, [{"person_id": f"{case_id}-1", "case_id": case_id, "age": "30"}]


def family(case_id: str, ages: list[int], days: int = 30, **fields) -> tuple[dict, list[dict]]:
    case = {"case_id": case_id, "residence_date": str(AS_OF - dt.timedelta(days=days)),
            "category": "family", **fields}
    people = [{"person_id": f"{case_id}-{i}", "case_id": case_id, "age": str(a)} for i, a in enumerate(ages, 1)]
    return case, people


def muni(mid: str, persons: int, minors: int = 0, **capacity) -> dict:
    return {"municipality_id": mid, "name": f"M{mid}", "resolution_persons": str(persons),
            "resolution_minors": str(minors), **{k: str(v) for k, v in capacity.items()}}


def dwelling(did: str, mid: str, bedrooms: int, occupants: int | None = None, **fields) -> dict:
    return {"dwelling_id": did, "municipality_id": mid, "bedrooms": str(bedrooms),
            "max_occupants": str(occupants if occupants is not None else 2 * bedrooms), **fields}


def cases_and_persons(*made: tuple[dict, list[dict]]) -> tuple[list[dict], list[dict]]:
    cases = [c for c, _ in made]
    persons = [p for _, ps in made for p in ps]
    return cases, persons


@pytest.fixture(autouse=True, scope="session")
def _highs_mip_options_read() -> None:
    """Read HiGHS's MIP options (one tiny solve, cached for the process) before any test, so a
    test that replaces the solver never answers that call instead, whatever the order."""
    highs_mip_options()


@pytest.fixture
def solve_verified(tmp_path: Path):
    """Solve raw tables and check the plan with the independent verifier; returns the Result."""

    def run(tables: dict[str, pd.DataFrame], the_settings: Settings | None = None, **solve_options):
        the_settings = the_settings or settings()
        problem = build_problem(tables, the_settings)
        result = solve(problem, **solve_options)
        folder = write_problem(tables, tmp_path / "problem", the_settings.model_dump(mode="json"))
        result.write(tmp_path / "out")
        violations = verify_plan(folder, tmp_path / "out" / "plan.csv")
        assert violations == [], violations
        return result

    return run


@pytest.fixture
def mip_searches(monkeypatch) -> list[str]:
    """The MIP searches a solve asks HiGHS for, in order: "bounded" (a neighbourhood or a box)
    or "full" (the full model); LPs are not counted."""
    from allocator.backend import MathOptBackend

    searches: list[str] = []
    real = MathOptBackend.solve

    def record(self, program, objective, **kwargs):
        if not kwargs.get("relax"):
            searches.append("bounded" if kwargs.get("lower") is not None else "full")
        return real(self, program, objective, **kwargs)

    monkeypatch.setattr(MathOptBackend, "solve", record)
    return searches


def fake_breaks(monkeypatch, faking: list[bool]) -> None:
    """The plans chosen from counts "break" a service capacity at the first case's
    municipality whenever ``faking.pop()`` says so (the plan keeps every rule: the break is
    only reported, so the level is refined and may be solved again)."""
    solve_module = importlib.import_module("allocator.solve")  # the package exports the function solve
    real_choose = solve_module.choose_cases

    def choose_cases(model, values):
        found, broken = real_choose(model, values)
        if faking and faking.pop():
            broken = np.union1d(broken, [int(found.iloc[0])]).astype(int)
        return found, broken

    monkeypatch.setattr(solve_module, "choose_cases", choose_cases)


def no_other_repair(monkeypatch) -> None:
    """A plan broken at a service capacity is repaired only by packing the cases taken out back:
    no mend by moving cases, no refill of ties, no MIP around the break."""
    solve_module = importlib.import_module("allocator.solve")
    level_module = importlib.import_module("allocator.level")
    for module, name in ((solve_module, "mend_plan"), (level_module, "mend_plan"), (solve_module, "_refill_ties"),
                         (solve_module, "_mend_around")):
        monkeypatch.setattr(module, name, lambda *a, **k: None)

"""Moving the cases of a plan for housing fit and spread: the same cases stay placed, tied cases
at their tie stay there, the cost never rises, and the plan keeps every rule (checked by the
independent verifier)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from allocator import Settings, build_problem, solve, verify_plan, write_problem
from allocator.aggregate import aggregate
from allocator.demo import NAMED, demo_settings, generate_tables
from allocator.extract import choose_dwellings
from allocator.model import build_model
from allocator.rehouse import Rehouser, rehouse


@pytest.fixture(scope="module")
def round_1k():
    tables = generate_tables(NAMED["national-1k"])
    raw = demo_settings()
    raw.setdefault("solver", {})["time_limit"] = 20.0
    raw.setdefault("objective", {})["priorities"] = [["urgency"], ["ties"]]
    settings = Settings.model_validate(raw)
    problem = build_problem(tables, settings)
    return tables, settings, problem, solve(problem)


def test_moving_cases_lowers_the_waste_and_keeps_every_rule(round_1k, tmp_path):
    tables, settings, problem, result = round_1k
    agg = aggregate(problem)
    model = build_model(agg)
    plan = result.plan[~result.plan["pinned"]]
    munis = pd.Index(agg.municipality_ids)
    start = pd.Series(munis.get_indexer(plan["municipality_id"]), index=plan["case_id"].to_numpy(), dtype=int)
    before = Rehouser(model, start, 1.0, 1.0)
    cost_before = sum(before.totals())

    moved, waste, spread = rehouse(model, start, 1.0, 1.0, time.perf_counter() + 5.0, seed=0)

    assert set(moved.index) == set(start.index)  # the same cases: urgency unchanged
    tie = agg.free_cases.loc[start.index, "tie"].to_numpy()
    at_tie = (tie >= 0) & (tie == start.to_numpy())
    assert np.array_equal(moved.to_numpy()[at_tie], start.to_numpy()[at_tie])  # ties kept
    assert waste + spread < cost_before  # national rounds always leave room to improve
    placed = pd.DataFrame({"municipality": moved, "dwelling_id": ""})
    dwellings = choose_dwellings(model, placed)
    out = pd.DataFrame({"case_id": moved.index, "municipality_id": agg.municipality_ids[moved.to_numpy()],
                        "dwelling_id": dwellings.reindex(moved.index).to_numpy(), "pinned": False})
    folder = write_problem(tables, tmp_path / "problem", settings.model_dump(mode="json"))
    out.to_csv(tmp_path / "plan.csv", index=False)
    assert verify_plan(folder, tmp_path / "plan.csv") == []

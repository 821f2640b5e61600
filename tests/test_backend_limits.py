"""HiGHS does not look at its time limit during presolve, and its interior point method, started
after the limit, runs to the end (national-30k, level 3 with 0.2 s left took 6.6 s). An LP
with less time than its presolve may take is solved without presolve, so the limit holds; a
MIP with that little time is not started, nor the full model with less time than its root."""

from __future__ import annotations

import importlib
from dataclasses import replace

import numpy as np
import pytest
from test_backend_errors import knapsack

import allocator.backend as backend_module
from allocator import Settings, build_problem, solve
from allocator.backend import PRESOLVE_SECONDS_PER_NONZERO, MathOptBackend, Outcome
from allocator.demo import NAMED, demo_settings, generate_tables

level_module = importlib.import_module("allocator.level")


def presolve_lines(time_limit: float) -> tuple[float | None, list[str]]:
    lines: list[str] = []
    out = MathOptBackend().solve(knapsack(), np.array([3.0, 2.0, 2.0]), time_limit=time_limit, relative_gap=0.0,
                                 relax=True, on_line=lines.append)
    return out.objective, [line for line in lines if "presolv" in line.lower()]


def test_an_lp_with_too_little_time_for_presolve_is_not_presolved():
    short = 0.5 * PRESOLVE_SECONDS_PER_NONZERO * knapsack().matrix.nnz
    objective, lines = presolve_lines(short)
    assert objective == pytest.approx(4.0)
    assert lines and all("Presolving model" not in line for line in lines)
    assert any("Not presolved" in line for line in lines)


def test_an_lp_with_time_enough_is_presolved():
    objective, lines = presolve_lines(10.0)
    assert objective == pytest.approx(4.0)
    assert any("Presolving model" in line for line in lines)


def test_a_mip_with_too_little_time_for_presolve_is_not_started(monkeypatch):
    calls = []
    monkeypatch.setattr(backend_module.core_solver, "solve", lambda *a, **k: calls.append(1))
    short = 0.5 * PRESOLVE_SECONDS_PER_NONZERO * knapsack().matrix.nnz
    out = MathOptBackend().solve(knapsack(), np.array([3.0, 2.0, 2.0]), time_limit=short, relative_gap=0.0)
    assert not calls
    assert out.status == "no_solution" and out.values is None and out.bound is None


def test_the_expected_lp_time_follows_the_pace_of_large_lps_solved(monkeypatch):
    # A level skips an LP that cannot finish in its time, by the pace of the LPs solved before.
    backend = MathOptBackend()
    objective = np.array([3.0, 2.0, 2.0])
    backend.solve(knapsack(), objective, time_limit=10.0, relative_gap=0.0, relax=True)
    assert backend.expected_lp_seconds(knapsack()) is None  # a small LP's time is mostly overhead

    monkeypatch.setattr(backend_module, "LP_PACE_MIN_NONZEROS", 1)
    backend.solve(knapsack(), objective, time_limit=10.0, relative_gap=0.0, relax=True, lower=np.ones(3))  # infeasible
    assert backend.expected_lp_seconds(knapsack()) is None  # only LPs solved set the pace
    backend.solve(knapsack(), objective, time_limit=10.0, relative_gap=0.0, relax=True, paced=False)
    assert backend.expected_lp_seconds(knapsack()) is None  # nor one solved beside another solve
    lp = backend.solve(knapsack(), objective, time_limit=10.0, relative_gap=0.0, relax=True)
    assert backend.expected_lp_seconds(knapsack()) == pytest.approx(lp.seconds)
    lock = [(np.ones(3), 1.0)]  # one row of three more nonzeros
    nonzeros = knapsack().matrix.nnz
    assert backend.expected_lp_seconds(knapsack(), lock) == pytest.approx(lp.seconds * (nonzeros + 3) / nonzeros)
    # A MIP does not set it.
    backend.lp_pace = None
    backend.solve(knapsack(), objective, time_limit=10.0, relative_gap=0.0)
    assert backend.expected_lp_seconds(knapsack()) is None


def test_without_time_for_the_full_model_the_level_keeps_its_plan_even_when_the_box_found_none(monkeypatch):
    # national-10k in 3 s: the rounding box had no time, and the full model, given 0.3 s, took
    # 2.6 s to give back its hint. With less time left than several LP solves, the full model is
    # not started, whether the box found a plan or not.
    original = MathOptBackend.solve
    full_models = []

    def solver(self, model, objective, **options):
        if options.get("relax"):  # the LPs, as if each took 100 s
            return replace(original(self, model, objective, **options), seconds=100.0)
        if options.get("upper") is not None:  # the rounding box finds nothing
            return Outcome("no_solution", None, None, None, 0.0, 0, "no time")
        if options.get("hint") is not None:  # the full model, started from the best plan
            full_models.append(options["time_limit"])
        return original(self, model, objective, **options)

    monkeypatch.setattr(MathOptBackend, "solve", solver)
    # No packing: the rounded and filled plan is the level's only plan before the box.
    monkeypatch.setattr(level_module, "lp_pool_totals", lambda model, values: np.zeros(len(model.agg.pools)))
    settings = Settings.model_validate(demo_settings()).with_overrides(
        objective__priorities=[["urgency"]], solver__time_limit=30.0)
    result = solve(build_problem(generate_tables(NAMED["national-1k"]), settings))
    level = result.levels[0]
    assert full_models == []
    assert level.objective is not None and level.bound is not None
    assert level.objective < level.bound  # the filled plan, not proven here, but a plan with its bound
    assert len(result.plan) > 0

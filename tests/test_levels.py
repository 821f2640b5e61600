"""Small rules of a level's proof."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from allocator.backend import Outcome, integral_objective
from allocator.level import BoundsSeen
from allocator.result import LevelResult
from allocator.settings import Settings
from allocator.solve import _levels_of_plan


def test_a_count_of_ties_is_whole_on_every_plan():
    assert integral_objective(np.array([True, True, False]), np.array([1.0, 2.0, 0.0]))


def test_fractional_weights_or_continuous_terms_are_not():
    assert not integral_objective(np.array([True, True]), np.array([1.0, 0.5]))
    assert not integral_objective(np.array([True, False]), np.array([1.0, 1.0]))


def _reported(objective: float, bound: float) -> LevelResult:
    level = LevelResult(["urgency"], "optimal", objective, bound, 1.0, 0, bound_from="branch_and_bound")
    return _levels_of_plan(Settings(), [level], {"urgency": objective}, {})[0]


def test_a_plan_above_its_levels_bound_disproves_the_bound(caplog):
    # HiGHS has claimed proofs that other plans beat (docs/model.md, "Proof"): such a bound
    # must not be reported as a proof, nor quietly raised to the plan's value.
    with caplog.at_level(logging.WARNING, logger="allocator"):
        level = _reported(objective=100.0, bound=99.9)
    assert level.bound is None and level.status == "feasible" and level.gap is None
    assert level.bound_from == ""  # no bound, no source
    assert "does not hold" in caplog.text


def test_the_last_bits_between_the_two_scorings_do_not():
    level = _reported(objective=100.0, bound=100.0 - 1e-9)
    assert level.bound == 100.0 and level.status == "optimal" and level.gap == 0.0
    assert level.bound_from == "branch_and_bound"


def test_the_levels_leave_time_for_making_the_last_plan_and_the_result(monkeypatch):
    """What a level took from its search's end to the next level (here a slow plan frame, 0.3 s)
    is kept back from the time of the levels after it, for the last level's plan and the
    result, so that the solve ends near its limit instead of past it."""
    import time

    from allocator import build_problem, solve
    from allocator.demo import InstanceSpec, generate_tables

    module = sys.modules["allocator.solve"]
    budgets, frame = [], module.plan_frame
    solve_level = module.solve_level

    def recording(*args, budget, **kwargs):
        budgets.append((budget, time.perf_counter()))
        return solve_level(*args, budget=budget, **kwargs)

    def slow_frame(*args, **kwargs):
        if len(budgets) == 1:
            time.sleep(0.3)
        return frame(*args, **kwargs)

    monkeypatch.setattr(module, "solve_level", recording)
    monkeypatch.setattr(module, "plan_frame", slow_frame)
    problem = build_problem(generate_tables(InstanceSpec(cases=40, seed=3)), Settings())
    limit = 20.0
    started = time.perf_counter()
    solve(problem, problem.settings.with_overrides(objective__priorities=[["urgency"], ["ties"]],
                                                   solver__time_limit=limit))
    assert len(budgets) == 2
    budget, called = budgets[1]
    # The last level's time: what is left of the limit, less the 0.3 s that level 1's plan took.
    assert budget <= started + limit - called - 0.25


def test_where_the_lp_bound_is_above_every_plan_the_full_model_proves_the_packed_one(solve_verified, mip_searches):
    """Families of three and four persons at resolutions of five and seven: the LP fills them
    with parts of families, no plan can, and its bound is above every plan. The LP's cases are
    packed, CP-SAT finds no plan at that bound near them, and the full model comes next (its
    root proves the optimum), not HiGHS's search of the neighbourhood nor the rounding box."""
    result = solve_verified(*_families_above_the_resolutions())
    level = result.levels[0]
    assert level.status == "optimal" and level.objective == pytest.approx(level.bound)
    assert mip_searches == ["full"]
    assert len(result.plan) == 4  # one family each at A and B, a family of three and one of four at C


def _families_above_the_resolutions():
    """Families of three and four persons at resolutions of five and seven, urgency alone: the
    LP fills the resolutions with parts of families, and its bound is above every plan."""
    from conftest import cases_and_persons, family, muni, settings, tiny_tables

    munis = [muni("A", 5), muni("B", 5), muni("C", 7)]
    cases, persons = cases_and_persons(
        *(family(f"F{i}", [30, 30, 30], days=100 + 10 * i) for i in range(4)),
        *(family(f"G{i}", [30, 30, 30, 30], days=105 + 10 * i) for i in range(4)))
    return tiny_tables(munis, cases, persons), settings(objective__priorities=[["urgency"]])


def test_a_packing_stalled_below_the_rounded_plan_goes_to_the_full_model_from_the_rounded_plan(
        solve_verified, monkeypatch):
    """Where the packing stalls with a plan worse than the rounded one (here: it places nobody),
    no search runs around the packing: neither CP-SAT nor HiGHS's neighbourhood search, nor the
    rounding box. The full model starts from the rounded plan and proves the level."""
    from allocator.backend import MathOptBackend
    from allocator.pack import Packing

    searches: list[str] = []
    hints: list[float] = []
    real = MathOptBackend.solve

    def record(self, program, objective, **kwargs):
        if not kwargs.get("relax"):
            searches.append("bounded" if kwargs.get("lower") is not None else "full")
            hints.append(float(objective @ kwargs["hint"]))
        return real(self, program, objective, **kwargs)

    def no_cp_sat(*args, **kwargs):
        raise AssertionError("CP-SAT searched around a packing worse than the rounded plan")

    def stalled(model, y_lp, totals, deadline, seed=0):
        return Packing(np.zeros(model.n_vars), False, np.ones(model.agg.n_municipalities, dtype=bool))

    monkeypatch.setattr(MathOptBackend, "solve", record)
    monkeypatch.setattr(MathOptBackend, "find_plan", no_cp_sat)
    monkeypatch.setattr(sys.modules["allocator.level"], "pack_lp_totals", stalled)
    result = solve_verified(*_families_above_the_resolutions())
    level = result.levels[0]
    assert level.status == "optimal" and level.objective == pytest.approx(level.bound)
    assert searches == ["full"]
    assert hints[0] > 0  # the rounded plan, not the packing's empty one
    assert len(result.plan) == 4


@pytest.mark.parametrize(("bound", "source"), [
    (None, ""), (100.0, "lp_relaxation"), (90.0, "ties_count"), (95.0, "earlier_solve"),
    (80.0, "branch_and_bound"),
])
def test_a_level_s_bound_is_told_by_where_it_comes_from(bound, source):
    seen = BoundsSeen(lp=100.0, ties_count=90.0, earlier=95.0)
    assert seen.source_of(Outcome("feasible", None, 70.0, bound, 0.0, 0, "")) == source
    # A source the level named itself stands.
    named = Outcome("optimal", None, 0.0, bound, 0.0, 0, "", bound_from="trivial")
    assert seen.source_of(named) == ("" if bound is None else "trivial")

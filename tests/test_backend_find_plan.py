"""CP-SAT's search for a plan at a target: whole values, every row kept, its best plan where none
reaches the target, and the result's solver names CP-SAT once one of its plans is used."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from test_backend_errors import knapsack

from allocator.backend import MathOptBackend, StopFlag, _fixed_out, _keeps_rows
from allocator.model import LinearProgram
from allocator.level import _finish_packing


def find(program: LinearProgram, objective: np.ndarray, target: float, backend: MathOptBackend | None = None,
         hint: np.ndarray | None = None, **kwargs):
    backend = backend or MathOptBackend()
    return backend.find_plan(program, objective, target, lower=program.lower, upper=program.upper, hint=hint,
                             time_limit=10.0, **kwargs)


def test_finds_a_plan_at_the_target_and_names_cp_sat():
    backend = MathOptBackend()
    assert "CP-SAT" not in backend.version
    out = find(knapsack(), np.array([3.0, 2.0, 2.0]), 3.5, backend)
    assert out.status == "feasible" and out.bound is None and out.detail == "CP-SAT: a plan at the target"
    assert out.values.tolist() == [0.0, 1.0, 1.0] and out.objective == pytest.approx(4.0)
    assert backend.version.endswith("+ CP-SAT")


def test_the_best_plan_comes_back_where_none_reaches_the_target():
    out = find(knapsack(), np.array([3.0, 2.0, 2.0]), 4.5, hint=np.array([1.0, 0.0, 0.0]))
    assert out.status == "feasible" and out.detail == "CP-SAT: its best plan in time"
    assert out.values.tolist() == [0.0, 1.0, 1.0]


def test_no_plan_where_the_model_has_none():
    program = knapsack()
    out = find(program, np.array([3.0, 2.0, 2.0]), 0.0, locks=[(np.array([1.0, 1.0, 0.0]), 2.0)])  # a and b
    assert out.status == "no_solution" and out.values is None


def test_bounds_and_locks_restrict_the_plans():
    program = knapsack()
    upper = program.upper.copy()
    upper[2] = 0.0  # c out: the best is a alone (3)
    out = MathOptBackend().find_plan(program, np.array([3.0, 2.0, 2.0]), 2.5, lower=program.lower, upper=upper,
                                     hint=None, time_limit=10.0)
    assert out.values.tolist() == [1.0, 0.0, 0.0]
    # A lock that a be taken leaves a alone (3), short of 3.5.
    out = find(program, np.array([3.0, 2.0, 2.0]), 3.5, locks=[(np.array([1.0, 0.0, 0.0]), 1.0)])
    assert out.values.tolist() == [1.0, 0.0, 0.0] and out.detail == "CP-SAT: its best plan in time"


def test_continuous_variables_come_back_whole():
    # max x + y with x + y <= 1.5, x continuous in [0, 1.5], y integer in [0, 1]: the MIP can reach
    # 1.5 (y = 1, x = 0.5); whole values reach 1 at most.
    program = LinearProgram(lower=np.zeros(2), upper=np.array([1.5, 1.0]), integer=np.array([False, True]),
                            matrix=sp.csr_matrix(np.array([[1.0, 1.0]])), row_lower=np.array([-np.inf]),
                            row_upper=np.array([1.5]))
    out = find(program, np.array([1.0, 1.0]), 1.25)
    assert out.objective == pytest.approx(1.0) and out.detail == "CP-SAT: its best plan in time"
    assert np.array_equal(out.values, np.rint(out.values))


def test_a_stopped_round_asks_nothing():
    stop = StopFlag()
    stop.stop()
    out = find(knapsack(), np.array([3.0, 2.0, 2.0]), 1.0, stop=stop)
    assert out.status == "no_solution" and out.detail == "stopped"


def test_a_plan_that_breaks_a_row_lock_or_bound_is_told():
    program = knapsack()
    lower, upper = program.lower, program.upper
    assert _keeps_rows(program, [], np.array([0.0, 1.0, 1.0]), lower, upper)
    assert not _keeps_rows(program, [], np.array([1.0, 1.0, 0.0]), lower, upper)  # 2 + 1 > 2
    assert not _keeps_rows(program, [(np.array([1.0, 0.0, 0.0]), 1.0)], np.array([0.0, 1.0, 1.0]), lower, upper)
    assert not _keeps_rows(program, [], np.array([0.0, 2.0, 0.0]), lower, upper)  # b above its bound


def test_a_last_level_stops_at_the_first_plan_within_the_gap():
    # A knapsack of 300 items with five weights, and a greedy plan within 5% of its LP bound:
    # with no level below, that plan is the level's proven answer; with levels below (locked
    # to its value) the search goes on towards the bound.
    rng = np.random.default_rng(0)
    weights, values = rng.integers(1, 30, size=(5, 300)).astype(float), rng.integers(1, 40, size=300).astype(float)
    capacity = weights.sum(axis=1) / 3
    program = LinearProgram(lower=np.zeros(300), upper=np.ones(300), integer=np.ones(300, dtype=bool),
                            matrix=sp.csr_matrix(weights), row_lower=np.full(5, -np.inf), row_upper=capacity)
    greedy, used = np.zeros(300), np.zeros(5)
    for item in np.argsort(-values / weights.sum(axis=0)):
        if (used + weights[:, item] <= capacity).all():
            greedy[item], used = 1.0, used + weights[:, item]
    bound = MathOptBackend().solve(program, values, time_limit=10.0, relative_gap=0.0, relax=True).objective
    assert values @ greedy >= 0.95 * bound

    def finish(polish: bool) -> float:
        return _finish_packing(MathOptBackend(), program, values, greedy, program.lower, program.upper, bound, 0.05,
                               lambda: 10.0, 10.0, None, {"locks": [], "seed": 0, "stop": None},
                               polish=polish).objective

    assert finish(False) == pytest.approx(values @ greedy)
    assert finish(True) > values @ greedy + 1


@pytest.mark.parametrize("first_plan", [False, True])
def test_a_search_for_the_first_plan_runs_cp_sat_with_its_options(first_plan, monkeypatch):
    import allocator.backend as backend_module
    from allocator.backend import CP_SAT_FIRST_PLAN_OPTIONS

    asked = []
    call = backend_module._call

    def spy(proto, solver_type, params, *args, **kwargs):
        asked.append(params.cp_sat)
        return call(proto, solver_type, params, *args, **kwargs)

    monkeypatch.setattr(backend_module, "_call", spy)
    out = find(knapsack(), np.array([3.0, 2.0, 2.0]), 3.5, first_plan=first_plan)
    assert out.objective == pytest.approx(4.0)
    assert len(asked) == 1
    for key, value in CP_SAT_FIRST_PLAN_OPTIONS.items():
        assert (getattr(asked[0], key) == value) == first_plan


def test_fixed_variables_are_taken_out_and_come_back_at_their_values():
    # b fixed at 1 leaves a row of a and c with 1 of its 2 left: c (2) and b (2) make 4; with a
    # lock that a + c >= 1, too.
    program = knapsack()
    lower = program.lower.copy()
    lower[1] = 1.0
    restricted = _fixed_out(program, [(np.array([1.0, 0.0, 1.0]), 1.0)], lower, program.upper)
    assert restricted.free.tolist() == [0, 2] and restricted.fixed.tolist() == [0.0, 1.0, 0.0]
    small = restricted.program
    assert small.matrix.toarray().tolist() == [[2.0, 1.0], [1.0, 1.0]]
    assert small.row_upper.tolist() == [1.0, np.inf] and small.row_lower.tolist() == [-np.inf, 1.0]
    out = MathOptBackend().find_plan(program, np.array([3.0, 2.0, 2.0]), 3.5, lower=lower, upper=program.upper,
                                     hint=np.array([0.0, 1.0, 0.0]), time_limit=10.0,
                                     locks=[(np.array([1.0, 0.0, 1.0]), 1.0)])
    assert out.values.tolist() == [0.0, 1.0, 1.0] and out.objective == pytest.approx(4.0)
    assert out.detail == "CP-SAT: a plan at the target"


def test_fixed_values_that_break_a_row_alone_have_no_plan():
    # a and b fixed at 1 use 3 of the row's 2, and the row keeps no free variable once c is fixed.
    program = knapsack()
    lower = np.array([1.0, 1.0, 0.0])
    upper = np.array([1.0, 1.0, 0.0])
    assert _fixed_out(program, [], lower, upper) is None
    out = MathOptBackend().find_plan(program, np.array([3.0, 2.0, 2.0]), 0.0, lower=lower, upper=upper,
                                     hint=None, time_limit=10.0)
    assert out.status == "no_solution" and out.detail == "the fixed counts break a row"
    # Every variable fixed within the row: the plan is the fixed one.
    out = MathOptBackend().find_plan(program, np.array([3.0, 2.0, 2.0]), 0.0, lower=np.array([0.0, 1.0, 1.0]),
                                     upper=np.array([0.0, 1.0, 1.0]), hint=None, time_limit=10.0)
    assert out.values.tolist() == [0.0, 1.0, 1.0] and out.objective == pytest.approx(4.0)

"""Where every plan's value is a whole number (the ties term), a bound less than one above the best
plan proves it. HiGHS notes an integral objective but stops only at its own gap: on the demo round
its ties level had 206 ties and a bound of 206.7 at its root and ran on to its time limit (27 s).
The backend tells it to stop there, and reports the bound rounded down."""

from __future__ import annotations

import numpy as np
import pytest
from test_backend_errors import knapsack, params_asked

from allocator.backend import INTEGRAL_GAP, MathOptBackend


def test_an_integral_objective_stops_within_one_of_the_plan_and_rounds_its_bound(monkeypatch):
    asked = params_asked(monkeypatch)
    out = MathOptBackend().solve(knapsack(), np.array([3.0, 2.0, 2.0]), time_limit=10.0, relative_gap=1e-4,
                                 absolute_gap=0.01)
    assert [p.absolute_gap_tolerance for p in asked] == [pytest.approx(INTEGRAL_GAP)]
    assert out.status == "optimal" and out.objective == pytest.approx(4.0)
    assert out.bound == 4.0


def test_a_fractional_objective_keeps_the_gap_asked(monkeypatch):
    asked = params_asked(monkeypatch)
    out = MathOptBackend().solve(knapsack(), np.array([3.5, 2.0, 2.0]), time_limit=10.0, relative_gap=1e-4,
                                 absolute_gap=0.01)
    assert [p.absolute_gap_tolerance for p in asked] == [pytest.approx(0.01)]
    assert out.objective == pytest.approx(4.0)


def test_an_lp_is_solved_to_its_optimum_whatever_its_objective(monkeypatch):
    # The LP's optimum is a value the levels use (a vertex to round, a bound they round down
    # themselves where it is whole), not only a bound.
    asked = params_asked(monkeypatch)
    out = MathOptBackend().solve(knapsack(), np.array([3.0, 2.0, 2.0]), time_limit=10.0, relative_gap=0.0,
                                 relax=True)
    assert [p.absolute_gap_tolerance for p in asked] == [0.0]
    assert out.objective == pytest.approx(4.0)

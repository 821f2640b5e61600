"""HiGHS does not look at its time limit during presolve, and its interior point method, started
after the limit, runs to the end (national-30k, level 3 with 0.2 s left took 6.6 s). An LP
with less time than its presolve may take is solved without presolve, so the limit holds; a
MIP with that little time is not started."""

from __future__ import annotations

import numpy as np
import pytest
from test_backend_errors import knapsack

import allocator.backend as backend_module
from allocator.backend import PRESOLVE_SECONDS_PER_NONZERO, MathOptBackend


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

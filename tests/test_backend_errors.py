"""A solver that fails internally (HiGHS answered "HighsStatus: kError [INTERNAL]" once in CI
while another thread solved) is asked again, and then answers "no solution" instead of
losing the round; any other solver error is a bug and is raised."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp
from pybind11_abseil.status import Status, StatusCode, StatusNotOk

import allocator.backend as backend_module
from allocator.backend import SOLVER_ERROR_ATTEMPTS, MathOptBackend, StopFlag
from allocator.model import LinearProgram


def knapsack() -> LinearProgram:
    # max 3a + 2b + 2c with 2a + b + c <= 2, integers in [0, 1]: the optimum is 4 (b and c).
    return LinearProgram(lower=np.zeros(3), upper=np.ones(3), integer=np.ones(3, dtype=bool),
                         matrix=sp.csr_matrix(np.array([[2.0, 1.0, 1.0]])),
                         row_lower=np.array([-np.inf]), row_upper=np.array([2.0]))


def params_asked(monkeypatch) -> list:
    """Record the solve parameters of every solver call (the calls still solve)."""
    asked: list = []
    real = backend_module.core_solver.solve

    def solve(model, solver_type, init, params, *args, **kwargs):
        asked.append(params)
        return real(model, solver_type, init, params, *args, **kwargs)

    monkeypatch.setattr(backend_module.core_solver, "solve", solve)
    return asked


def failing(monkeypatch, times: int, code: StatusCode = StatusCode.INTERNAL) -> list[int]:
    """Make the next ``times`` solver calls fail with ``code``; returns the list of calls."""
    calls: list[int] = []
    real = backend_module.core_solver.solve

    def solve(*args, **kwargs):
        calls.append(1)
        if len(calls) <= times:
            raise StatusNotOk(Status(code, "HighsStatus: kError"))
        return real(*args, **kwargs)

    monkeypatch.setattr(backend_module.core_solver, "solve", solve)
    return calls


def test_an_internal_failure_is_asked_again(monkeypatch, caplog):
    calls = failing(monkeypatch, 1)
    with caplog.at_level(logging.WARNING, logger="allocator.backend"):
        out = MathOptBackend().solve(knapsack(), np.array([3.0, 2.0, 2.0]), time_limit=10, relative_gap=0.0)
    assert len(calls) == 2
    assert out.status == "optimal" and out.objective == pytest.approx(4.0)
    assert np.allclose(out.values, [0, 1, 1])
    assert any("solver error on attempt 1" in r.getMessage() for r in caplog.records)


def test_a_failure_that_stays_answers_no_solution(monkeypatch):
    calls = failing(monkeypatch, SOLVER_ERROR_ATTEMPTS)
    out = MathOptBackend().solve(knapsack(), np.array([3.0, 2.0, 2.0]), time_limit=10, relative_gap=0.0)
    assert len(calls) == SOLVER_ERROR_ATTEMPTS
    assert out.status == "no_solution" and out.values is None and out.bound is None
    assert out.detail.startswith("solver error: ")


def test_any_other_solver_error_is_raised(monkeypatch):
    calls = failing(monkeypatch, 1, StatusCode.INVALID_ARGUMENT)
    with pytest.raises(StatusNotOk):
        MathOptBackend().solve(knapsack(), np.array([3.0, 2.0, 2.0]), time_limit=10, relative_gap=0.0)
    assert len(calls) == 1


def test_a_stop_leaves_a_solver_call_that_does_not_listen_behind(monkeypatch):
    # MathOpt's HiGHS takes no interrupter: a stop during its search must not wait for its
    # time limit. Here the "solver" sleeps 10 s; the stop comes after 0.2 s.
    monkeypatch.setattr(backend_module.core_solver, "solve", lambda *a, **k: time.sleep(10))
    stop = StopFlag()
    threading.Timer(0.2, stop.stop).start()
    started = time.perf_counter()
    out = MathOptBackend().solve(knapsack(), np.array([3.0, 2.0, 2.0]), time_limit=30, relative_gap=0.0, stop=stop)
    assert time.perf_counter() - started < 5
    assert out.status == "no_solution" and out.values is None and out.detail == "stopped"
    # Once stopped, no solver call is started at all.
    assert MathOptBackend().solve(knapsack(), np.array([3.0, 2.0, 2.0]), time_limit=30, relative_gap=0.0,
                                  stop=stop).detail == "stopped"


def test_with_a_stop_flag_that_is_never_set_the_answer_is_the_solvers():
    out = MathOptBackend().solve(knapsack(), np.array([3.0, 2.0, 2.0]), time_limit=10, relative_gap=0.0,
                                 stop=StopFlag())
    assert out.status == "optimal" and out.objective == pytest.approx(4.0)

"""HiGHS's MIPs run without restarts: after one, it claimed proofs that other plans beat
(docs/model.md, "Proof"). LPs have no restarts to turn off."""

from __future__ import annotations

import numpy as np
from test_backend_errors import knapsack

import allocator.backend as backend_module
from allocator.backend import HIGHS_MIP_OPTIONS, MathOptBackend


def bool_options_asked(monkeypatch) -> list[dict[str, bool]]:
    """Record HiGHS's boolean options of every solver call (the calls still solve)."""
    asked: list[dict[str, bool]] = []
    real = backend_module.core_solver.solve

    def solve(model, solver_type, init, params, *args, **kwargs):
        asked.append(dict(params.highs.bool_options))
        return real(model, solver_type, init, params, *args, **kwargs)

    monkeypatch.setattr(backend_module.core_solver, "solve", solve)
    return asked


def test_a_mip_is_solved_without_restarts(monkeypatch):
    asked = bool_options_asked(monkeypatch)
    out = MathOptBackend().solve(knapsack(), np.array([3.5, 2.0, 2.0]), time_limit=10.0, relative_gap=1e-4)
    assert asked == [{"mip_allow_restart": False}] == [HIGHS_MIP_OPTIONS]
    assert out.status == "optimal" and out.objective == 4.0


def test_an_lp_gets_no_mip_options(monkeypatch):
    asked = bool_options_asked(monkeypatch)
    MathOptBackend().solve(knapsack(), np.array([3.5, 2.0, 2.0]), time_limit=10.0, relative_gap=0.0, relax=True)
    assert asked == [{}]

"""SCIP, the second backend: a call that cannot be stopped gets no interrupter, because with one
SCIP (OR-Tools 9.15) writes an error about its event handler to the terminal on every call."""

from __future__ import annotations

import numpy as np
from test_backend_errors import knapsack

from allocator.backend import MathOptBackend


def test_scip_solves_quietly_without_a_stop_flag(capfd):
    out = MathOptBackend("scip").solve(knapsack(), np.array([3.5, 2.0, 2.0]), time_limit=10.0, relative_gap=1e-4)
    assert out.status == "optimal" and out.objective == 4.0
    assert "SCIPcatchEvent" not in capfd.readouterr().err

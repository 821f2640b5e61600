"""An LP's dual values of its locks: what a unit more of a lock's bound costs the objective. The
search that moves cases prices the locked scores by them."""

from __future__ import annotations

import numpy as np
import pytest
from test_backend_errors import knapsack

from allocator.backend import MathOptBackend


def test_a_binding_lock_has_the_price_of_its_bound_and_a_slack_one_none():
    # The knapsack's LP: 3a + 2b + 2c with 2a + b + c <= 2. Holding a >= 0.5 takes room that b
    # and c would use for 4 per 2 of room, so each unit of a costs 4 - 3 = 1; b >= 0 costs nothing.
    locks = [(np.array([1.0, 0.0, 0.0]), 0.5), (np.array([0.0, 1.0, 0.0]), 0.0)]
    out = MathOptBackend().solve(knapsack(), np.array([3.0, 2.0, 2.0]), locks=locks, time_limit=10.0,
                                 relative_gap=0.0, relax=True)
    assert out.objective == pytest.approx(3.5)
    assert np.abs(out.lock_duals) == pytest.approx([1.0, 0.0], abs=1e-7)


def test_an_lp_without_locks_has_none_to_price():
    out = MathOptBackend().solve(knapsack(), np.array([3.0, 2.0, 2.0]), time_limit=10.0, relative_gap=0.0,
                                 relax=True)
    assert out.lock_duals is not None and len(out.lock_duals) == 0

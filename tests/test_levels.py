"""Small rules of a level's proof."""

from __future__ import annotations

import numpy as np

from allocator.backend import integral_objective


def test_a_count_of_ties_is_whole_on_every_plan():
    assert integral_objective(np.array([True, True, False]), np.array([1.0, 2.0, 0.0]))


def test_fractional_weights_or_continuous_terms_are_not():
    assert not integral_objective(np.array([True, True]), np.array([1.0, 0.5]))
    assert not integral_objective(np.array([True, False]), np.array([1.0, 1.0]))

"""Small rules of a level's proof."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from allocator.model import LinearProgram
from allocator.solve import _integral_objective


def program(integer: list[bool]) -> LinearProgram:
    n = len(integer)
    return LinearProgram(lower=np.zeros(n), upper=np.ones(n), integer=np.array(integer),
                         matrix=sp.csr_matrix((0, n)), row_lower=np.zeros(0), row_upper=np.zeros(0))


def test_a_count_of_ties_is_whole_on_every_plan():
    assert _integral_objective(program([True, True, False]), np.array([1.0, 2.0, 0.0]))


def test_fractional_weights_or_continuous_terms_are_not():
    assert not _integral_objective(program([True, True]), np.array([1.0, 0.5]))
    assert not _integral_objective(program([True, False]), np.array([1.0, 1.0]))

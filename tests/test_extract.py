"""Giving class slots to concrete cases: swaps that mend a broken service capacity."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from allocator.extract import _lighter_swap

# Two profiles of one class: q0 uses a school place, q1 does not.
USE = np.array([[1.0], [0.0]])
CLS = np.array([0, 0])


def counts(**placed: int) -> defaultdict:
    out = defaultdict(int)
    for key, n in placed.items():
        q, m = key[1:].split("m")
        out[(int(q), int(m))] = n
    return out


def test_swaps_with_a_lighter_case_at_a_municipality_with_room():
    left = np.array([[-1.0], [2.0]])  # municipality 0 is one school place over
    swap = _lighter_swap(0, 0, counts(q0m0=1, q1m1=1), np.zeros(2, dtype=int), left, USE, CLS)
    assert swap == (1, 1)


def test_swaps_with_an_unassigned_lighter_case():
    left = np.array([[-1.0], [0.0]])
    swap = _lighter_swap(0, 0, counts(q0m0=1), np.array([0, 1]), left, USE, CLS)
    assert swap == (1, None)


def test_no_swap_that_would_break_the_other_municipality():
    left = np.array([[-1.0], [0.0]])  # municipality 1 has no school place for the heavier case
    assert _lighter_swap(0, 0, counts(q0m0=1, q1m1=1), np.zeros(2, dtype=int), left, USE, CLS) is None

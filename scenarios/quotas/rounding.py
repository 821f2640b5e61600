"""Whole-person rounding that keeps the national number exact: the largest-remainder method.

Each unit's exact (fractional) number is ``total * weight / sum(weight)``. Every unit first gets
the whole part of its number; the persons still missing (at most one per unit) go to the units
with the largest fractional remainders. Ties in the remainder go to the unit with the larger
exact number, then to the unit that comes first in the input. The result adds up to ``total``
exactly, and no unit is more than one person away from its exact number (Hamilton's method).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Guards against floating-point noise such as 27.999999999 being floored to 27.
_EPS = 1e-9


def largest_remainder(weights: Sequence[float] | np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` whole persons in proportion to ``weights``.

    Parameters
    ----------
    weights
        Non-negative weights, one per unit (municipality, county). Only their proportions matter.
    total
        Persons to split, ``>= 0``.

    Returns
    -------
    numpy.ndarray
        Integers, one per unit, adding up to ``total``; a unit of weight 0 always gets 0.

    Raises
    ------
    ValueError
        If a weight is negative or not finite, or ``total > 0`` while every weight is 0.

    Examples
    --------
    >>> largest_remainder([0.5, 0.3, 0.2], 7).tolist()   # exact 3.5, 2.1, 1.4
    [4, 2, 1]
    """
    w = np.asarray(weights, dtype=float)
    total = int(total)
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if w.ndim != 1:
        raise ValueError("weights must be one-dimensional")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    if total == 0 or len(w) == 0:
        if total > 0:
            raise ValueError("cannot split a positive total over no units")
        return np.zeros(len(w), dtype=int)
    if w.sum() <= 0:
        raise ValueError("cannot split a positive total when every weight is 0")
    exact = w / w.sum() * total
    whole = np.floor(exact + _EPS).astype(int)
    remainder = np.where(w > 0, exact - whole, -np.inf)
    missing = total - int(whole.sum())
    if missing > 0:
        # lexsort sorts by the last key first: remainder (desc), exact (desc), position (asc).
        order = np.lexsort((np.arange(len(w)), -exact, -remainder))
        whole[order[:missing]] += 1
    elif missing < 0:  # only possible through the epsilon guard; take from the smallest remainders
        order = np.lexsort((-np.arange(len(w)), exact, np.where(whole > 0, remainder, np.inf)))
        whole[order[:-missing]] -= 1
    return whole

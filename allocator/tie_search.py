"""The ties level's search around the ties its LP honours and the plan does not.

Where the packings and the moves of :mod:`.ties` stop short of the LP's ties, the cases that
would honour one more are often a chain away: a tied case takes a place at its tie municipality
only once someone there moves, which needs room elsewhere, and the urgency lock allows almost
no other choice of cases. CP-SAT finds such chains in the municipalities where the LP honours
more ties than the plan and those with persons to spare (where the cases making way can go),
the counts elsewhere fixed; which cases are chosen stays free within the locks.
national-5k: 320 -> 322 ties in 2.9 s (the full model from there found 323, the optimum, and
proved it); national-10k: 608 -> 609, the optimum. HiGHS's MIP over the same municipalities
found nothing in 6.2 s on national-5k.
"""

from __future__ import annotations

import numpy as np

from .backend import MathOptBackend, Outcome, StopFlag
from .model import LinearProgram, PlacementModel
from .room import Room


def tie_neighbourhood(model: PlacementModel, lp_values: np.ndarray, plan: np.ndarray) -> tuple[np.ndarray, int]:
    """Municipalities the search may change (a mask) and how many of them are short of the
    LP's ties: those where the LP (``lp_values``, a full vector) honours more ties than the
    ``plan`` (a full vector), and those where the plan leaves persons to spare."""
    n = model.agg.n_municipalities
    a = model.blocks["a"]
    honoured_lp = np.bincount(model.a_muni, weights=lp_values[a], minlength=n)
    honoured = np.bincount(model.a_muni, weights=plan[a], minlength=n)
    short = honoured_lp > honoured + 1e-6
    spare = Room(model, np.rint(plan[model.blocks["y"]])).persons >= 1
    return short | spare, int(short.sum())


def search_around_ties(
    backend: MathOptBackend,
    model: PlacementModel,
    program: LinearProgram,
    columns: np.ndarray,
    objective: np.ndarray,
    lp_values: np.ndarray,
    plan: np.ndarray,
    *,
    target: float,
    time_limit: float,
    locks: list[tuple[np.ndarray, float]],
    seed: int,
    stop: StopFlag | None = None,
) -> tuple[Outcome, np.ndarray, int]:
    """CP-SAT from ``plan`` with the counts of every municipality outside
    :func:`tie_neighbourhood` fixed, stopping at a plan of ``target`` ties: its outcome (values
    over ``columns``, the variables of ``program``), the neighbourhood and how many of its
    municipalities are short of the LP's ties. ``lp_values`` and ``plan`` are full vectors."""
    near, short = tie_neighbourhood(model, lp_values, plan)
    hint = plan[columns]
    y_in = np.searchsorted(columns, np.arange(model.blocks["y"].start, model.blocks["y"].stop))
    lower, upper = program.lower.copy(), program.upper.copy()
    fixed = y_in[~near[model.y_muni]]
    lower[fixed] = upper[fixed] = np.rint(hint[fixed])
    found = backend.find_plan(program, objective, target, lower=lower, upper=upper, hint=hint,
                              time_limit=time_limit, locks=locks, seed=seed, stop=stop)
    return found, near, short


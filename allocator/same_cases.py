"""The ties level for the cases the plan above chose: with which cases are chosen fixed, urgency
(and so every lock on it) is exactly the plan above's, and what is left is only where those
cases go.

The ties level's own LP may trade cases within the lock (fractions of other, equally urgent
cases at their tie municipalities). Where its counts do not pack, the plan above's cases are
placed from the LP of the same level with those cases fixed: its counts do fit these cases, so
the packing mostly completes, and where it stalls, a MIP over the municipalities around the
cases still waiting (the rest of the packing kept, the cases still fixed) finishes it, as on
the first level. national-5k seed 6: the packings from the level's LP failed for 4 s and the
moves after them reached 221 ties; with the cases fixed, the LP gives 314.6, the packing leaves
8 single adults, and the MIP over 49 municipalities places them with 312 ties in 0.9 s (313 is
the best these cases allow). Where that MIP has no plan, a second one frees every municipality
within reach of the cases still waiting (:func:`within_reach`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from .backend import MathOptBackend, Outcome, StopFlag
from .model import LinearProgram, PlacementModel
from .pack import Packing, lp_pool_totals, pack_with_ties
from .plans import expand
from .room import Lack, Room

log = logging.getLogger(__name__)

#: Share of the time left to the deadline for the LP (the packing and the MIP need the rest).
LP_SHARE = 0.6
#: With the cases fixed, the LP takes this share of the time the level's own LP is expected to
#: take at most (measured against the level's LP: national-2k 0.33 of 0.46 s, -5k 0.66 of 1.26 s,
#: -10k 1.40 of 1.89 s, -30k 3.02 of 4.4 s).
FIXED_CASES_PACE = 0.75


@dataclass(frozen=True)
class SameCases:
    """The LP with the cases fixed (its optimum bounds what these cases can reach) and, if
    found, a placement of all of them: a full vector of the model (y, w, s and, from a search,
    every other block)."""

    lp: Outcome
    values: np.ndarray | None


def case_bounds(
    model: PlacementModel, program: LinearProgram, columns: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``program`` (over ``columns``) with the choice of cases fixed at ``values``
    (over ``columns``): the ``w`` and ``s`` blocks, which alone carry urgency."""
    lower, upper = program.lower.copy(), program.upper.copy()
    for block in ("w", "s"):
        span = np.arange(model.blocks[block].start, model.blocks[block].stop)
        at = np.searchsorted(columns, span)
        lower[at] = upper[at] = np.rint(values[at])
    return lower, upper


def lp_fits(level_lp_seconds: float | None, seconds: float) -> bool:
    """Is the LP with the cases fixed expected to finish in its share of a step of ``seconds``,
    where the level's own LP is expected to take ``level_lp_seconds`` (None: not known)?"""
    return level_lp_seconds is None or level_lp_seconds * FIXED_CASES_PACE <= seconds * LP_SHARE


def place_same_cases(
    backend: MathOptBackend,
    model: PlacementModel,
    program: LinearProgram,
    columns: np.ndarray,
    objective: np.ndarray,
    above: np.ndarray,
    *,
    deadline: float,
    relative_gap: float,
    seed: int,
    locks: list[tuple[np.ndarray, float]],
    threads: int = 1,
    stop: StopFlag | None = None,
) -> SameCases | None:
    """Place the cases of ``above`` (the plan of the level above, over ``columns``) to maximise
    ``objective``, keeping which cases are chosen; None if the LP is not solved by ``deadline``.
    """
    common = dict(locks=locks, seed=seed, threads=threads, stop=stop)
    lower, upper = case_bounds(model, program, columns, above)
    left = deadline - time.perf_counter()
    expected = backend.expected_lp_seconds(program, locks)
    if not lp_fits(expected, left):
        # It would not finish in its time (national-30k, 60 s: 2.5 s spent on it for nothing,
        # and 1.6 s on the level's second solve), which the packings after it can use.
        log.info("  the cases above: LP skipped: about %.1fs needed, %.1fs for it", expected * FIXED_CASES_PACE,
                 left * LP_SHARE)
        return None
    lp = backend.solve(program, objective, time_limit=left * LP_SHARE, relative_gap=0.0, relax=True,
                       lower=lower, upper=upper, **common)
    if lp.status != "optimal" or lp.values is None:
        log.info("  the cases above: LP not solved (%s) in %.2fs", lp.status, lp.seconds)
        return None
    full = expand(lp.values, columns, model.n_vars)
    totals = lp_pool_totals(model, full)
    packing = pack_with_ties(model, full[model.blocks["y"]], full[model.blocks["a"]], totals,
                             deadline - (deadline - time.perf_counter()) / 2, seed)
    if packing.complete:
        log.info("  the cases above packed with the ties of their LP (%.1f)", lp.objective)
        return SameCases(lp, packing.values)
    # Finish where the packing stalled: the rest of it stays, the cases stay chosen.
    y_in = np.searchsorted(columns, np.arange(model.blocks["y"].start, model.blocks["y"].stop))

    def search_in(near: np.ndarray) -> Outcome:
        lower, upper = case_bounds(model, program, columns, above)
        fixed = ~near[model.y_muni]
        lower[y_in[fixed]] = upper[y_in[fixed]] = np.rint(packing.values[model.blocks["y"]][fixed])
        return backend.solve(program, objective, time_limit=max(deadline - time.perf_counter(), 0.05),
                             relative_gap=relative_gap, lower=lower, upper=upper,
                             absolute_gap=relative_gap * abs(lp.objective), **common)

    search = search_in(packing.neighbourhood)
    log.info("  the cases above: packing finished by a search in %d municipalities: %s %s in %.2fs (LP %.1f)",
             int(packing.neighbourhood.sum()), search.status, search.objective, search.seconds, lp.objective)
    if search.values is None and time.perf_counter() < deadline and not (stop is not None and stop.stopped):
        # No plan there: again with every municipality where a case still waiting lacks only one
        # thing, the start of each chain of moves that would make room for it.
        near = within_reach(model, packing, totals)
        search = search_in(near)
        log.info("  the cases above: then a search in %d municipalities, with those within reach of the cases "
                 "waiting: %s %s in %.2fs", int(near.sum()), search.status, search.objective, search.seconds)
    return SameCases(lp, None if search.values is None else expand(search.values, columns, model.n_vars))


def within_reach(model: PlacementModel, packing: Packing, totals: np.ndarray) -> np.ndarray:
    """The packing's neighbourhood and every municipality where a case still waiting (of
    ``totals`` per pool) lacks only one thing: persons, minors' places, a service's places or a
    dwelling. national-5k seed 2: 3 single adults waiting, 29 municipalities around them, where
    no plan exists; 123 within reach, where HiGHS placed them in 1.6 s with 322 ties, the most
    these cases allow (the moves reached 234 without)."""
    waiting = np.flatnonzero(np.rint(totals) > np.rint(lp_pool_totals(model, packing.values)))
    n_pools = len(model.agg.pools)
    units = np.concatenate([waiting, n_pools + model.agg.pools["cls"].to_numpy()[waiting]])
    room = Room(model, np.rint(packing.values[model.blocks["y"]]))
    near = packing.neighbourhood.copy()
    for j in np.flatnonzero(np.isin(model.y_unit, units)).tolist():
        if Lack(room, j).shortfalls() <= 1:
            near[model.y_muni[j]] = True
    return near

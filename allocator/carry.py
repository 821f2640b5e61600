"""A level's LP, solved on a coarser model, carried into the model that models more service
capacities, so that the level does not solve a second LP of nearly the same model: the first
level's LP from the probe's model (when urgency is the only level: see ``solve``), and a
level's LP into its re-solve after a refinement (national-30k, the ties level: 0.6 s instead of
5.0 s).

The probe's model counts classes where the refined model counts pools, so it is a relaxation of
the round too: its LP optimum is a valid bound for the level. What the rounding and packing need
from an LP is a vertex to follow: the cases it chooses and where it puts them. So the refined
model's LP is solved with every count outside the municipalities modelled anew kept at least at
the probe's: it only has to place, by pools and within their service capacities, what the probe
put there (national-30k: 0.8 s instead of 2.7 s). Where that falls short of the probe's optimum,
the refined LP is solved whole (national-1k: a fixed count had to give way for a swap).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from .backend import MathOptBackend, Outcome
from .model import LinearProgram, PlacementModel

log = logging.getLogger(__name__)

#: The carried LP must reach the coarser model's optimum to within this share of the relative gap (the
#: plans it guides lose that much against the bound), or, given the best plan so far, to within
#: this share of the room between that plan and the optimum.
GAP_SHARE = 0.1


def carry_lp(
    backend: MathOptBackend,
    coarse: PlacementModel,
    coarse_lp: Outcome,
    fine: PlacementModel,
    program: LinearProgram,
    columns: np.ndarray,
    objective: np.ndarray,
    time_limit: float,
    relative_gap: float,
    locks: list[tuple[np.ndarray, float]] | None = None,
    source: str = "the probe's LP",
    plan_value: float | None = None,
) -> Outcome | None:
    """The LP of ``program`` (``fine``'s ``columns``, maximising ``objective`` within ``locks``)
    with every ``y`` count outside the municipalities modelled anew at least the optimum of the
    coarser model's LP (``coarse_lp.values``, a full vector of ``coarse``), as an outcome whose bound
    is that LP's; None if it falls short of that optimum by more than ``GAP_SHARE`` of
    ``relative_gap``, as then the whole LP is needed. ``source`` names that LP in the log.

    ``plan_value``, the best plan's value where one is known far from the optimum, loosens that:
    a carried LP short of the optimum by ``GAP_SHARE`` of the room above the plan still guides the
    search to better plans (national-30k's ties level solved again: 1,905.7 of 1,908.1, with
    the plan at 1,839)."""
    old = coarse_lp.values[coarse.blocks["y"]]
    there = fine.column_at()[coarse.y_unit, coarse.y_muni]
    coarse_count = np.full(len(fine.y_unit), np.nan)
    coarse_count[there[there >= 0]] = old[there >= 0]
    new = (fine.fine & ~coarse.fine)[fine.y_muni]
    if np.isnan(coarse_count[~new]).any():
        return None  # a column outside the new municipalities that the coarser model lacks
    y_in = np.searchsorted(columns, np.arange(fine.blocks["y"].start, fine.blocks["y"].stop))[~new]
    lower = program.lower.copy()
    lower[y_in] = np.minimum(coarse_count[~new], program.upper[y_in])
    # By simplex: most counts start at their lower bounds, a few pivots from the optimum, where
    # the interior point method starts from nothing (replayed: national-30k 0.49 s against
    # 0.79 s, national-10k 0.29 s against 0.58 s, national-2k 0.07 s against 0.15 s). The vertex
    # is mostly the probe's, found by the interior point method; whole level 1 over national-2k's
    # 32 seeds: 84.7 s against 98.2 s in all, the same within the noise on national-5k's rounds.
    lp = backend.solve(program, objective, time_limit=time_limit, relative_gap=0.0, relax=True, lower=lower,
                       simplex=True, locks=locks)
    short = GAP_SHARE * relative_gap * abs(coarse_lp.objective)
    if plan_value is not None:
        short = max(short, GAP_SHARE * (coarse_lp.objective - plan_value))
    if lp.status != "optimal" or lp.values is None or lp.objective < coarse_lp.objective - short - 1e-9:
        log.info("  %s carried reaches %s of %.4f (%s); solving the whole LP", source, lp.objective,
                 coarse_lp.objective, lp.status)
        return None
    # Any plan of the round is a plan of the coarser model too: its optimum bounds the level.
    return replace(lp, objective=coarse_lp.objective, seconds=coarse_lp.seconds + lp.seconds,
                   detail=f"{source}, carried into the model")

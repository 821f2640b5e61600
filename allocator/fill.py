"""A fast complete plan from a fractional one: round the LP's counts down, then fill the room
left with the most urgent cases not yet chosen.

Rounding down keeps every rule (all rules are capacities, and the housing rows are Hall's
conditions, which fewer cases never break). Each case added is checked against the
municipality's remaining persons, minors, modelled services and Hall rows. The result is a
plan of the model, usually within a few hundredths of a percent of the LP bound on national
rounds: when it is within the relative gap, the level is proven without a MIP search.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from .model import PlacementModel
from .room import Room


def round_and_fill(model: PlacementModel, y_lp: np.ndarray) -> np.ndarray:
    """A full vector of the model's variables (y, w, s; the rest zero) for the urgency level.

    ``y_lp`` holds the LP's values of the y block.
    """
    agg = model.agg
    free = agg.free_cases
    pools = agg.pools
    units = model.units
    n_pools = len(pools)
    y = np.floor(y_lp + 1e-9)
    unit_of = model.y_unit
    ub = model.upper[model.blocks["y"]]

    room = Room(model, y)  # what the rounded counts leave

    # Columns of each unit, the ones the LP used most first.
    by_unit: dict[int, list[int]] = defaultdict(list)
    for j in np.lexsort((-(y_lp - y), unit_of)):
        by_unit[int(unit_of[j])].append(int(j))

    # Chosen cases: per class, the rounded counts need that many cases, the most urgent first,
    # with each pool giving at least what its fine columns hold.
    pool_cls = pools["cls"].to_numpy()
    order = free.assign(_key=free.index).sort_values(["urgency", "_key"], ascending=[False, True])
    order_pool = order["pool"].to_numpy()
    queue = {int(p): np.flatnonzero(order_pool == p) for p in np.unique(order_pool)}  # positions in order
    fine_need = np.bincount(unit_of[unit_of < n_pools], weights=y[unit_of < n_pools], minlength=n_pools)
    class_total = np.bincount(units["cls"].to_numpy()[unit_of], weights=y, minlength=len(agg.classes))
    taken = {p: int(fine_need[p]) for p in queue}
    # The class slots go to the most urgent remaining cases of the class's pools: merge the
    # pools' queues by urgency and take the head.
    for c in range(len(agg.classes)):
        members = [p for p in queue if pool_cls[p] == c]
        extra = int(class_total[c]) - sum(taken[p] for p in members)
        if extra <= 0 or not members:
            continue
        rest = np.concatenate([queue[p][taken[p]:] for p in members])
        for pos in np.sort(rest)[:extra]:  # positions in ``order`` are urgency ranks
            taken[int(order_pool[pos])] += 1

    # Fill: the most urgent unchosen case, to the first municipality with room for it.
    exhausted: set[int] = set()
    waiting = np.sort(np.concatenate([queue[p][taken[p]:] for p in queue])) if queue else np.zeros(0, dtype=int)
    for pos in waiting:  # most urgent first
        pool = int(order_pool[pos])
        if pool in exhausted or taken[pool] >= len(queue[pool]) or queue[pool][taken[pool]] != pos:
            continue
        done = False
        for unit in (pool, n_pools + int(pool_cls[pool])):
            for j in by_unit.get(unit, ()):
                if y[j] < ub[j] and room.fits(j):
                    room.change(j, +1)
                    y[j] += 1
                    taken[pool] += 1
                    done = True
                    break
            if done:
                break
        if not done:
            exhausted.add(pool)  # rooms only shrink: no later case of this pool fits either

    values = np.zeros(model.n_vars)
    values[model.blocks["y"]] = y
    chosen = order.index[np.concatenate([queue[p][: taken[p]] for p in queue])] if queue else order.index[:0]
    placed = free.loc[chosen]
    tied = placed["tie"].to_numpy() >= 0
    s_pos = pd.Index(free.index[model.s_case]).get_indexer(placed.index[tied])
    values[model.blocks["s"].start + s_pos] = 1.0
    w_key = pd.MultiIndex.from_arrays([model.w_pool, model.w_urgency])
    untied = placed[~tied]
    w_pos = w_key.get_indexer(pd.MultiIndex.from_arrays([untied["pool"].to_numpy(), untied["urgency"].round(9).to_numpy()]))
    np.add.at(values, model.blocks["w"].start + w_pos, 1.0)
    return values

"""A local search that honours more ties without touching anything above them.

Moving a case between municipalities never changes urgency (the same cases stay chosen). So a
tied case can be moved to its tie municipality if that keeps every capacity there, or swapped
with a case of another unit that fits where the tied case was. Each move adds one honoured tie;
the counts stay a plan of the model, so the solver can start from them.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from .model import PlacementModel
from .pack import lp_pool_totals
from .room import Room


def honour_more_ties(model: PlacementModel, values: np.ndarray, max_moves: int = 100000) -> np.ndarray:
    """Counts with more ties honoured (y and a changed; urgency untouched)."""
    free = model.agg.free_cases
    y = np.rint(values[model.blocks["y"]]).copy()
    a = np.rint(values[model.blocks["a"]]).copy()
    s = np.rint(values[model.blocks["s"]])
    if not len(a):
        return values
    column = {(int(u), int(m)): j for j, (u, m) in enumerate(zip(model.y_unit, model.y_muni))}
    tie_column = {(int(u), int(m)): i for i, (u, m) in enumerate(zip(model.a_unit, model.a_muni))}
    # Chosen tied cases per (unit, tie municipality): the most a can reach.
    n_pools = len(model.agg.pools)
    pool_cls = model.agg.pools["cls"].to_numpy()
    chosen_tied: dict[tuple[int, int], int] = defaultdict(int)
    for pos in model.s_case[s > 0.5]:
        pool, tie = int(free["pool"].iat[pos]), int(free["tie"].iat[pos])
        for unit in (pool, n_pools + int(pool_cls[pool])):
            chosen_tied[(unit, tie)] += 1
    room = Room(model, y)
    units_at: dict[int, list[int]] = defaultdict(list)  # municipality -> columns with y > 0
    for j in np.flatnonzero(y > 0):
        units_at[int(model.y_muni[j])].append(int(j))
    moves = 0
    for i, (u, m0) in enumerate(zip(model.a_unit, model.a_muni)):
        u, m0 = int(u), int(m0)
        j0 = column.get((u, m0))
        if j0 is None:
            continue
        while a[i] < min(chosen_tied[(u, m0)], model.upper[model.blocks["a"].start + i]) and moves < max_moves:
            # Where a case of this unit sits now, other than the tie municipality.
            sources = [int(j) for j in np.flatnonzero((model.y_unit == u) & (y > 0) & (model.y_muni != m0))]
            if a[i] < y[j0]:
                a[i] += 1  # a tied case can take a slot the unit already has there
                moves += 1
                continue
            done = False
            for src in sources:
                if y[j0] + 1 > model.upper[model.blocks["y"].start + j0]:
                    break
                src_tie = tie_column.get((u, int(model.y_muni[src])))
                if src_tie is not None and y[src] <= a[src_tie]:
                    continue  # every case of the unit there honours a tie: none may leave
                # Plain move: the unit's case goes from src to the tie municipality.
                room.change(src, -1)
                room.change(j0, +1)
                if room.ok((j0,)):
                    y[src] -= 1
                    y[j0] += 1
                    a[i] += 1
                    done = True
                    break
                # Swap: a case of another unit at the tie municipality goes to src's place.
                m_src = int(model.y_muni[src])
                for k in list(units_at[m0]):
                    uk = int(model.y_unit[k])
                    back = column.get((uk, m_src))
                    tie_k = tie_column.get((uk, m0))
                    if uk == u or back is None or y[k] <= (a[tie_k] if tie_k is not None else 0):
                        continue
                    if y[back] + 1 > model.upper[model.blocks["y"].start + back]:
                        continue
                    room.change(k, -1)
                    room.change(back, +1)
                    if room.ok((j0, back)):
                        y[src] -= 1
                        y[j0] += 1
                        y[k] -= 1
                        y[back] += 1
                        a[i] += 1
                        units_at[m_src].append(back)
                        done = True
                        break
                    room.change(back, -1)
                    room.change(k, +1)
                if done:
                    break
                room.change(j0, -1)
                room.change(src, +1)
            if not done:
                break
            units_at[m0].append(j0)
            moves += 1
    out = values.copy()
    out[model.blocks["y"]] = y
    out[model.blocks["a"]] = a
    return out


def split_class_ties(model: PlacementModel, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``a`` and ``a_pool`` blocks for counts ``values``: each tie counted for a class at a
    municipality without service rows is given to a pool with a chosen case tied there that its
    municipalities with service rows do not need. Ties no pool can give are not counted."""
    agg = model.agg
    n_pools = len(agg.pools)
    a = np.rint(values[model.blocks["a"]])
    split = np.zeros(len(model.a_pool_pool))
    if not len(split):
        return a, split
    free = agg.free_cases
    chosen = model.s_case[np.rint(values[model.blocks["s"]]) > 0.5]
    pairs = pd.MultiIndex.from_arrays([model.a_pool_pool, model.a_pool_muni])
    at = pairs.get_indexer(pd.MultiIndex.from_arrays([free["pool"].to_numpy()[chosen], free["tie"].to_numpy()[chosen]]))
    tied = np.bincount(at[at >= 0], minlength=len(split)).astype(float)
    y = np.rint(values[model.blocks["y"]])
    at_fine = model.y_unit < n_pools
    spare = np.rint(lp_pool_totals(model, values)) - np.bincount(model.y_unit[at_fine], weights=y[at_fine],
                                                                 minlength=n_pools)
    pool_cls = agg.pools["cls"].to_numpy()
    row = pd.MultiIndex.from_arrays([model.a_unit, model.a_muni]).get_indexer(
        pd.MultiIndex.from_arrays([n_pools + pool_cls[model.a_pool_pool], model.a_pool_muni]))
    entries = {int(i): np.flatnonzero(row == i) for i in np.unique(row)}
    # Ties with the fewest pools to come from first.
    for i in sorted(entries, key=lambda i: len(entries[i])):
        need = a[i]
        for e in sorted(entries[i], key=lambda e: -spare[model.a_pool_pool[e]]):
            take = max(min(need, tied[e], spare[model.a_pool_pool[e]]), 0.0)
            split[e] += take
            spare[model.a_pool_pool[e]] -= take
            need -= take
        a[i] -= need
    return a, split

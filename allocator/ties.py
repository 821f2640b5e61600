"""Local searches that honour more ties without costing anything above them.

Moving a case between municipalities never changes urgency (the same cases stay chosen). So a
tied case can be moved to its tie municipality if that keeps every capacity there, or swapped
with a case of another unit that fits where the tied case was (:func:`honour_more_ties`). And
where a unit has a place at a municipality that no chosen case tied there takes, a chosen case
of the same pool can give way to a tied case not chosen: the counts stay, only which cases they
choose changes, at the cost of the difference in urgency, which the locks above must allow
(:func:`prefer_tied_cases`). Each step adds one honoured tie; the counts stay a plan of the
model, so the solver can start from them.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import defaultdict

import numpy as np
import pandas as pd

from .model import PlacementModel
from .pack import lp_pool_totals, ties_counted
from .room import Room

log = logging.getLogger(__name__)


def honour_more_ties(
    model: PlacementModel, values: np.ndarray, max_moves: int = 100000, deadline: float | None = None
) -> np.ndarray:
    """Counts with more ties honoured (y and a changed; urgency untouched); the moves stop at
    ``deadline`` (``time.perf_counter()``) with the ties honoured by then."""
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
    chosen_pos = model.s_case[s > 0.5]
    for pool, tie in zip(free["pool"].to_numpy()[chosen_pos].tolist(), free["tie"].to_numpy()[chosen_pos].tolist()):
        for unit in (pool, n_pools + int(pool_cls[pool])):
            chosen_tied[(unit, tie)] += 1
    room = Room(model, y)
    units_at: dict[int, list[int]] = defaultdict(list)  # municipality -> columns with y > 0
    for j in np.flatnonzero(y > 0):
        units_at[int(model.y_muni[j])].append(int(j))
    unit_columns = pd.Series(np.arange(len(y))).groupby(model.y_unit).agg(list).to_dict()
    size, minors = room.col_size, room.col_minors
    moves = 0
    for i, (u, m0) in enumerate(zip(model.a_unit, model.a_muni)):
        u, m0 = int(u), int(m0)
        j0 = column.get((u, m0))
        if j0 is None:
            continue
        if deadline is not None and time.perf_counter() > deadline:
            break
        while a[i] < min(chosen_tied[(u, m0)], model.upper[model.blocks["a"].start + i]) and moves < max_moves:
            # Where a case of this unit sits now, other than the tie municipality.
            sources = [j for j in unit_columns[u] if y[j] > 0 and model.y_muni[j] != m0]
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
                    # What the check below would find first, without changing anything: persons
                    # or minors short at either end (most candidates fail here).
                    if room.persons[m0] + size[k] < -1e-9 or room.persons[m_src] - size[back] < -1e-9 \
                            or room.minors_left[m0] + minors[k] < -1e-9 \
                            or room.minors_left[m_src] - minors[back] < -1e-9:
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


def prefer_tied_cases(
    model: PlacementModel, values: np.ndarray, locks: list[tuple[np.ndarray, float]]
) -> np.ndarray:
    """Counts ``values`` (a full vector with whole y, w and s) choosing other cases of the same
    pools: a tied case not chosen replaces a chosen case of its pool that honours no tie, where
    the tied case's unit has a place at its tie municipality that no chosen case tied there
    takes. The cheapest trades first (by the first lock), as long as every lock (``locks``:
    full-length vectors c with ``c @ values >= b``) holds.

    The y block is untouched (the pools place as many cases where they did); the w, s and a
    blocks change. Class ties are still split among pools and checked against the services of
    the municipalities without service rows when the counts become cases, so the concrete plan
    may honour a little less than the ``a`` block counts.
    """
    agg = model.agg
    free = agg.free_cases
    n_pools = len(agg.pools)
    out = values.copy()
    if not len(model.a_unit) or not len(model.s_case):
        return out
    sb, wb = model.blocks["s"], model.blocks["w"]
    s = np.rint(out[sb])
    w = np.rint(out[wb])
    y = np.rint(out[model.blocks["y"]])
    coef_s = np.array([c[sb] for c, _ in locks]).reshape(len(locks), len(s))
    coef_w = np.array([c[wb] for c, _ in locks]).reshape(len(locks), len(w))
    slack = np.array([float(c @ out) - b for c, b in locks])
    # Per tied case: its pool, the (unit, tie municipality) pair it can honour (-1: none).
    t_pool = free["pool"].to_numpy()[model.s_case]
    t_tie = free["tie"].to_numpy()[model.s_case]
    pool_cls = agg.pools["cls"].to_numpy()
    t_unit = np.where(model.fine[t_tie], t_pool, n_pools + pool_cls[t_pool])
    pairs = pd.MultiIndex.from_arrays([model.a_unit, model.a_muni])
    t_pair = pairs.get_indexer(pd.MultiIndex.from_arrays([t_unit, t_tie]))
    used, at = np.unique(t_pool, return_inverse=True)
    reachable = agg.pair_bounds(agg.pools.iloc[used])[at, t_tie] > 0  # the case itself could go there
    t_pair[~reachable] = -1
    places = y[model.column_at()[model.a_unit, model.a_muni]]
    tied_at = np.bincount(t_pair[(s > 0.5) & (t_pair >= 0)], minlength=len(pairs)).astype(float)
    # Ascending cost of a case leaving (first lock), descending for one coming in.
    key_s = coef_s[0] if len(locks) else np.zeros(len(s))
    key_w = coef_w[0] if len(locks) else np.zeros(len(w))
    ins: dict[int, list[int]] = defaultdict(list)
    for i in np.argsort(-key_s, kind="stable"):
        if s[i] < 0.5 and t_pair[i] >= 0:
            ins[int(t_pool[i])].append(int(i))
    outs_tied: dict[int, list[int]] = defaultdict(list)
    for i in np.argsort(key_s, kind="stable"):
        if s[i] > 0.5:
            outs_tied[int(t_pool[i])].append(int(i))
    outs_untied: dict[int, list[int]] = defaultdict(list)
    for l in np.argsort(key_w, kind="stable"):
        if w[l] > 0.5:
            outs_untied[int(model.w_pool[l])].append(int(l))

    def surplus(i: int) -> bool:
        """A chosen tied case that honours no tie (its pair has more chosen cases than places)."""
        k = t_pair[i]
        return s[i] > 0.5 and (k < 0 or tied_at[k] > places[k])

    def best(p: int) -> tuple[float, int, tuple[str, int]] | None:
        """The cheapest trade in pool p: (gain on the first lock, case in, case out)."""
        queue = ins.get(p, [])
        while queue and not (s[queue[0]] < 0.5 and tied_at[t_pair[queue[0]]] < places[t_pair[queue[0]]]):
            queue.pop(0)  # places are only taken, never freed: a case without one never gets one
        if not queue:
            return None
        untied = outs_untied.get(p, [])
        while untied and w[untied[0]] < 0.5:
            untied.pop(0)
        tied = outs_tied.get(p, [])
        while tied and not surplus(tied[0]):
            tied.pop(0)  # a tied case stops being surplus only as others leave: never again
        options = ([(key_w[untied[0]], ("w", untied[0]))] if untied else []) + \
            ([(key_s[tied[0]], ("s", tied[0]))] if tied else [])
        if not options:
            return None
        cost, leaving = min(options)
        return float(key_s[queue[0]] - cost), queue[0], leaving

    heap = []
    for p in ins:
        trade = best(p)
        if trade is not None:
            heapq.heappush(heap, (-trade[0], p))
    traded = 0
    while heap:
        _, p = heapq.heappop(heap)
        trade = best(p)
        if trade is None:
            continue
        if heap and -trade[0] > heap[0][0] + 1e-12:
            heapq.heappush(heap, (-trade[0], p))  # dearer than when queued: let a cheaper go first
            continue
        gain, i, (block, j) = trade
        delta = coef_s[:, i] - (coef_w[:, j] if block == "w" else coef_s[:, j])
        if (slack + delta < 1e-9).any():
            continue  # beyond what the locks allow: this pool trades no more
        slack += delta
        s[i] = 1.0
        tied_at[t_pair[i]] += 1
        if block == "w":
            w[j] -= 1
        else:
            s[j] = 0.0
            if t_pair[j] >= 0:
                tied_at[t_pair[j]] -= 1
        traded += 1
        heapq.heappush(heap, (-gain, p))
    out[sb], out[wb] = s, w
    out[model.blocks["a"]] = ties_counted(model, out)
    log.debug("  %d tied cases chosen instead of others of their pools", traded)
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

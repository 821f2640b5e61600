"""A fast complete plan from a fractional one: round the LP's counts down, then fill the room
left with the most urgent cases not yet chosen.

Rounding down keeps every rule (all rules are capacities, and the housing rows are Hall's
conditions, which fewer cases never break). Each case added is checked against the
municipality's remaining persons, minors, modelled services and Hall rows. The result is a
plan of the model; when it is within the relative gap of the LP bound, the level is proven
without a MIP search.
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
    filler = Filler(model, y_lp)
    filler.fill()
    return filler.values()


class Filler:
    """Counts ``y`` per column and, from them, which cases are chosen.

    Pools counted at fine municipalities force their own most urgent cases; class slots take
    the most urgent of the rest of the class's pools. So the chosen cases, and the urgency,
    follow from ``fine_count`` (per pool) and ``class_total`` (per class) alone.
    """

    def __init__(self, model: PlacementModel, y_lp: np.ndarray):
        agg = model.agg
        self.model = model
        self.n_pools = len(agg.pools)
        self.pool_cls = agg.pools["cls"].to_numpy()
        self.unit_cls = model.units["cls"].to_numpy()
        # An LP's zero may come back as -1e-8 (within its tolerance): no count is below zero.
        self.y = np.floor(np.maximum(y_lp, 0.0) + 1e-9)
        self.ub = model.upper[model.blocks["y"]]
        self.room = Room(model, self.y)
        # Per column, as plain Python ints (read once per move, where numpy scalars are slow).
        self.col_unit: list[int] = model.y_unit.tolist()
        self.col_cls: list[int] = self.unit_cls[model.y_unit].tolist()
        # Columns of each unit, the ones the LP used most first; columns of each municipality.
        self.by_unit: dict[int, np.ndarray] = {}
        order = np.lexsort((-(y_lp - self.y), -y_lp, model.y_unit))
        bounds = np.searchsorted(model.y_unit[order], np.arange(len(model.units) + 1))
        for u in range(len(model.units)):
            if bounds[u + 1] > bounds[u]:
                self.by_unit[u] = order[bounds[u]:bounds[u + 1]]
        self.at_muni: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(0, dtype=int))
        by_muni = np.argsort(model.y_muni, kind="stable")
        edges = np.searchsorted(model.y_muni[by_muni], np.arange(agg.n_municipalities + 1))
        for m in range(agg.n_municipalities):
            if edges[m + 1] > edges[m]:
                self.at_muni[m] = by_muni[edges[m]:edges[m + 1]]

        free = agg.free_cases
        self.order = free.assign(_key=free.index).sort_values(["urgency", "_key"], ascending=[False, True])
        order_pool = self.order["pool"].to_numpy()
        urgency = self.order["urgency"].to_numpy(dtype=float)
        # Per pool: positions in ``order`` (most urgent first) and their urgencies.
        self.queue = {p: np.flatnonzero(order_pool == p) for p in range(self.n_pools)}
        self.urgency = {p: urgency[q] for p, q in self.queue.items()}
        self.members = {c: [p for p in range(self.n_pools) if self.pool_cls[p] == c]
                        for c in range(len(agg.classes))}
        fine = model.y_unit < self.n_pools
        self.fine_count = np.bincount(model.y_unit[fine], weights=self.y[fine], minlength=self.n_pools)
        self.class_total = np.bincount(self.unit_cls[model.y_unit], weights=self.y, minlength=len(agg.classes))
        self._columns_of: dict[int, np.ndarray] = {}  # by_unit never changes: one array per pool

    # -- which cases the counts choose ---------------------------------------------------------

    def taken(self, c: int) -> dict[int, int]:
        """Cases chosen per pool of class ``c``: the forced ones, then the most urgent rest."""
        members = self.members[c]
        taken = {p: int(self.fine_count[p]) for p in members}
        extra = int(round(self.class_total[c])) - sum(taken.values())
        if extra > 0 and members:
            rest = np.concatenate([self.urgency[p][taken[p]:] for p in members])
            owner = np.concatenate([np.full(len(self.urgency[p]) - taken[p], p) for p in members])
            for p in owner[np.argsort(-rest, kind="stable")[:extra]]:
                taken[int(p)] += 1
        return taken

    def change(self, j: int, sign: int) -> None:
        """One case more (+1) or fewer (-1) in column j."""
        self.y[j] += sign
        self.room.change(j, sign)
        unit = self.col_unit[j]
        if unit < self.n_pools:
            self.fine_count[unit] += sign
        self.class_total[self.col_cls[j]] += sign

    def columns_of(self, pool: int) -> np.ndarray:
        """Columns a case of ``pool`` can take: the pool's own (fine municipalities), then its
        class's. The same array on every call: callers must not change it."""
        columns = self._columns_of.get(pool)
        if columns is None:
            parts = [self.by_unit.get(u) for u in (pool, self.n_pools + int(self.pool_cls[pool]))]
            parts = [p for p in parts if p is not None]
            columns = np.concatenate(parts) if parts else np.zeros(0, dtype=int)
            self._columns_of[pool] = columns
        return columns

    def open_columns(self, columns: np.ndarray) -> np.ndarray:
        """Those of ``columns`` with room for one more case."""
        if not len(columns):
            return columns
        return columns[(self.y[columns] < self.ub[columns]) & self.room.fits_many(columns)]

    # -- the fill ------------------------------------------------------------------------------

    def fill(self) -> None:
        """The most urgent unchosen case, to the first column with room for it. Rooms only
        shrink while filling, so a column closed to a pool stays closed: each pool's columns
        are walked once (national-30k from nothing: 2.4 s when every case looked at all its
        pool's columns)."""
        waiting = []
        for c, members in self.members.items():
            taken = self.taken(c)
            waiting += [(-u, p) for p in members for u in self.urgency[p][taken[p]:]]
        first_open: dict[int, int] = defaultdict(int)  # per pool, where its open columns start
        for _, p in sorted(waiting):
            columns = self.columns_of(p)
            # Once the pool's own cases are all placed at fine municipalities, only its class's
            # slots can take more of it (fine_count only grows here).
            slots_only = self.fine_count[p] >= len(self.urgency[p])
            i = first_open[p]
            while i < len(columns):
                j = int(columns[i])
                if self.y[j] < self.ub[j] and not (slots_only and self.col_unit[j] < self.n_pools) \
                        and self.room.fits(j):
                    break
                i += 1
            first_open[p] = i
            if i < len(columns):
                self.change(j, +1)

    # -- the answer ----------------------------------------------------------------------------

    def values(self) -> np.ndarray:
        model = self.model
        free = model.agg.free_cases
        values = np.zeros(model.n_vars)
        values[model.blocks["y"]] = self.y
        positions = []
        for c in self.members:
            for p, n in self.taken(c).items():
                positions.append(self.queue[p][:n])
        chosen = self.order.index[np.concatenate(positions)] if positions else self.order.index[:0]
        placed = free.loc[chosen]
        tied = placed["tie"].to_numpy() >= 0
        s_pos = pd.Index(free.index[model.s_case]).get_indexer(placed.index[tied])
        values[model.blocks["s"].start + s_pos] = 1.0
        w_key = pd.MultiIndex.from_arrays([model.w_pool, model.w_urgency])
        untied = placed[~tied]
        w_pos = w_key.get_indexer(pd.MultiIndex.from_arrays([untied["pool"].to_numpy(),
                                                             untied["urgency"].round(9).to_numpy()]))
        np.add.at(values, model.blocks["w"].start + w_pos, 1.0)
        return values

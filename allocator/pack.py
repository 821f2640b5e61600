"""Pack exactly the cases the LP chose: a plan at the LP bound, found by moving cases.

On small rounds the LP relaxation is often tight and chooses whole cases (its totals per pool
are integers); what is hard is where each case goes, as families of up to nine must fit the
persons, minors, services and dwellings left in single municipalities. This packs the LP's
totals like bins: the largest cases first, each where the LP put it if it has room, else into
the tightest municipality with room, and where none has room, into the one where the fewest
persons have to make way (dearer for cases placed in the last few steps, and for cases with
no room anywhere else); those go back in the queue. If the queue empties, every case the LP
chose is placed: the plan's urgency is the LP bound, so it is optimal. Where the LP chose part
of a case, the whole cases are packed and the room left filled; where the LP is not tight, no
packing exists and the packer gives up after a run of steps that leave no fewer cases waiting.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

import numpy as np

from .extract import chosen_cases
from .fill import Filler
from .model import PlacementModel
from .room import Lack

#: Give up when this many placements in a row leave no fewer cases waiting than before.
PATIENCE = 100
#: With this few cases waiting, a search finishes the packing faster than more moves do (the
#: urgency level has one; the ties packing has none and keeps the full patience). national-2k
#: seed 10 took 500 placements to go from 13 waiting to 5; with 12, not 6: 1.77 -> 1.31 s, the
#: other 31 seeds and national-5k seeds 0-7 within 0.05 s.
FEW_WAITING, FEW_PATIENCE = 12, 25
#: Municipalities per waiting pool in the neighbourhood a stalled packing leaves to a search,
#: besides those with persons to spare. One is enough, and the search is faster for it
#: (national-2k over 32 seeds: 0.36 s against 0.65 s on the slowest; 28 of 32 rounds under 1 s
#: against 20, every one proven as before).
NEIGHBOURS = 1
#: Municipalities per waiting pool where the packing stalls with more than ``FEW_WAITING`` cases
#: waiting: one per pool leaves the search too little to move. national-2k seed 38 stalls with 39
#: single adults waiting (136 persons to spare, all in municipalities with no free dwelling);
#: around one municipality per pool the search stopped short of the bound and the rounding box
#: reached it: 2.9-4.7 s with the packing's seeds 0-3. With 20 per pool, HiGHS's search reaches
#: the bound with each seed: 1.8-2.0 s (with 5: 1.4-4.8 s, seed 1 missed it). Its other 63 rounds
#: and national-5k's and -10k's stall with at most 6 waiting; national-1k seeds 2 and 10 with
#: 129-144, in a proposal of all levels (urgency alone goes to the full model): seed 2's level 1
#: 3.5 -> 2.6 s.
STALLED_NEIGHBOURS = 20
#: Municipalities per pool the LP chose in part in the wider neighbourhood searched when the
#: first search after a complete packing finds no plan at the LP bound. Three from the start
#: slowed the searches that find it anyway (national-2k's 64 rounds with packing seeds 0 and 3,
#: run in turn: 4.0% and 3.5% longer in all than this second search); without either, the full
#: model took 3.4-6.0 s where the first search missed the bound.
PARTIAL_NEIGHBOURS = 3
#: Municipalities lacking only persons tried per waiting case, and swaps tried in all.
SWAP_MUNICIPALITIES, SWAP_TRIES = 20, 400
#: Municipalities weighed per case that fits nowhere.
CANDIDATES = 40
#: Iterations during which pushing out a case just placed costs extra.
TABU = 25
TABU_COST = 10.0
#: Extra cost per person pushed out who has room nowhere else right now.
STUCK_COST = 3.0


def lp_pool_totals(model: PlacementModel, values: np.ndarray) -> np.ndarray:
    """Cases per pool in a full vector of the model's variables (its w and s blocks)."""
    pools = model.agg.pools
    totals = np.bincount(model.w_pool, weights=values[model.blocks["w"]], minlength=len(pools))
    s_pool = model.agg.free_cases["pool"].to_numpy()[model.s_case]
    return totals + np.bincount(s_pool, weights=values[model.blocks["s"]], minlength=len(pools))


@dataclass(frozen=True)
class Packing:
    """What the packer reached: a plan, whether it holds every case the LP chose, and where a
    search is most likely to place the rest."""

    values: np.ndarray  # a full vector of the model's variables (y, w, s; the rest zero)
    complete: bool
    neighbourhood: np.ndarray  # bool per municipality
    # The neighbourhood with ``PARTIAL_NEIGHBOURS`` municipalities per pool the LP chose in part,
    # for a complete packing; None where it chose none in part or that adds no municipality.
    wider: np.ndarray | None = None
    waiting: int = 0  # cases the LP chose that are not placed

    @property
    def many_waiting(self) -> bool:
        """More cases wait than CP-SAT's search for a finished packing is meant for."""
        return self.waiting > FEW_WAITING


def pack_lp_totals(
    model: PlacementModel, y_lp: np.ndarray, totals: np.ndarray, deadline: float, seed: int = 0
) -> Packing:
    """Place the whole part of ``totals[p]`` cases of every pool p, starting from the LP's
    counts ``y_lp``; once all are placed, the room left takes the most urgent of the rest.

    When the packing stalls or ``deadline`` passes, the plan holds the cases placed so far and
    the neighbourhood is where the rest could go: the municipalities with persons to spare (which
    a swap can move to where the waiting cases fit) and, per waiting pool, the first
    ``NEIGHBOURS`` municipalities where one of its cases would fit but for the persons left.
    """
    whole = np.floor(totals + 1e-6).astype(int)
    packer = Packer(model, y_lp, whole, np.random.default_rng(seed))
    complete = packer.run(deadline, FEW_PATIENCE)
    if complete:
        packer.fill()
    # Where the LP chose part of a case, a search may still place the case whole.
    partial = np.flatnonzero(totals - whole > 1e-6)
    waiting = len(packer.waiting)
    near = packer.neighbourhood(partial, per_waiting=STALLED_NEIGHBOURS if waiting > FEW_WAITING else NEIGHBOURS)
    # Only a complete packing's second search uses it (a stalled one goes on to HiGHS's search).
    wider = packer.neighbourhood(partial, PARTIAL_NEIGHBOURS) if complete and len(partial) else None
    return Packing(packer.values(), complete, near, wider if wider is not None and (wider > near).any() else None,
                   waiting)


def pack_with_ties(
    model: PlacementModel, y_lp: np.ndarray, a_lp: np.ndarray, totals: np.ndarray, deadline: float, seed: int = 0,
    fill: bool = False,
) -> Packing:
    """Place ``totals[p]`` cases of every pool p (whole numbers), starting from an LP's counts
    ``y_lp``, and keep the tied cases its ``a_lp`` counts (rounded down) at their tie
    municipalities: they are never moved; with ``fill``, a packing that is complete or leaves at
    most ``FEW_WAITING`` cases waiting then takes the most urgent of the other cases where room
    is left (the caller checks whether that plan still keeps its locks). The plan's ``a`` block
    counts the ties it honours."""
    locked = np.zeros(len(model.y_unit))
    column_at = model.column_at()
    np.add.at(locked, column_at[model.a_unit, model.a_muni], np.floor(a_lp + 1e-6))
    packer = Packer(model, y_lp, np.rint(totals).astype(int), np.random.default_rng(seed), locked)
    complete = packer.run(deadline)
    if fill and (complete or len(packer.waiting) <= FEW_WAITING):
        packer.fill()
    values = packer.values()
    values[model.blocks["a"]] = ties_counted(model, values, column_at)
    return Packing(values, complete, packer.neighbourhood(), waiting=len(packer.waiting))


def ties_counted(model: PlacementModel, values: np.ndarray, column_at: np.ndarray | None = None) -> np.ndarray:
    """The ``a`` block for counts ``values`` (y, w, s): per (unit, municipality), the chosen
    cases tied there, up to the cases the unit places there."""
    column_at = model.column_at() if column_at is None else column_at
    chosen = chosen_cases(model, values)
    tied = chosen[chosen["tie"] >= 0]
    tie_muni = tied["tie"].to_numpy()
    unit = np.where(model.fine[tie_muni], tied["pool"].to_numpy(), len(model.agg.pools) + tied["cls"].to_numpy())
    at_tie = np.zeros(len(model.y_unit))
    where = column_at[unit, tie_muni]
    np.add.at(at_tie, where[where >= 0], 1.0)
    a_columns = column_at[model.a_unit, model.a_muni]
    return np.minimum(values[model.blocks["y"]][a_columns], at_tie[a_columns])


class Packer(Filler):
    """The packing state: the LP's counts rounded down, less any class slots beyond the
    totals, and a queue of the cases still to place, largest first. No move takes a column
    below its ``locked`` count (default none)."""

    def __init__(self, model: PlacementModel, y_lp: np.ndarray, totals: np.ndarray, rng: np.random.Generator,
                 locked: np.ndarray | None = None):
        super().__init__(model, y_lp)
        self.locked = np.zeros(len(self.y)) if locked is None else locked
        self.y_lp = y_lp
        self.rng = rng
        self.size = model.units["size"].to_numpy()
        self.column_size = self.size[model.y_unit]  # persons of one case, per column (ints)
        # Class slots (at municipalities without service rows) are anonymous: book them to
        # member pools that still need cases, so each pool knows how many of its cases are in.
        self.in_slots = np.zeros(self.n_pools, dtype=int)
        need = totals - self.fine_count.astype(int)
        for c, members in self.members.items():
            slots = int(round(self.class_total[c] - sum(self.fine_count[p] for p in members)))
            for p in members:
                take = min(slots, max(int(need[p]), 0))
                self.in_slots[p] += take
                slots -= take
            if slots > 0:  # more slots than the LP's totals need: give them back
                for j in self.by_unit.get(self.n_pools + c, np.zeros(0, dtype=int)):
                    while slots > 0 and self.y[j] > self.locked[j]:
                        self.change(int(j), -1)
                        slots -= 1
        self.waiting: list[tuple[int, float, int]] = []
        for p in range(self.n_pools):
            for _ in range(int(totals[p] - self.fine_count[p] - self.in_slots[p])):
                self._push(p)
        self.column_at = model.column_at()
        # Per column, the last iteration it may not lose a case (-1: none); an array, so that
        # :meth:`_make_way` reads it for all the columns of a municipality at once.
        self.tabu = np.full(len(self.y), -1, dtype=np.int64)
        self.iteration = 0

    def _push(self, pool: int) -> None:
        heapq.heappush(self.waiting, (-int(self.size[pool]), float(self.rng.random()), pool))

    def run(self, deadline: float, few_patience: int = PATIENCE) -> bool:
        """Place the waiting cases; False if the packing stalls (no fewer waiting after
        ``PATIENCE`` placements, or ``few_patience`` once ``FEW_WAITING`` or fewer wait) or
        ``deadline`` passes."""
        fewest, since = len(self.waiting), 0
        while self.waiting:
            self.iteration += 1
            if len(self.waiting) < fewest:
                fewest, since = len(self.waiting), self.iteration
            patience = PATIENCE if fewest > FEW_WAITING else few_patience
            if self.iteration - since > patience or (self.iteration % 16 == 0 and time.perf_counter() >= deadline):
                return False
            item = heapq.heappop(self.waiting)
            if not self._place(item[2]):
                heapq.heappush(self.waiting, item)
                return False
        return True

    def neighbourhood(self, partial: np.ndarray | None = None, per_partial: int = NEIGHBOURS,
                      per_waiting: int = NEIGHBOURS) -> np.ndarray:
        """See :func:`pack_lp_totals`: ``per_waiting`` municipalities per waiting pool;
        ``partial`` pools count as waiting too, with ``per_partial`` municipalities each (where
        not waiting)."""
        near = self.room.persons >= 1
        waiting = {item[2] for item in self.waiting}
        for pool in waiting | set(() if partial is None else partial.tolist()):
            n = per_waiting if pool in waiting else per_partial
            near[self.model.y_muni[self._short_of_persons(self._candidates(pool))][:n]] = True
        return near

    def _short_of_persons(self, columns: np.ndarray) -> np.ndarray:
        """Those of ``columns`` where one more case would fit but for the persons left."""
        room = self.room
        persons = room.persons.copy()
        room.persons[:] = np.inf
        try:
            return columns[room.fits_many(columns)]
        finally:
            room.persons[:] = persons

    def _candidates(self, pool: int) -> np.ndarray:
        columns = self.columns_of(pool)
        return columns[self.y[columns] < self.ub[columns]]

    def _add(self, pool: int, j: int) -> None:
        self.change(j, +1)
        if self.col_unit[j] >= self.n_pools:
            self.in_slots[pool] += 1
        self.tabu[j] = self.iteration + TABU

    def _place(self, pool: int) -> bool:
        columns = self._candidates(pool)
        if not len(columns):
            return False
        open_ = self.open_columns(columns)
        if len(open_):
            # Where the LP wants more of it, else the tightest fit (big gaps stay for big cases).
            wanted = open_[self.y_lp[open_] > self.y[open_] + 1e-9]
            if len(wanted):
                j = int(wanted[0])
            else:
                left = self.room.persons[self.model.y_muni[open_]]
                j = int(open_[np.argmin(left + 0.1 * self.rng.random(len(open_)))])
            self._add(pool, j)
            return True
        if self._swap_in(pool, columns):
            return True
        best: tuple[float, int, list[int]] | None = None
        open_at: dict[int, set[int]] = {}  # unit -> municipalities with room for one more now
        order = np.concatenate([columns[:CANDIDATES // 2],
                                self.rng.permutation(columns[CANDIDATES // 2:])[:CANDIDATES // 2]])
        for k in order.tolist():
            plan = self._make_way(k, pool)
            if plan is None:
                continue
            cost = self._cost(plan, open_at, 0.5 * float(self.rng.random()), None if best is None else best[0])
            if best is None or cost < best[0]:
                best = (cost, k, plan)
        if best is None:
            return False
        _, k, plan = best
        for j in plan:
            self.change(j, -1)
            self._push(self._owner(j))
        self._add(pool, k)
        return True

    def _swap_in(self, pool: int, columns: np.ndarray) -> bool:
        """Place a case of ``pool`` at a municipality B that lacks only persons, by swapping a
        case X there with a smaller case Y at a municipality A that has persons to spare (X
        takes Y's place at A, Y takes X's at B). The persons moved free room at B without
        sending anyone back to the queue."""
        model, room, y, locked = self.model, self.room, self.y, self.locked
        unit, muni, col_size, column_at = model.y_unit, model.y_muni, self.column_size, self.column_at
        placed = np.flatnonzero(y > locked)
        at_spare = placed[room.persons[muni[placed]] >= 1]  # the Y candidates
        if not len(at_spare):
            return False
        spare_muni, spare_unit, spare_size = muni[at_spare], unit[at_spare], col_size[at_spare]
        ks = self._short_of_persons(columns)[:SWAP_MUNICIPALITIES]
        need = self.size[pool]
        tries = 0
        for k, b in zip(ks.tolist(), muni[ks].tolist()):
            short = need - room.persons[b]
            # The Y candidates' columns at B, one B at a time (a swap found ends the search).
            ky_at = column_at[spare_unit, b]
            sel = (ky_at >= 0) & (spare_muni != b)
            ys, ky = at_spare[sel], ky_at[sel]
            a, sy = spare_muni[sel], spare_size[sel]
            spare_a = room.persons[a]
            here = self.at_muni[b]
            xs = here[y[here] > locked[here]]
            if not len(xs) or not len(ys):
                continue
            # All (X, Y) pairs at once, X by row: their row-major order is the order of trying.
            moved = col_size[xs][:, None] - sy
            ix, iy = np.nonzero((moved >= short) & (moved <= spare_a))
            kx = column_at[unit[xs[ix]], a[iy]]  # X's column at A, for the pairs whose persons fit
            ix, iy, kx = ix[kx >= 0], iy[kx >= 0], kx[kx >= 0]
            for jx, jy, kx_, ky_ in zip(xs[ix].tolist(), ys[iy].tolist(), kx.tolist(), ky[iy].tolist()):
                tries += 1
                if tries > SWAP_TRIES:
                    return False
                if self._try_swap(jx, jy, kx_, ky_, k):
                    self._add(pool, k)
                    return True
        return False

    def _try_swap(self, jx: int, jy: int, kx: int, ky: int, k: int) -> bool:
        """Move a case from column jx to kx and one from jy to ky; keep it if every capacity
        still holds and column k then has room, else undo."""
        y, ub = self.y, self.ub
        if kx == jy or ky == jx or y[kx] >= ub[kx] or y[ky] >= ub[ky]:
            return False
        if not self._swap_keeps(jx, jy, kx, ky):
            return False  # known without making the moves (most tries on national-30k end here)
        moves = ((jx, -1), (jy, -1), (kx, +1), (ky, +1))
        for j, sign in moves:
            self.change(j, sign)
        room = self.room
        if room.holds() and room.fits(k) and y[k] < ub[k]:
            for j in (kx, ky):
                self.tabu[j] = self.iteration + TABU
            return True
        for j, sign in reversed(moves):
            self.change(j, -sign)
        return False

    def _swap_keeps(self, jx: int, jy: int, kx: int, ky: int) -> bool:
        """Would the swap of :meth:`_try_swap` keep the minors, services and Hall rows of both
        municipalities (X leaves B for A, Y leaves A for B)? The same test as making the moves
        and asking :meth:`.Room.holds` there, without the moves."""
        room = self.room
        a, b = room.col_muni[kx], room.col_muni[ky]
        tol = -1e-9
        minors = room.minors_left
        mx, my = room.col_minors[jx], room.col_minors[jy]
        if minors[a] - mx + my < tol or minors[b] + mx - my < tol:
            return False
        services = room.services
        use_x, use_y = room.col_use[jx], room.col_use[jy]
        for s in range(len(use_x)):
            if services[a, s] - use_x[s] + use_y[s] < tol or services[b, s] + use_x[s] - use_y[s] < tol:
                return False
        # Hall rows: the class coming in takes one from each of its rows, the class leaving gives
        # one back to each of its rows.
        y_class, hall = room.col_class, room.hall
        for coming, leaving in ((y_class[kx], y_class[jy]), (y_class[ky], y_class[jx])):
            if coming < 0 or coming == leaving:
                continue
            back = room.row_set(leaving) if leaving >= 0 else ()
            for r in room.class_rows.get(coming, ()):
                left = hall[r] - 1
                if r in back:
                    left = left + 1
                if left < tol:
                    return False
        return True

    def _cost(self, plan: list[int], open_at: dict[int, set[int]], noise: float, best: float | None) -> float:
        """Persons pushed out, dearer for cases just placed and for cases with no room elsewhere,
        plus ``noise``. Where that is at least ``best`` before the cases with no room elsewhere
        are priced, it is returned as it is: it loses either way, and finding where a unit has
        room is most of the cost of pricing it."""
        cost = noise
        col_unit, col_muni, col_size, tabu = self.col_unit, self.room.col_muni, self.room.col_size, self.tabu
        for j in plan:
            size = col_size[j]
            cost += size
            if tabu[j] >= self.iteration:
                cost += TABU_COST * size
        if best is not None and cost >= best:
            return cost
        for j in plan:
            unit = col_unit[j]
            if unit not in open_at:
                columns = self.open_columns(self.by_unit.get(unit, np.zeros(0, dtype=int)))
                open_at[unit] = set(self.model.y_muni[columns].tolist())
            if not open_at[unit] - {col_muni[j]}:
                cost += STUCK_COST * col_size[j]
        return cost

    def _make_way(self, k: int, pool: int) -> list[int] | None:
        """Columns to take one case out of (smallest cases first, none of ``pool`` itself) so
        that column k fits, or ``None``; the counts are not changed."""
        y, locked = self.y, self.locked
        here = self.at_muni[self.room.col_muni[k]]
        here = here[(y[here] > locked[here]) & (here != k) & (self.model.y_unit[here] != pool)]
        fresh = self.tabu[here] >= self.iteration
        here = here[np.lexsort((self.rng.random(len(here)), self.column_size[here], fresh))]
        lack = Lack(self.room, k)
        taken: list[int] = []
        ok = lack.fits()
        for j, removable in zip(here.tolist(), (y[here] - locked[here]).tolist()):
            if ok:
                break
            while removable > 0 and lack.relieved_by(j):
                lack.take_out(j)
                removable -= 1
                taken.append(j)
                ok = lack.fits()
                if ok:
                    break
        return taken if ok else None

    def _owner(self, j: int) -> int:
        """The pool whose case leaves column j (class slots: a member booked there)."""
        unit = self.col_unit[j]
        if unit < self.n_pools:
            return unit
        members = [p for p in self.members[unit - self.n_pools] if self.in_slots[p] > 0]
        pool = max(members, key=lambda p: self.in_slots[p])
        self.in_slots[pool] -= 1
        return pool


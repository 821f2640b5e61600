"""A large-neighbourhood search on a concrete plan for the housing fit and spread terms.

Below the urgency and ties levels the chosen cases are fixed, and what is left is where each
goes: per municipality, the persons placed (spread) and which of its dwellings they need
(housing fit). The LP relaxation of that level is nearly whole, but its rounding is hard for
the MIP: on national-2k the plan of the ties level wastes 707 bedrooms and neither the rounding
box nor the full model improves it, while the LP wastes 253.

This search moves cases only, so every lock above holds: the chosen cases stay chosen
(urgency unchanged) and a tied case placed at its tie municipality never moves (ties never
drop), unless ties are locked together with supplied scores: a tie honoured then counts as
scores, and a tied case may leave its tie where scores make up for it. Each step takes a few
municipalities and re-assigns their movable cases among them by an exact small MIP over case
profiles (requirement, unaccompanied minors, service use, exclusions): persons, minors and
every service capacity (modelled in the main model or not), a housing flow over the
municipalities' dwelling types, and the spread segments. A step never makes the plan worse,
and every plan it returns keeps every hard rule for concrete cases.

Which municipalities go together decides what a step can find. Municipalities whose plan
costs more than the LP's there start a neighbourhood more often; most neighbourhoods then add
municipalities whose surplus and shortage of each housing requirement against the LP's counts
offset the group's (cases it has too many of can go where they are short). Every municipality
with room is a candidate, also one holding no case (spread is won there). Steps start with
three municipalities (the step's MIP grows fast with more) and grow by one after a run of
fruitless steps; a large municipality lends only a sample of its cases to one step.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from ortools.graph.python import min_cost_flow

from .backend import MathOptBackend, StopFlag
from .model import SPREAD_SEGMENTS, LinearProgram, PlacementModel, spread_cost

#: Municipalities re-assigned together in one step, at first (the step's MIP grows fast with
#: them: national-5k, 0.02 s a step with 3, 0.09 s with 4, 0.3 s with 6) ...
GROUP = 3
#: ... and at most: after this many steps without a gain, one more.
MAX_GROUP, STALL_STEPS = 6, 50
#: The search stops after this many steps without a gain with the largest neighbourhoods.
STOP_STEPS = 100
#: Seconds at most for one step's MIP.
STEP_SECONDS = 0.5
#: Where locked scores are priced and the search stops, it goes on at this share of the price,
#: down to this share of the first price (then without a price).
PRICE_STEP, PRICE_FLOOR = 0.5, 1 / 16
#: Movable cases at most per municipality in one step (the others are held in place).
MAX_MOVABLE = 25
#: Share of the neighbourhoods matched by the target counts (the rest are drawn at random).
GUIDED_SHARE = 0.7
#: Share of the municipalities after the first two of a ties neighbourhood that are linked to the
#: group by a tied case (:func:`_tie_group`; the rest are drawn by weight).
LINKED_SHARE = 0.8
#: Weight of a municipality that does not match the group, against the best match.
MATCH_FLOOR = 0.02
#: Municipalities joined to one whose service capacity a plan breaks, in a step that mends it,
#: and the steps tried per such municipality.
MEND_PARTNERS, MEND_TRIES = 4, 5


@dataclass(frozen=True)
class Step:
    """One step's MIP: the group's movable cases, their profile (row of ``n[q, k]``), and the
    program whose first columns are ``n[q, k]`` (profile q to the group's k-th municipality)."""

    group: np.ndarray
    movable: np.ndarray
    inverse: np.ndarray
    program: LinearProgram
    cost: np.ndarray  # minimised


class Rehouser:
    """The state of the search: where each free case of the plan is, and each municipality's
    load (persons, minors, services, housing demand per requirement, scores and ties).

    The cost it lowers is ``weight_fit`` times the bedrooms left empty plus ``weight_spread``
    times the spread penalty, less ``weight_scores`` times the supplied scores and
    ``weight_ties`` times the ties honoured. Scores not priced here (weight 0) are locked by a
    level above when supplied: their sum never falls below its start, and ``score_price`` is
    what a unit of it is worth in the steps' cost (:func:`rehouse`). Where that level locks the
    ties with them, ``tie_credit`` is what a tie honoured is worth in units of score: the locked
    sum is then the scores plus the credit of each tie honoured, and tied cases may move."""

    def __init__(self, model: PlacementModel, assignment: pd.Series, weight_fit: float, weight_spread: float,
                 weight_scores: float = 0.0, weight_ties: float = 0.0, score_price: float = 0.0,
                 tie_credit: float = 0.0):
        agg = model.agg
        self.agg = agg
        self.weights = (weight_fit, weight_spread)
        self.weight_scores, self.weight_ties = weight_scores, weight_ties
        free = agg.free_cases
        pools = agg.pools
        self.ids = assignment.index.to_numpy()
        pool = free.loc[self.ids, "pool"].to_numpy()
        self.pool = pool
        self.req = pools["requirement"].to_numpy()[pool]
        self.minors = pools["minors"].to_numpy(dtype=float)[pool]
        self.use = pools[[f"use_{s}" for s in agg.problem.services]].to_numpy(dtype=float)[pool]
        self.use = self.use.reshape(len(pool), len(agg.problem.services))
        self.excl = pools["exclusion_set"].to_numpy()[pool]
        self.excluded = [set(map(int, s)) for s in agg.exclusion_sets]
        self.tie = free.loc[self.ids, "tie"].to_numpy()
        self.at = assignment.to_numpy(dtype=int).copy()
        # Supplied scores move with the case: where they are not priced, each step keeps the
        # scores of the cases it moves from falling in sum, so a lock on a level with scores holds.
        self.score_row = pools["score_row"].to_numpy()[pool]
        self.has_scores = len(agg.score_rows) > 0 and (self.score_row >= 0).any()
        self.keep_scores = self.has_scores and weight_scores == 0
        # Ties locked with the scores count in their sum (400-case rounds with scores, level 3:
        # with tied cases held at their ties, the search stopped at -466.6 where the full model
        # found -357.9 by honouring 3 ties more and 3 units of score less).
        self.tie_credit = tie_credit if self.keep_scores and not weight_ties else 0.0
        # Otherwise a tied case at its tie stays there: the ties honoured never drop.
        self.frozen = (self.tie >= 0) & (self.tie == self.at) & (self.tie_credit == 0)
        # Locked scores may still fall in one step while the plan's sum stays above the lock: a
        # step may spend what steps before it gained, and ``score_price`` (the lock's price in
        # this level's cost) makes steps gain scores where that is cheap.
        self.price = weight_scores if not self.keep_scores else score_price
        # Where ties are priced or credited, a tied case away from its tie differs from its
        # pool's others.
        tie_key = np.where(self.frozen, -1, self.tie) if weight_ties or self.tie_credit else np.full(len(pool), -1)
        key = pd.MultiIndex.from_arrays([self.req, self.minors, self.excl, self.score_row, tie_key]
                                        + [self.use[:, s] for s in range(self.use.shape[1])])
        self.profile = pd.factorize(key)[0]

        n_muni, n_req = agg.n_municipalities, len(agg.requirements)
        self.n_muni, self.n_req = n_muni, n_req
        self.size = agg.requirements["size"].to_numpy(dtype=float)
        self.need = agg.requirements["bedrooms"].to_numpy()
        self.resolution = agg.problem.municipalities["resolution_persons"].to_numpy(dtype=float)
        self.pinned_persons = self.resolution - agg.persons_left
        self.count = np.zeros((n_muni, n_req), dtype=int)
        np.add.at(self.count, (self.at, self.req), 1)
        self.pinned = np.zeros((n_muni, n_req), dtype=int)
        for (m, r), n in agg.pinned_demand.items():
            self.pinned[m, r] += n
        self.persons = np.bincount(self.at, weights=self.size[self.req], minlength=n_muni)
        self.scores_at = np.bincount(self.at, weights=self._scores_of(np.arange(len(self.at)), self.at),
                                     minlength=n_muni)
        self.ties_at = np.bincount(self.at, weights=self.tie == self.at, minlength=n_muni)
        self.score_floor = float(self.scores_at.sum())  # the sum of scores the lock holds
        types = agg.dwelling_types
        owner = types["municipality"].to_numpy()
        self.types_of = [np.flatnonzero((owner == m) & (types["supply"].to_numpy() > 0)) for m in range(n_muni)]
        self.supply = types["supply"].to_numpy().astype(int)
        shared = types["shared"].to_numpy()
        # Waste of requirement r in type t: bedrooms left empty (none in a shared place).
        self.waste_of = np.where(shared[None, :], 0, types["bedrooms"].to_numpy()[None, :] - self.need[:, None])
        self.compatible = agg.compatible
        # Without dwellings.csv housing is no rule: no flow, and no bedrooms to waste.
        self.housing = agg.problem.housing_modelled
        self._cache: dict[tuple[int, bytes], float] = {}
        self.backend = MathOptBackend("highs")

    # -- evaluation -----------------------------------------------------------------------
    def waste(self, m: int) -> float:
        """Fewest bedrooms left empty housing municipality m's cases (min-cost flow, cached)."""
        if not self.housing:
            return 0.0
        counts = self.count[m]
        key = (m, counts.tobytes())
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        demand = counts + self.pinned[m]
        reqs = np.flatnonzero(demand > 0)
        types = self.types_of[m]
        value = 0.0
        if len(reqs):
            flow = min_cost_flow.SimpleMinCostFlow()
            source, sink = len(reqs) + len(types), len(reqs) + len(types) + 1
            for i, r in enumerate(reqs):
                flow.add_arc_with_capacity_and_unit_cost(source, i, int(demand[r]), 0)
                for j, t in enumerate(types):
                    if self.compatible[r, t]:
                        flow.add_arc_with_capacity_and_unit_cost(i, len(reqs) + j, int(demand[r]),
                                                                 int(self.waste_of[r, t]))
            for j, t in enumerate(types):
                flow.add_arc_with_capacity_and_unit_cost(len(reqs) + j, sink, int(self.supply[t]), 0)
            total = int(demand.sum())
            flow.set_node_supply(source, total)
            flow.set_node_supply(sink, -total)
            if flow.solve() != flow.OPTIMAL:
                value = np.inf
            else:
                value = float(flow.optimal_cost())
        self._cache[key] = value
        return value

    def spread(self, m: int) -> float:
        return float(spread_cost(self.resolution[m], self.pinned_persons[m] + self.persons[m]))

    def cost(self, munis, priced: bool = True) -> float:
        """The weighted cost of some municipalities (minimised; see the class); without the
        price of locked scores unless ``priced``."""
        wf, ws = self.weights
        price = self.price if priced or not self.keep_scores else 0.0
        return sum(wf * self.waste(int(m)) + ws * self.spread(int(m)) - price * self.scores_at[m]
                   - self.weight_ties * self.ties_at[m] for m in munis)

    def surplus(self) -> float:
        """How far the plan's sum of locked scores is above its start (0 where not locked)."""
        return max(float(self.scores_at.sum()) - self.score_floor, 0.0) if self.keep_scores else 0.0

    def totals(self) -> tuple[float, float]:
        """Bedrooms left empty and spread penalty of the whole plan (free cases and pins)."""
        return (sum(self.waste(m) for m in range(self.n_muni)), sum(self.spread(m) for m in range(self.n_muni)))

    def assignment(self) -> pd.Series:
        return pd.Series(self.at, index=self.ids, dtype=int)

    def away_from_tie(self) -> np.ndarray:
        """Per case: tied, and not at its tie municipality."""
        return (self.tie >= 0) & (self.tie != self.at)

    # -- one step -------------------------------------------------------------------------
    def _move(self, i: int, m: int) -> None:
        a, r = self.at[i], self.req[i]
        self.count[a, r] -= 1
        self.count[m, r] += 1
        self.persons[a] -= self.size[r]
        self.persons[m] += self.size[r]
        self.scores_at[a] -= self._scores_of(i, a)
        self.scores_at[m] += self._scores_of(i, m)
        self.ties_at[a] -= self.tie[i] == a
        self.ties_at[m] += self.tie[i] == m
        self.at[i] = m

    def _scores_of(self, cases: int | np.ndarray, munis: int | np.ndarray) -> float | np.ndarray:
        """Supplied score of ``cases`` at ``munis`` (broadcast; 0 without one), plus the tie
        credit where that is a case's tie."""
        if not self.has_scores:
            return np.zeros(np.shape(cases)) if np.ndim(cases) else 0.0
        rows = self.score_row[cases]
        score = np.where(rows >= 0, self.agg.score_rows[np.maximum(rows, 0), munis], 0.0)
        return score + self.tie_credit * (self.tie[cases] == munis) if self.tie_credit else score

    def _score(self, cases: np.ndarray) -> float:
        return float(self._scores_of(cases, self.at[cases]).sum())

    def _keeps_rules(self, group: np.ndarray) -> bool:
        agg = self.agg
        inside = np.isin(self.at, group)
        for m in group:
            here = inside & (self.at == m)
            if self.persons[m] > agg.persons_left[m] + 1e-9 or self.minors[here].sum() > agg.minors_left[m] + 1e-9:
                return False
            if (self.use[here].sum(axis=0) > agg.services_left[m] + 1e-9).any():
                return False
            if any(self.excl[i] >= 0 and m in self.excluded[self.excl[i]] for i in np.flatnonzero(here)):
                return False
            if not np.isfinite(self.waste(int(m))):
                return False
        return True

    def improve(self, group: np.ndarray, time_limit: float = STEP_SECONDS, hold: np.ndarray | None = None) -> float:
        """Re-assign the movable cases of ``group`` among its municipalities optimally; returns
        the gain (0 if none or the MIP found nothing better). Cases marked in ``hold`` stay
        where they are this step."""
        step = self.prepare(group, hold)
        if step is None:
            return 0.0
        return self.apply(step, self.solve_step(step, time_limit))

    def solve_step(self, step: Step, time_limit: float, cp_sat: MathOptBackend | None = None) -> np.ndarray | None:
        """The step's MIP solved (reads no search state, so steps on disjoint groups may be
        solved in parallel threads: HiGHS releases the GIL).

        With ``cp_sat`` (a mend), a step with nothing to price (at a level of urgency alone)
        only has to find room: that backend's CP-SAT takes its first plan, which comes sooner
        and more steadily than HiGHS's optimum, which may spend its root on cuts (replayed on
        32 such steps of national-1k and -2k rounds: 0.35 s in all against 0.48 s, the slowest
        0.05 s against 0.19 s); the solve's backend, so that its result records CP-SAT."""
        program = step.program
        if cp_sat is not None and not step.cost.any():
            out = cp_sat.find_plan(program, -step.cost, 0.0, lower=program.lower, upper=program.upper,
                                   hint=None, time_limit=time_limit, first_plan=True)
        else:
            out = self.backend.solve(program, -step.cost, time_limit=time_limit, relative_gap=1e-6, tiny=True)
        return out.values

    def prepare(self, group: np.ndarray, hold: np.ndarray | None = None, least: int = 2) -> Step | None:
        """The MIP of one step on ``group`` (None if fewer than ``least`` cases may move: a
        search step gains by exchanges, a mend may move a lone case)."""
        agg = self.agg
        group = np.unique(np.asarray(group, dtype=int))
        k_of = {int(m): k for k, m in enumerate(group)}
        n_k = len(group)
        inside = np.isin(self.at, group)
        held = self.frozen if hold is None else self.frozen | hold
        movable = np.flatnonzero(inside & ~held)
        if len(movable) < least:
            return None
        profiles, inverse = np.unique(self.profile[movable], return_inverse=True)
        n_q = len(profiles)
        first = np.zeros(n_q, dtype=int)
        first[inverse[::-1]] = movable[::-1]  # a representative case of each profile
        n_cases = np.bincount(inverse, minlength=n_q)
        q_req, q_size, q_minors, q_use = self.req[first], self.size[self.req[first]], self.minors[first], self.use[first]
        n_services = q_use.shape[1]
        # What stays: frozen tied cases and pins.
        fixed = np.flatnonzero(inside & held)
        fixed_k = np.array([k_of[int(m)] for m in self.at[fixed]], dtype=int)
        f_count = np.zeros((n_k, self.n_req), dtype=int)
        np.add.at(f_count, (fixed_k, self.req[fixed]), 1)
        f_count += self.pinned[group]
        f_persons = np.bincount(fixed_k, weights=self.size[self.req[fixed]], minlength=n_k)
        f_minors = np.bincount(fixed_k, weights=self.minors[fixed], minlength=n_k)
        f_use = np.zeros((n_k, n_services))
        np.add.at(f_use, fixed_k, self.use[fixed])

        # Columns: n[q, k] (integer), flow f[k, r, t], spread z[k, j].
        n_n = n_q * n_k
        flow_k, flow_r, flow_t = [], [], []
        for k, m in enumerate(group):
            reqs = np.flatnonzero((f_count[k] > 0) | np.isin(np.arange(self.n_req), q_req))
            for t in self.types_of[m]:
                fits = reqs[self.compatible[reqs, t]]
                flow_k += [k] * len(fits)
                flow_r += fits.tolist()
                flow_t += [int(t)] * len(fits)
        flow_k, flow_r, flow_t = np.array(flow_k, dtype=int), np.array(flow_r, dtype=int), np.array(flow_t, dtype=int)
        n_f = len(flow_k)
        n_z = n_k * SPREAD_SEGMENTS
        n_vars = n_n + n_f + n_z
        wf, ws = self.weights
        cost = np.zeros(n_vars)
        cost[n_n:n_n + n_f] = wf * self.waste_of[flow_r, flow_t]
        z_k = np.repeat(np.arange(n_k), SPREAD_SEGMENTS)
        z_j = np.tile(np.arange(SPREAD_SEGMENTS), n_k)
        cost[n_n + n_f:] = ws * z_j / SPREAD_SEGMENTS
        lower = np.zeros(n_vars)
        upper = np.full(n_vars, np.inf)
        upper_n = np.repeat(n_cases[:, None], n_k, axis=1).astype(float)
        if self.housing:
            has_type = np.zeros((self.n_req, n_k), dtype=bool)
            has_type[flow_r, flow_k] = True
            upper_n[~has_type[q_req]] = 0
        for q in range(n_q):
            e = self.excl[first[q]]
            if e >= 0:
                upper_n[q, [k_of[m] for m in self.excluded[e] if m in k_of]] = 0
        upper[:n_n] = upper_n.reshape(-1)
        res, pinned = self.resolution[group], self.pinned_persons[group]
        seg = res[z_k] / SPREAD_SEGMENTS
        start = z_j * seg
        upper[n_n + n_f:] = np.clip(start + seg - np.maximum(pinned[z_k], start), 0, None)
        # Every bound finite: with an infinite one, HiGHS's MIP presolve looped forever, past its
        # time limit, on some of these small programs (seen with 24 variables).
        upper[n_n + n_f:][z_j == SPREAD_SEGMENTS - 1] = agg.persons_left[group][z_k[z_j == SPREAD_SEGMENTS - 1]]
        upper[n_n:n_n + n_f] = self.supply[flow_t]
        integer = np.zeros(n_vars)
        integer[:n_n] = 1

        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        lo: list[np.ndarray] = []
        hi: list[np.ndarray] = []
        count = [0]

        def block(r: np.ndarray, c: np.ndarray, v: np.ndarray, n_rows: int, low, high) -> None:
            rows.append(count[0] + np.asarray(r, dtype=int))
            cols.append(np.asarray(c, dtype=int))
            vals.append(np.broadcast_to(np.asarray(v, dtype=float), np.shape(r)).copy())
            lo.append(np.broadcast_to(np.asarray(low, dtype=float), (n_rows,)).copy())
            hi.append(np.broadcast_to(np.asarray(high, dtype=float), (n_rows,)).copy())
            count[0] += n_rows

        qq, kk = np.divmod(np.arange(n_n), n_k)
        block(qq, np.arange(n_n), 1.0, n_q, n_cases, n_cases)  # every movable case placed
        block(kk, np.arange(n_n), q_size[qq], n_k, -np.inf, agg.persons_left[group] - f_persons)
        block(kk, np.arange(n_n), q_minors[qq], n_k, -np.inf, agg.minors_left[group] - f_minors)
        for s in range(n_services):
            block(kk, np.arange(n_n), q_use[qq, s], n_k, -np.inf, agg.services_left[group, s] - f_use[:, s])
        # Spread: the segments hold the persons placed (pins sit in the first ones already).
        block(np.r_[z_k, kk], np.r_[n_n + n_f + np.arange(n_z), np.arange(n_n)], np.r_[np.ones(n_z), -q_size[qq]],
              n_k, f_persons, f_persons)
        if self.housing:
            # Housing: each (municipality, requirement) demand flows to compatible types.
            # One row per (k, requirement) pair with a flow, in order of first appearance; pairs as
            # numbers k * n_req + r (pandas' MultiIndex took half of a step's preparing time).
            flow_key = flow_k * self.n_req + flow_r
            dem = pd.unique(flow_key)
            row_of = np.full(n_k * self.n_req, -1)
            row_of[dem] = np.arange(len(dem))
            d_row = row_of[flow_key]
            q_row = row_of[kk * self.n_req + q_req[qq]]
            ok = q_row >= 0
            d_k, d_r = np.divmod(dem, self.n_req)
            fixed_demand = f_count[d_k, d_r]
            block(np.r_[d_row, q_row[ok]], np.r_[n_n + np.arange(n_f), np.arange(n_n)[ok]],
                  np.r_[np.ones(n_f), -np.ones(ok.sum())], len(dem), fixed_demand, fixed_demand)
            used_types, t_row = np.unique(flow_t, return_inverse=True)
            block(t_row, n_n + np.arange(n_f), 1.0, len(used_types), -np.inf, self.supply[used_types])
        if self.has_scores:
            score = self._scores_of(first[:, None], group[None, :])  # profile q at the group's k-th
            if self.keep_scores:
                now = self._score(movable)
                block(np.zeros(n_n, dtype=int), np.arange(n_n), score[qq, kk], 1,
                      now - self.surplus() - 1e-9 * max(1.0, abs(now)), np.inf)
            cost[:n_n] -= self.price * score.reshape(-1)
        if self.weight_ties:
            cost[:n_n] -= self.weight_ties * (self.tie[first][:, None] == group[None, :]).reshape(-1)
        matrix = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(count[0], n_vars))
        program = LinearProgram(lower, upper, integer.astype(bool), matrix, np.concatenate(lo), np.concatenate(hi))
        return Step(group, movable, inverse, program, cost)

    def apply(self, step: Step, values: np.ndarray | None, mend: bool = False) -> float:
        """Move the step's cases as its MIP solution ``values`` says, if that keeps every rule
        and lowers the cost (with ``mend``, at any cost: the group broke a rule before); returns
        the gain (0 and nothing moved otherwise; with ``mend``, negative where it cost)."""
        if values is None:
            return 0.0
        group, movable, inverse = step.group, step.movable, step.inverse
        k_of = {int(m): k for k, m in enumerate(group)}
        n_q, n_k = int(inverse.max()) + 1, len(group)
        before = self.cost(group)
        n = np.rint(values[:n_q * n_k]).astype(int).reshape(n_q, n_k)
        old = self.at.copy()
        for q in range(n_q):
            cases = movable[inverse == q]
            want = n[q].copy()
            leaving = []
            for i in cases:  # cases stay where their profile keeps a slot
                k = k_of[int(self.at[i])]
                if want[k] > 0:
                    want[k] -= 1
                else:
                    leaving.append(i)
            for i, k in zip(leaving, np.repeat(np.arange(n_k), np.maximum(want, 0))):
                self._move(i, int(group[k]))
        after = self.cost(group)
        floor = self.score_floor
        scores_kept = not self.keep_scores or self.scores_at.sum() >= floor - 1e-9 * max(1.0, abs(floor))
        if (after > before - 1e-9 and not mend) or not scores_kept or not self._keeps_rules(group):
            for i in np.flatnonzero(self.at != old):
                self._move(i, int(old[i]))
            return 0.0
        return before - after


def rehouse(
    model: PlacementModel,
    assignment: pd.Series,
    weight_fit: float,
    weight_spread: float,
    deadline: float,
    guide: np.ndarray | None = None,
    seed: int = 0,
    enough_gain: float | None = None,
    target: np.ndarray | None = None,
    threads: int = 1,
    weight_scores: float = 0.0,
    weight_ties: float = 0.0,
    stop: StopFlag | None = None,
    grow: bool = True,
    score_price: float = 0.0,
    handover: float = np.inf,
    tie_credit: float = 0.0,
) -> tuple[pd.Series, float, float]:
    """Improve a concrete plan (free case_id -> municipality number) for ``weight_fit`` times the
    housing fit plus ``weight_spread`` times the spread (less ``weight_scores`` times the
    supplied scores and ``weight_ties`` times the ties honoured), moving cases only.

    Parameters
    ----------
    model
        The placement model (its aggregation gives cases, rules and dwellings).
    assignment
        The plan: free case_id -> municipality number.
    weight_fit, weight_spread
        Weights of the bedrooms left empty and of the spread penalty (both minimised).
    deadline
        ``time.perf_counter()`` value to stop at.
    guide
        Per municipality, a cost to beat (e.g. the LP's weighted waste and spread there):
        municipalities whose plan costs more than it are likelier to start a neighbourhood.
    seed
        Seed of the random choices.
    enough_gain
        Stop once the cost fell by this much.
    target
        Per municipality and housing requirement, the cases a good plan puts there (e.g. the
        LP's counts). Most neighbourhoods then join a municipality to those whose surplus or
        shortage against it matches its own: cases of the requirements one has too many of can
        go where they are short.
    threads
        Steps solved at once, on disjoint groups of municipalities.
    weight_scores, weight_ties
        Weights of the supplied scores and of the ties honoured (both maximised). Scores with
        weight 0 never fall in sum; a tied case at its tie never moves.
    stop
        Set from another thread to stop after the steps in flight.
    grow
        After ``STALL_STEPS`` fruitless steps, go on with larger neighbourhoods; if False, stop
        there (the caller has a better use for the time: the full model, which proves the
        small rounds' optimum from here in seconds).
    score_price
        Where scores are locked (``weight_scores`` 0), what a unit of their sum is worth in the
        cost: steps then gain scores where that is cheap and later steps spend the gain where
        it buys more. The plan returned is the best seen by the cost without that price. Where
        the steps stall at the largest neighbourhoods, the search goes on at a lower price, unless
        at least ``handover`` seconds are left (the caller's full model has a use for them).
    tie_credit
        Where a level above locks the ties together with the scores, a tie honoured in units of
        score (the ties' weight over the scores' in that level): tied cases may then leave
        their tie where scores make up for it (:class:`Rehouser`).

    Returns
    -------
    tuple[pd.Series, float, float]
        The plan, its bedrooms left empty and its spread penalty.
    """
    search = Rehouser(model, assignment, weight_fit, weight_spread, weight_scores, weight_ties, score_price,
                      tie_credit)
    rng = np.random.default_rng(seed)
    # Every municipality that could take a case, not only those holding some: on a round with
    # fewer cases than places, spread is won by moving cases to empty municipalities.
    open_ = search.agg.persons_left > 0
    if model.agg.problem.housing_modelled:
        open_ &= np.array([len(t) > 0 for t in search.types_of])
    active = np.union1d(np.flatnonzero(open_), np.unique(search.at))
    if len(active) < 2 or len(search.at) < 2:
        waste, spread = search.totals()
        return search.assignment(), waste, spread
    baseline = np.zeros(search.n_muni) if guide is None else guide
    # Ties priced and no scores: most neighbourhoods are drawn around a tie not yet honoured.
    tie_groups = bool(search.weight_ties) and not search.has_scores
    size = min(GROUP, len(active))
    gained = 0.0
    fruitless = 0  # steps since the last gain
    # Each municipality's cost (without a price of locked scores), kept current: a step changes
    # only its group's.
    costs = np.array([search.cost([m], priced=False) for m in active])
    where = {int(m): i for i, m in enumerate(active)}
    best, best_at = costs.sum(), search.at.copy()
    # Steps on disjoint groups touch disjoint state, so ``threads`` of them are in flight at once:
    # when one's MIP is solved it is applied and the next is drawn, away from the groups still
    # being solved (step times vary tenfold; waiting for a whole batch wasted the second core).
    busy = np.zeros(len(active), dtype=bool)
    in_flight: dict[Future, Step] = {}
    first_price = search.price
    with ThreadPoolExecutor(max(threads, 1)) as pool:
        while True:
            while len(in_flight) < threads and time.perf_counter() < deadline \
                    and (enough_gain is None or gained < enough_gain) and fruitless < STOP_STEPS \
                    and not (stop is not None and stop.stopped):
                if fruitless >= STALL_STEPS and not grow:
                    break
                if fruitless >= STALL_STEPS and size < min(MAX_GROUP, len(active)):
                    # Small neighbourhoods found nothing for a while: larger ones (slower steps)
                    # can make the exchanges of three or more municipalities that small ones cannot.
                    size += 1
                    fruitless = 0
                if (~busy).sum() < size:
                    break
                weight = np.clip(costs - baseline[active], 0, None) + 0.5
                group = None
                if tie_groups and rng.random() < GUIDED_SHARE:
                    group = _tie_group(search, active, weight, busy, size, rng)
                if group is None:
                    group = _draw_group(search, active, weight, busy, target, size, rng)
                hold = _hold_most(search, group, target, rng)
                if hold is not None and tie_groups:
                    # The cases tied to the group's municipalities stay movable: they are what
                    # the step is for.
                    hold &= ~(search.away_from_tie() & np.isin(search.tie, group))
                step = search.prepare(group, hold)
                if step is None:
                    fruitless += 1
                    continue
                busy[np.searchsorted(active, step.group)] = True
                limit = min(STEP_SECONDS, max(deadline - time.perf_counter(), 0.01))
                in_flight[pool.submit(search.solve_step, step, limit)] = step
            if not in_flight and fruitless >= STOP_STEPS and search.keep_scores and search.price > 0 \
                    and deadline - time.perf_counter() < handover:
                # Stuck at this price of locked scores: at a lower one, other trades pay (the
                # LP's dual value prices a unit at the margin, higher than whole steps trade it).
                search.price = search.price * PRICE_STEP if search.price > first_price * PRICE_FLOOR else 0.0
                size, fruitless = min(GROUP, len(active)), 0
                continue
            if not in_flight:
                # Out of time, gained enough, or stuck even with the largest neighbourhoods (the
                # time left is the full model's: on the 200-case demo round it proves the
                # optimum in 4 s from here).
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                step = in_flight.pop(future)
                busy[np.searchsorted(active, step.group)] = False
                gain = search.apply(step, future.result())
                if gain > 0:
                    for m in step.group:
                        costs[where[int(m)]] = search.cost([m], priced=False)
                    now = costs.sum()
                    if now < best - 1e-9:
                        gained += best - now
                        best, best_at = now, search.at.copy()
                fruitless = 0 if gain > 0 else fruitless + 1
    for i in np.flatnonzero(search.at != best_at):  # back to the best plan (priced scores)
        search._move(i, int(best_at[i]))
    waste, spread = search.totals()
    return search.assignment(), waste, spread


def mend_services(
    model: PlacementModel,
    assignment: pd.Series,
    broken: np.ndarray,
    weight_fit: float,
    weight_spread: float,
    seed: int = 0,
    weight_scores: float = 0.0,
    weight_ties: float = 0.0,
    tie_credit: float = 0.0,
    deadline: float = np.inf,
    backend: MathOptBackend | None = None,
) -> pd.Series | None:
    """A concrete plan whose cases use more of a service than the ``broken`` municipalities
    have (cases chosen from class counts, where the model counts no service), mended by the
    search's steps: the movable cases of each broken municipality re-assigned, at the least cost
    (the weights as for :func:`rehouse`), among it and the ``MEND_PARTNERS`` municipalities that
    may take the most of its cases using a broken service (their pool may go there, and the
    broken services have room for them), the roomiest first; then, up to ``MEND_TRIES`` times in
    all, others drawn from the first few. The same cases stay placed and a tied case at its tie
    stays there, so every lock of urgency and ties holds; locked scores never fall in sum.
    No step starts after ``deadline`` (``time.perf_counter()``), and none runs past it. Steps
    that price nothing take the first plan of ``backend``'s CP-SAT (the solve's; by default the
    search's own). Returns the plan, or None if a municipality stays broken."""
    search = Rehouser(model, assignment, weight_fit, weight_spread, weight_scores, weight_ties, tie_credit=tie_credit)
    agg = model.agg
    rng = np.random.default_rng(seed)

    def used() -> np.ndarray:
        out = np.zeros_like(agg.services_left)
        np.add.at(out, search.at, search.use)
        return out

    for m in np.asarray(broken, dtype=int):
        for attempt in range(MEND_TRIES):
            if time.perf_counter() >= deadline:
                break
            left = agg.services_left - used()
            over = left[m] < -1e-9
            if not over.any():
                break
            # The cases that use a broken service, and where each could go: a municipality
            # that may take its pool and has that much of the broken services left (the step
            # may free persons and other services there by moving its cases).
            users = np.flatnonzero((search.at == m) & ~search.frozen & (search.use[:, over] > 0).any(axis=1))
            if not len(users):
                break
            takes = agg.pair_bounds(agg.pools.iloc[search.pool[users]]) > 0
            takes &= (left[None, :, over] >= search.use[users][:, None, over] - 1e-9).all(axis=2)
            takes[:, m] = False
            room = agg.persons_left - search.persons
            # Those that could take the most of them first, then those with the most room.
            partners = np.lexsort((-room, -takes.sum(axis=0)))
            partners = partners[takes[:, partners].any(axis=0)]
            if not len(partners):
                break
            if attempt:
                first = partners[: MEND_PARTNERS * 4]
                partners = rng.choice(first, size=min(MEND_PARTNERS, len(first)), replace=False)
            step = search.prepare(np.r_[m, partners[:MEND_PARTNERS]], least=1)
            if step is None:
                break
            limit = min(STEP_SECONDS, deadline - time.perf_counter())
            search.apply(step, search.solve_step(step, limit, cp_sat=backend or search.backend), mend=True)
    placed = used()
    if ((placed > agg.services_left + 1e-9) & (placed > 0)).any():
        return None
    return search.assignment()


def _draw_group(search: Rehouser, active: np.ndarray, weight: np.ndarray, taken: np.ndarray,
                target: np.ndarray | None, size: int, rng: np.random.Generator) -> np.ndarray:
    """A neighbourhood of ``size`` of the ``active`` municipalities, none ``taken``: matched by
    ``target`` (:func:`_matched_group`) mostly, else drawn by ``weight``."""
    weight = np.where(taken, 0.0, weight)
    if target is not None and rng.random() < GUIDED_SHARE:
        return _matched_group(search, active, weight, target, size, rng)
    return rng.choice(active, size=size, replace=False, p=weight / weight.sum())


def _tie_group(search: Rehouser, active: np.ndarray, weight: np.ndarray, taken: np.ndarray, size: int,
               rng: np.random.Generator) -> np.ndarray | None:
    """A neighbourhood for honouring ties (or None: none to honour, or every one taken): the tie
    municipality of a tied case away from it, the municipality where the case is, and then,
    mostly, municipalities linked to the group by other such cases (where the cases tied to the
    group sit, and the ties of the cases that sit in the group), else drawn by ``weight``. Tie
    municipalities are full after the urgency level: a tie is honoured by a cycle of moves, and
    linked municipalities close such cycles (national-30k, 3 s: 1,257 -> 1,548-1,604 ties,
    where groups drawn by ``weight`` after the first two reached 1,433)."""
    away = np.flatnonzero(search.away_from_tie())
    if not len(away):
        return None
    free = np.zeros(search.n_muni, dtype=bool)
    free[active[~taken]] = True
    open_pairs = away[free[search.tie[away]] & free[search.at[away]]]
    if not len(open_pairs):
        return None
    i = int(rng.choice(open_pairs))
    chosen = {int(search.tie[i]), int(search.at[i])}
    drawn = np.zeros(search.n_muni)
    drawn[active] = np.where(taken, 0.0, weight)
    while len(chosen) < size:
        group = np.fromiter(chosen, dtype=int)
        linked = np.concatenate([search.at[away[np.isin(search.tie[away], group)]],
                                 search.tie[away[np.isin(search.at[away], group)]]])
        linked = np.setdiff1d(linked[free[linked]], group)
        if len(linked) and rng.random() < LINKED_SHARE:
            chosen.add(int(rng.choice(linked)))
            continue
        p = drawn.copy()
        p[group] = 0.0
        if not p.any():
            return None
        chosen.add(int(rng.choice(search.n_muni, p=p / p.sum())))
    return np.array(sorted(chosen))


def _hold_most(search: Rehouser, group: np.ndarray, target: np.ndarray | None,
               rng: np.random.Generator) -> np.ndarray | None:
    """Cases to hold in place for one step: in a municipality of the group with more than
    ``MAX_MOVABLE`` movable cases, all but that many, so that a step with a large municipality
    stays a small MIP. The cases left movable are drawn with more weight on the requirements
    it holds more of than ``target``: those are the ones to move out."""
    hold = None
    for m in group:
        cases = np.flatnonzero((search.at == m) & ~search.frozen)
        if len(cases) <= MAX_MOVABLE:
            continue
        weight = np.ones(len(cases))
        if target is not None:
            surplus = search.count[m] - target[m]
            weight += np.clip(surplus, 0, None)[search.req[cases]]
        free = rng.choice(cases, size=MAX_MOVABLE, replace=False, p=weight / weight.sum())
        if hold is None:
            hold = np.zeros(len(search.at), dtype=bool)
        hold[cases] = True
        hold[free] = False
    return hold


def _matched_group(search: Rehouser, active: np.ndarray, weight: np.ndarray, target: np.ndarray, size: int,
                   rng: np.random.Generator) -> np.ndarray:
    """A neighbourhood grown from one municipality (picked by ``weight``): each next one is
    picked in proportion to how well its surplus and shortage of each requirement against
    ``target`` (persons counted) offset the group's so far, so the cases the group has too many
    of can go where they are short."""
    diff = (search.count[active] - target[active]) * search.size[None, :]
    first = rng.choice(len(active), p=weight / weight.sum())
    chosen = [first]
    net = diff[first].copy()
    for _ in range(size - 1):
        match = np.clip(diff, 0, None) @ np.clip(-net, 0, None) + np.clip(-diff, 0, None) @ np.clip(net, 0, None)
        match[chosen] = 0
        # A little weight everywhere keeps every municipality reachable.
        p = match + MATCH_FLOOR * max(match.max(), 1.0) * weight / weight.max()
        p[chosen] = 0
        p[weight == 0] = 0  # taken by another step of the batch
        nxt = rng.choice(len(active), p=p / p.sum())
        chosen.append(nxt)
        net += diff[nxt]
    return active[chosen]


def restore_ties(model: PlacementModel, assignment: pd.Series) -> pd.Series:
    """Swap tied cases to their tie municipality with a case of the same class there (same
    size, minors, housing need, exclusions and scores: only service use may differ, and both
    municipalities must keep their service capacities). Nothing but ties and service use
    changes, so every other term is the same. Cases chosen from class counts can honour fewer
    ties than the counts; this gives them back where a swap can."""
    agg = model.agg
    free = agg.free_cases
    ids = assignment.index.to_numpy()
    at = assignment.to_numpy(dtype=int).copy()
    pool = free.loc[ids, "pool"].to_numpy()
    cls = agg.pools["cls"].to_numpy()[pool]
    tie = free.loc[ids, "tie"].to_numpy()
    use = agg.pools[[f"use_{s}" for s in agg.problem.services]].to_numpy(dtype=float)[pool]
    use = use.reshape(len(ids), len(agg.problem.services))
    used = np.zeros_like(agg.services_left)
    np.add.at(used, at, use)
    for i in np.flatnonzero((tie >= 0) & (tie != at)):
        t, here = int(tie[i]), int(at[i])
        for j in np.flatnonzero((at == t) & (cls == cls[i]) & (tie != t)):
            delta = use[i] - use[j]
            if (used[t] + delta <= agg.services_left[t] + 1e-9).all() \
                    and (used[here] - delta <= agg.services_left[here] + 1e-9).all():
                at[i], at[j] = t, here
                used[t] += delta
                used[here] -= delta
                break
    return pd.Series(at, index=assignment.index, dtype=int)

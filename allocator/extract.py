"""From the model's counts to a concrete plan: which case, which municipality, which dwelling.

The model decides how many cases of each pool go where; here the most urgent cases of each pool
are chosen, tied cases are sent to their tie municipality where the model counted them, and the
concrete dwellings are chosen by a min-cost flow that wastes the fewest bedrooms.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
from ortools.graph.python import min_cost_flow

from .aggregate import REQUIREMENT_COLUMNS, Aggregation, dwelling_type_of
from .backend import MathOptBackend, Outcome
from .model import LinearProgram, PlacementModel

#: Where the greedy leaves a service capacity broken, the search that mends it frees these many
#: other municipalities with slots of the broken ones' classes, those with most room first.
MEND_ROOMIEST = 20
#: The distribution MIPs are solved to optimality (their objective is the slack, a whole number).
EXACT = dict(time_limit=10.0, relative_gap=0.0, absolute_gap=1e-6)


@dataclass(frozen=True)
class ClassSlots:
    """Class slots at municipalities where a service capacity could break, and the cases that
    may fill them by profile (cases of one class with the same service use)."""

    profiles: pd.DataFrame  # per profile: its class ``cls`` and its number of cases ``n``
    use: np.ndarray  # profile x service: members using it
    cap: np.ndarray  # municipality x service: room left
    slot_cls: np.ndarray  # per slot: its class
    slot_m: np.ndarray  # per slot: its municipality
    slot_n: np.ndarray  # per slot: the cases it takes

    def unpacked(self) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.profiles, self.use, self.cap, self.slot_cls, self.slot_m, self.slot_n


def chosen_cases(model: PlacementModel, values: np.ndarray) -> pd.DataFrame:
    """The free cases the counts choose: per pool its most urgent untied cases and the tied
    cases the model picked. Columns ``pool``, ``cls``, ``tie``, ``urgency``."""
    agg = model.agg
    free = agg.free_cases
    w = values[model.blocks["w"]]
    s = np.rint(values[model.blocks["s"]]).astype(int)
    untied_n = np.rint(np.bincount(model.w_pool, weights=w, minlength=len(agg.pools))).astype(int)
    # Most urgent first; then id, so the choice is deterministic. By position: iterating and
    # looking up the string index cost national-30k 0.2 s a call.
    by_id = np.argsort(free.index.to_numpy(), kind="stable")
    order = by_id[np.argsort(-free["urgency"].to_numpy()[by_id], kind="stable")]
    untied = order[free["tie"].to_numpy()[order] < 0]
    pool = free["pool"].to_numpy()[untied]
    rank = pd.Series(pool).groupby(pool).cumcount().to_numpy()  # within its pool, in that order
    picked = np.concatenate([untied[rank < untied_n[pool]], model.s_case[s > 0]]).astype(int)
    out = free.iloc[picked][["pool", "tie", "urgency"]].copy()
    out["cls"] = agg.pools["cls"].to_numpy()[out["pool"].to_numpy()]
    return out


def choose_cases(model: PlacementModel, values: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    """Municipality number of every placed free case (case_id -> municipality number), and the
    municipalities where counting classes instead of pools broke a service capacity (empty when
    the plan keeps every rule)."""
    agg = model.agg
    n_pools = len(agg.pools)
    y = np.rint(values[model.blocks["y"]]).astype(int)
    a = np.rint(values[model.blocks["a"]]).astype(int)
    chosen = chosen_cases(model, values)

    slots: dict[int, dict[int, int]] = defaultdict(dict)  # unit -> municipality -> free slots
    for u, m, n in zip(model.y_unit[y > 0], model.y_muni[y > 0], y[y > 0]):
        slots[int(u)][int(m)] = int(n)
    counted: dict[int, dict[int, int]] = defaultdict(dict)  # unit -> tie municipality -> ties
    for u, m, n in zip(model.a_unit[a > 0], model.a_muni[a > 0], a[a > 0]):
        counted[int(u)][int(m)] = int(n)
    # Class ties each pool gives (pool, municipality) -> cases: kept out of the pool's slots.
    split = np.rint(values[model.blocks["a_pool"]]).astype(int)
    reserved = defaultdict(int, {(int(p), int(m)): int(n) for p, m, n in
                                 zip(model.a_pool_pool[split > 0], model.a_pool_muni[split > 0], split[split > 0])})

    assignment: dict[str, int] = {}
    chosen_ids = chosen.index.to_numpy().tolist()
    tie_of = dict(zip(chosen_ids, chosen["tie"].to_numpy().tolist()))
    left: dict[int, list[str]] = defaultdict(list)  # class -> chosen cases not yet placed
    pool_cls = agg.pools["cls"].to_numpy()
    # Pools at fine municipalities: counted ties first, then any tied case whose tie has a slot,
    # then untied cases (tied ones are kept for their class's tie slots if they can be).
    # Each pool's cases in the order chosen (plain arrays: a pandas group per pool cost
    # national-2k 0.05 s a call).
    order = np.argsort(chosen["pool"].to_numpy(), kind="stable")
    pool_of = chosen["pool"].to_numpy()[order]
    ids_of, ties_of = chosen.index.to_numpy()[order], chosen["tie"].to_numpy()[order]
    tied_of = ties_of >= 0
    starts = np.flatnonzero(np.diff(pool_of, prepend=-1))
    for start, end in zip(starts.tolist(), np.append(starts[1:], len(order)).tolist()):
        p = int(pool_of[start])
        unit_slots = slots.get(p, {})
        ids = ids_of[start:end]
        tied = tied_of[start:end]
        if tied.any():
            # Only tied cases take a slot at their tie or sort after the untied (most cases of a
            # pool are untied: they keep their order, without a step each).
            ties = counted.get(p, {})
            rest = []
            for case_id, tie in zip(ids[tied].tolist(), ties_of[start:end][tied].tolist()):
                if ties.get(tie, 0) > 0 and unit_slots.get(tie, 0) > 0:
                    assignment[case_id] = tie
                    ties[tie] -= 1
                    unit_slots[tie] -= 1
                else:
                    rest.append((case_id, tie))
            waiting = []
            for case_id, tie in rest:
                if unit_slots.get(tie, 0) > 0:
                    assignment[case_id] = tie
                    unit_slots[tie] -= 1
                else:
                    waiting.append((case_id, tie))
            # Untied first; tied cases whose class counts a tie at a coarse municipality later,
            # and those giving the ties the counts split to this pool last.
            class_ties = counted.get(n_pools + int(pool_cls[p]), {})
            keys = []
            for _, tie in waiting:
                key = 1 + (class_ties.get(tie, 0) > 0)
                if reserved[(p, tie)] > 0:
                    reserved[(p, tie)] -= 1
                    key = 3
                keys.append(key)
            rest_ids = ids[~tied].tolist() + [waiting[i][0] for i in np.argsort(keys, kind="stable")]
        else:
            rest_ids = ids.tolist()
        munis = [m for m in sorted(unit_slots) for _ in range(unit_slots[m])]
        assignment.update(zip(rest_ids, munis))
        left[int(pool_cls[p])] += rest_ids[len(munis):]

    # Classes at the other municipalities: counted ties, where the case's service use still
    # fits (these municipalities have no service rows), then a service-aware distribution.
    use = dict(zip(chosen_ids, _service_use(agg, chosen.index).to_numpy()))
    tie_room = agg.services_left.copy()
    coarse: dict[tuple[int, int], int] = {}
    for u, unit_slots in slots.items():
        if u < n_pools:
            continue
        c = u - n_pools
        ties = counted.get(u, {})
        pending = []
        for case_id in left.get(c, []):
            tie = tie_of[case_id]
            if tie >= 0 and ties.get(tie, 0) > 0 and unit_slots.get(tie, 0) > 0 \
                    and (use[case_id] <= tie_room[tie] + 1e-9).all():
                assignment[case_id] = tie
                tie_room[tie] -= use[case_id]
                ties[tie] -= 1
                unit_slots[tie] -= 1
            else:
                pending.append(case_id)
        left[c] = pending
        for m, n in unit_slots.items():
            if n > 0:
                coarse[(c, m)] = n
    placed, broken = _distribute(model, chosen, left, coarse, assignment)
    assignment.update(placed)
    plan = pd.Series(assignment, dtype=int)
    # Whatever the steps above missed, a capacity the plan breaks is reported.
    return plan, np.union1d(broken, over_capacity(agg, plan)).astype(int)


def _service_use(agg: Aggregation, case_ids: pd.Index) -> pd.DataFrame:
    """Members using each service, per case (no columns without services)."""
    return agg.problem.cases.loc[case_ids, [f"use_{s}" for s in agg.problem.services]]


def services_used_by(agg: Aggregation, case_ids: pd.Index) -> np.ndarray:
    """Members using each service, per case (cases x services)."""
    return _service_use(agg, case_ids).to_numpy(dtype=float).reshape(len(case_ids), -1)


def services_used(agg: Aggregation, plan: pd.Series) -> np.ndarray:
    """Members using each service per municipality (municipalities x services) in ``plan``
    (case_id -> municipality number)."""
    used = np.zeros_like(agg.services_left)
    if not plan.empty and agg.problem.services:
        np.add.at(used, plan.to_numpy(dtype=int), _service_use(agg, plan.index).to_numpy())
    return used


def over_capacity(agg: Aggregation, plan: pd.Series) -> np.ndarray:
    """Municipalities where the cases of ``plan`` (case_id -> municipality number) use more of a
    service than the round leaves there."""
    return np.flatnonzero((services_used(agg, plan) > agg.services_left + 1e-9).any(axis=1))


def _distribute(
    model: PlacementModel,
    chosen: pd.DataFrame,
    left: dict[int, list[str]],
    coarse: dict[tuple[int, int], int],
    fixed: dict[str, int],
) -> tuple[dict[str, int], np.ndarray]:
    """Give the class slots at municipalities without service rows to concrete cases, keeping
    service capacities where possible (a small MIP); returns the assignment and the
    municipalities where a capacity could not be kept."""
    agg = model.agg
    services = list(agg.problem.services)
    cases_left = [c for cases in left.values() for c in cases]
    if not coarse or not cases_left:
        return {}, np.zeros(0, dtype=int)
    pools = agg.pools
    use_cols = [f"use_{s}" for s in services]
    # Cases of one class with the same service use are interchangeable here: a profile each,
    # numbered in the order the cases first show it. A pool's cases share class and use, so the
    # profiles are found per pool (a few hundred) rather than per case (national-30k: 26,000).
    case_pool = chosen["pool"].to_numpy()[chosen.index.get_indexer(cases_left)]
    pool_ids, first, pool_at = np.unique(case_pool, return_index=True, return_inverse=True)
    pool_use = pools[use_cols].to_numpy()[pool_ids] if services else np.zeros((len(pool_ids), 0))
    pool_cls = pools["cls"].to_numpy()[pool_ids]
    seen = np.argsort(first)  # the pools in the order the cases first show them
    codes = np.empty(len(pool_ids), dtype=int)
    codes[seen] = pd.factorize(pd.MultiIndex.from_arrays(
        [pool_cls[seen]] + [pool_use[seen, i] for i in range(pool_use.shape[1])]))[0]
    profile_of = codes[pool_at]
    n_profiles = int(codes.max()) + 1
    profile_cls = np.zeros(n_profiles, dtype=pool_cls.dtype)
    profile_cls[codes] = pool_cls
    profiles = pd.DataFrame({"cls": profile_cls, "n": np.bincount(profile_of, minlength=n_profiles)},
                            index=pd.RangeIndex(n_profiles, name="profile"))
    prof_use = np.zeros((n_profiles, len(services)))
    prof_use[codes] = pool_use
    slot_keys = list(coarse)
    slot_cls = np.array([c for c, _ in slot_keys])
    slot_m = np.array([m for _, m in slot_keys])
    slot_n = np.array([coarse[k] for k in slot_keys], dtype=float)

    # Service use already fixed at these municipalities (ties placed above, fine pools cannot be
    # there: these municipalities have no fine pairs).
    used = np.zeros((agg.n_municipalities, len(services)))
    if fixed and services:
        is_fixed = chosen.index.isin(list(fixed))
        fp = chosen["pool"].to_numpy()[is_fixed]
        fm = np.array([fixed[c] for c in chosen.index[is_fixed].to_numpy().tolist()], dtype=int)
        np.add.at(used, fm, pools[use_cols].to_numpy()[fp])
    cap = agg.services_left - used

    # A municipality is safe when even the heaviest cases of each class it has slots for keep
    # every capacity: its slots take any cases. Only the others need the MIP.
    heaviest = np.zeros((len(agg.classes), len(services)))
    np.maximum.at(heaviest, profiles["cls"].to_numpy(), prof_use)
    worst = np.zeros((agg.n_municipalities, len(services)))
    np.add.at(worst, slot_m, slot_n[:, None] * heaviest[slot_cls])
    unsafe_muni = (worst > cap + 1e-9).any(axis=1)
    unsafe = unsafe_muni[slot_m]
    # Each profile's cases in their order here (a stable sort: as pandas' groups, without an
    # index per group).
    by_profile = np.argsort(profile_of, kind="stable")
    bounds = np.searchsorted(profile_of[by_profile], np.arange(len(profiles) + 1))
    ids = np.asarray(cases_left, dtype=object)[by_profile].tolist()
    queues = {q: ids[bounds[q]:bounds[q + 1]] for q in range(len(profiles))}
    placed: dict[str, int] = {}
    broken = np.zeros(0, dtype=int)
    if unsafe.any():
        unsafe_slots = ClassSlots(profiles, prof_use, cap, slot_cls[unsafe], slot_m[unsafe], slot_n[unsafe])
        counts, kept = _distribute_greedy(unsafe_slots)
        if not kept:
            found = _distribute_unsafe(unsafe_slots)
            if found is not None:
                counts, broken = found
            else:  # the solver failed: the greedy's counts, and where they break a capacity
                broken = _overflowing(unsafe_slots, counts)
        for q, m in zip(*np.nonzero(counts)):
            for _ in range(counts[q, m]):
                placed[queues[int(q)].pop()] = int(m)
    # Safe slots: any remaining case of the class.
    by_class: dict[int, list[str]] = defaultdict(list)
    for q in range(len(profiles)):
        by_class[int(profiles["cls"].iat[q])] += queues[q]
    for c, m, n in zip(slot_cls[~unsafe], slot_m[~unsafe], slot_n[~unsafe]):
        for _ in range(int(n)):
            placed[by_class[int(c)].pop()] = int(m)
    return placed, broken


def _overflowing(slots: ClassSlots, counts: np.ndarray) -> np.ndarray:
    """Municipalities where ``counts`` (cases per profile and municipality) use more of a
    service than ``slots.cap`` leaves."""
    return np.flatnonzero((counts.T @ slots.use > slots.cap + 1e-9).any(axis=1))


def _distribute_greedy(slots: ClassSlots, start: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """Lightest cases first (the heavy ones are best left to municipalities where no capacity
    can bind), each to the slot of its class whose municipality has the most room left in the
    services the case uses; where a capacity still breaks, cases are swapped for lighter ones
    not yet assigned. Returns cases per profile and municipality, and whether every slot is
    filled and every capacity kept. ``start``: cases per profile and municipality placed
    already (within the slots and the profiles' cases)."""
    profiles, prof_use, cap, slot_cls, slot_m, slot_n = slots.unpacked()
    profile_cls = profiles["cls"].to_numpy()
    counts = np.zeros((len(profiles), len(cap)), dtype=int) if start is None else start.copy()
    left = cap - counts.T @ prof_use
    room = slot_n.astype(int) - (counts[:, slot_m] * (profile_cls[:, None] == slot_cls)).sum(axis=0)
    available = profiles["n"].to_numpy(int) - counts.sum(axis=1)
    order = np.argsort(prof_use.sum(axis=1), kind="stable")
    for q in order:
        slots = np.flatnonzero(slot_cls == profile_cls[q])
        uses = prof_use[q]
        while available[q] > 0:
            open_slots = slots[room[slots] > 0]
            if not len(open_slots):
                break  # the class's slots are full: its other profiles go to the safe slots
            # Best fit: the tightest municipality that still keeps every capacity, so that
            # roomy ones stay roomy for the heavier cases that come later.
            spare = (left[slot_m[open_slots]] - uses).min(axis=1) if len(uses) else np.zeros(len(open_slots))
            fitting = spare >= -1e-9
            if fitting.any():
                k = open_slots[int(np.argmin(np.where(fitting, spare, np.inf)))]
                # It stays the tightest that fits while it fits: place those cases at once.
                used = uses > 0
                fit = np.floor((left[slot_m[k], used] + 1e-9) / uses[used]).min() if used.any() else np.inf
                n = int(min(room[k], available[q], fit))
            else:
                k, n = open_slots[int(np.argmax(spare))], 1
            room[k] -= n
            left[slot_m[k]] -= n * uses
            counts[q, slot_m[k]] += n
            available[q] -= n
    # Where a capacity broke, swap cases for lighter ones of their class: cases not yet
    # assigned (they go to the safe slots, which take any case) or cases at another
    # municipality that has room for the heavier one.
    for m in np.flatnonzero((left < -1e-9).any(axis=1)):
        for q in np.flatnonzero(counts[:, m] > 0):
            while counts[q, m] > 0 and (left[m] < -1e-9).any():
                swap = _lighter_swap(q, int(m), counts, available, left, prof_use, profile_cls)
                if swap is None:
                    break
                q2, m2 = swap
                counts[q, m] -= 1
                counts[q2, m] += 1
                left[m] += prof_use[q] - prof_use[q2]
                if m2 is None:
                    available[q] += 1
                    available[q2] -= 1
                else:
                    counts[q2, m2] -= 1
                    counts[q, m2] += 1
                    left[m2] += prof_use[q2] - prof_use[q]
    return counts, not (room > 0).any() and not (left < -1e-9).any()


def _lighter_swap(
    q: int,
    m: int,
    counts: np.ndarray,
    available: np.ndarray,
    left: np.ndarray,
    prof_use: np.ndarray,
    profile_cls: np.ndarray,
) -> tuple[int, int | None] | None:
    """The case of q's class (profile, and municipality or None for an unassigned one) whose
    swap with a case of profile q at m most reduces m's overflow, keeping the other
    municipality within its capacities; None if no swap reduces it. ``counts``: cases per
    profile and municipality."""
    same = np.flatnonzero(profile_cls == profile_cls[q])
    # At another municipality, which must keep its capacities with the heavier case instead
    # (tested only where a case of the class is: national-30k, 0.21-0.23 ms a call, not 0.39-0.44).
    placed = counts[same] > 0
    placed[:, m] = False
    q2s, m2s = np.nonzero(placed)
    keeps = (left[m2s] + prof_use[same[q2s]] - prof_use[q] >= -1e-9).all(axis=1)
    q2s, m2s = q2s[keeps], m2s[keeps]
    options = [(int(q2), None) for q2 in same[available[same] > 0]]
    options += [(int(same[i]), int(m2)) for i, m2 in zip(q2s, m2s)]
    if not options:
        return None
    after = left[m] + prof_use[q] - prof_use[[q2 for q2, _ in options]]
    overflow = np.minimum(after, 0).sum(axis=1)
    best = int(np.argmax(overflow))
    if overflow[best] <= np.minimum(left[m], 0).sum() + 1e-9:
        return None
    return options[best]


def _distribution_program(slots: ClassSlots) -> tuple[LinearProgram, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The MIP of :func:`_distribute_unsafe`: a count per (profile, slot of its class) pair, then
    a slack per (service, municipality), priced. Returns it with its objective, each pair's
    profile and slot, and the municipalities of the slack columns."""
    import scipy.sparse as sp

    profiles, prof_use, cap, slot_cls, slot_m, slot_n = slots.unpacked()
    n_services = prof_use.shape[1]

    profile_cls = profiles["cls"].to_numpy()
    pairs = [(q, k) for k in range(len(slot_cls)) for q in np.flatnonzero(profile_cls == slot_cls[k])]
    pq = np.array([q for q, _ in pairs], dtype=int)
    pk = np.array([k for _, k in pairs], dtype=int)
    munis = np.unique(slot_m)
    n_pairs, n_slack = len(pairs), len(munis) * n_services
    rows, cols, vals, lo, hi = [], [], [], [], []
    r0 = 0
    # Each slot filled; no profile gives more cases than it has.
    rows.append(r0 + pk); cols.append(np.arange(n_pairs)); vals.append(np.ones(n_pairs))
    lo.append(slot_n); hi.append(slot_n); r0 += len(slot_cls)
    rows.append(r0 + pq); cols.append(np.arange(n_pairs)); vals.append(np.ones(n_pairs))
    lo.append(np.zeros(len(profiles))); hi.append(profiles["n"].to_numpy(float)); r0 += len(profiles)
    local = np.searchsorted(munis, slot_m[pk])
    for s in range(n_services):
        coef = prof_use[pq, s]
        nz = coef > 0
        rows.append(r0 + local[nz]); cols.append(np.flatnonzero(nz)); vals.append(coef[nz])
        rows.append(r0 + np.arange(len(munis))); cols.append(n_pairs + s * len(munis) + np.arange(len(munis)))
        vals.append(-np.ones(len(munis)))
        lo.append(np.full(len(munis), -np.inf)); hi.append(cap[munis, s]); r0 += len(munis)
    matrix = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(r0, n_pairs + n_slack))
    program = LinearProgram(
        lower=np.zeros(n_pairs + n_slack),
        upper=np.concatenate([slot_n[pk], np.full(n_slack, np.inf)]),
        integer=np.concatenate([np.ones(n_pairs, dtype=bool), np.zeros(n_slack, dtype=bool)]),
        matrix=matrix, row_lower=np.concatenate(lo), row_upper=np.concatenate(hi),
    )
    objective = np.concatenate([np.zeros(n_pairs), -np.ones(n_slack)])
    return program, objective, pq, pk, munis


def _distribute_unsafe(slots: ClassSlots) -> tuple[np.ndarray, np.ndarray] | None:
    """A small MIP: cases of each profile into the slots of municipalities that could break a
    service capacity, keeping capacities where possible (slack priced). Returns cases per
    profile and municipality, and the municipalities where a capacity could not be kept; None
    if the solver failed."""
    program, objective, pq, pk, munis = _distribution_program(slots)
    slot_m, n_pairs = slots.slot_m, len(pq)
    backend = MathOptBackend("highs")

    def dense(pair_counts: np.ndarray) -> np.ndarray:
        out = np.zeros((len(slots.profiles), len(slots.cap)), dtype=int)
        np.add.at(out, (pq, slot_m[pk]), pair_counts)
        return out

    def answer(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        slack = values[n_pairs:].reshape(slots.use.shape[1], len(munis))
        return dense(np.rint(values[:n_pairs]).astype(int)), munis[(slack > 1e-6).any(axis=0)]

    # A transportation with a few side rows: its LP optimum is mostly whole already. Dual
    # simplex, as its basic solutions are whole on the transportation part, and it is faster
    # here than the interior point method (the proposals' distributions, replayed: national-2k
    # 0.03 s against 0.12 s, national-10k 0.10 s against 0.31 s, national-30k 0.15 s against
    # 0.42 s).
    out = backend.solve(program, objective, time_limit=10.0, relative_gap=0.0, relax=True, simplex=True)
    if out.values is not None and not (np.abs(out.values[:n_pairs] - np.rint(out.values[:n_pairs])) > 1e-6).any():
        return answer(out.values)
    if out.values is not None:
        # Its counts rounded down and the room left filled by the greedy.
        counts, kept = _distribute_greedy(slots, start=dense(np.floor(out.values[:n_pairs] + 1e-6).astype(int)))
        if kept:
            return counts, np.zeros(0, dtype=int)
        if out.status == "optimal" and out.objective < -1e-6:
            # Even the LP breaks a capacity, so no distribution keeps them all: the caller
            # models the municipalities broken and places their cases again, whichever they
            # are. No search for the fewest (national-2k seed 12: 0.5 s for that).
            return counts, _overflowing(slots, counts)
        if out.objective > -1e-6:
            # Every capacity kept by the LP: where one still breaks, a search over those
            # municipalities and the roomiest others with slots of their classes, the rest
            # kept (national-5k in 1 s: 0.1 s, where the search below took 1.2 s).
            mended = _mend_distribution(backend, slots, program, objective, counts, pq, pk, munis)
            if mended.values is not None and mended.objective > -1e-6:
                return answer(mended.values)
        # Search only around the fractional pairs (their municipalities' and profiles' pairs
        # free, the rest keeping the LP's whole counts). Its counts are the answer even where
        # they break a capacity: the caller then moves cases where the capacities hold
        # (:func:`.rehouse.mend_services`). The whole MIP that searched on after it (10 of 112
        # national-1k and -2k rounds) took 0.07-0.63 s and left a capacity broken on all 10.
        lp_counts = out.values[:n_pairs]
        fractional = np.abs(lp_counts - np.rint(lp_counts)) > 1e-6
        free = np.isin(slot_m[pk], slot_m[pk[fractional]]) | np.isin(pq, pq[fractional])
        lower, upper = program.lower.copy(), program.upper.copy()
        lower[:n_pairs][~free] = upper[:n_pairs][~free] = np.rint(lp_counts[~free])
        boxed = backend.solve(program, objective, lower=lower, upper=upper, **EXACT)
        if boxed.values is not None:
            return answer(boxed.values)
    out = backend.solve(program, objective, **EXACT)
    return answer(out.values) if out.values is not None else None


def _mend_distribution(
    backend: MathOptBackend,
    slots: ClassSlots,
    program: LinearProgram,
    objective: np.ndarray,
    counts: np.ndarray,
    pq: np.ndarray,
    pk: np.ndarray,
    munis: np.ndarray,
) -> Outcome:
    """The distribution MIP started from ``counts`` (cases per profile and municipality, some
    capacities broken), with only the pairs of the broken municipalities' classes at those
    municipalities and at the roomiest others with their slots free (``program`` and the pairs
    as :func:`_distribution_program` gives them)."""
    profiles, prof_use, cap, slot_cls, slot_m, _ = slots.unpacked()
    profile_cls = profiles["cls"].to_numpy()
    left = cap - counts.T @ prof_use
    broken = np.flatnonzero((left < -1e-9).any(axis=1))
    classes = np.unique(slot_cls[np.isin(slot_m, broken)])
    over = (left[broken] < -1e-9).any(axis=0)  # the services some broken municipality is over in
    others = np.setdiff1d(slot_m[np.isin(slot_cls, classes)], broken)
    roomiest = others[np.argsort(-left[others][:, over].min(axis=1), kind="stable")[:MEND_ROOMIEST]]
    n_pairs = len(pq)
    free = np.isin(slot_m[pk], np.concatenate([broken, roomiest])) & np.isin(profile_cls[pq], classes)
    start = counts[pq, slot_m[pk]].astype(float)
    lower, upper = program.lower.copy(), program.upper.copy()
    lower[:n_pairs][~free] = upper[:n_pairs][~free] = start[~free]
    slack = np.maximum(-left[munis], 0).T.ravel()  # service-major, as the program's slack columns
    return backend.solve(program, objective, lower=lower, upper=upper, hint=np.concatenate([start, slack]), **EXACT)


def housing_flow(model: PlacementModel, demand: np.ndarray) -> np.ndarray:
    """A feasible housing flow ``x`` (per x column) for class demands, wasting few bedrooms."""
    agg = model.agg
    x = np.zeros(len(model.x_type))
    if not len(x):
        return x
    types = agg.dwelling_types
    cost = np.where(types["shared"].to_numpy(), 1, types["bedrooms"].to_numpy())[model.x_type]
    flow = min_cost_flow.SimpleMinCostFlow()
    n_class = len(demand)
    source, sink = n_class, n_class + 1
    type_node = n_class + 2 + model.x_type
    arcs = flow.add_arcs_with_capacity_and_unit_cost(
        model.x_class, type_node, np.full(len(x), 10**9, dtype=np.int64), cost.astype(np.int64))
    need = np.rint(demand).astype(np.int64)
    flow.add_arcs_with_capacity_and_unit_cost(np.full(n_class, source), np.arange(n_class), need,
                                              np.zeros(n_class, dtype=np.int64))
    used = np.unique(model.x_type)
    supply = types["supply"].to_numpy().astype(np.int64)[used]
    flow.add_arcs_with_capacity_and_unit_cost(n_class + 2 + used, np.full(len(used), sink), supply,
                                              np.zeros(len(used), dtype=np.int64))
    flow.set_node_supply(source, int(need.sum()))
    flow.set_node_supply(sink, -int(need.sum()))
    if flow.solve() != flow.OPTIMAL:
        return x  # not housable: leave the hint to the solver
    return flow.flows(arcs).astype(float)


def choose_dwellings(model: PlacementModel, placed: pd.DataFrame) -> pd.Series:
    """Dwelling of every placed case (case_id -> dwelling_id), wasting the fewest bedrooms.

    ``placed`` holds ``municipality`` numbers (free and pinned cases) and ``dwelling_id`` for
    pins that name one. The flow is always feasible: the model's housing rows guarantee it.
    """
    agg = model.agg
    problem = agg.problem
    if not problem.housing_modelled:
        return pd.Series(dtype=object)
    result = placed["dwelling_id"].where(placed["dwelling_id"] != "", None).dropna()
    todo = placed[placed["dwelling_id"] == ""]
    if todo.empty:
        return result
    req_index = pd.MultiIndex.from_frame(agg.requirements)
    cases = problem.cases.loc[todo.index]
    req = req_index.get_indexer(pd.MultiIndex.from_frame(cases[REQUIREMENT_COLUMNS]))
    demand = pd.DataFrame({"m": todo["municipality"].to_numpy(), "r": req}).value_counts()

    types = agg.dwelling_types
    compatible = agg.compatible
    t_muni = types["municipality"].to_numpy()
    waste = types["bedrooms"].to_numpy()[None, :] - agg.requirements["bedrooms"].to_numpy()[:, None]
    waste = np.where(types["shared"].to_numpy()[None, :], 0, waste)

    # Nodes: demands (m, r), then types, then source and sink; arcs added in bulk.
    d_muni = demand.index.get_level_values("m").to_numpy()
    d_req = demand.index.get_level_values("r").to_numpy()
    n_demand, n_types = len(demand), len(types)
    pairs = pd.DataFrame({"d": np.arange(n_demand), "m": d_muni}).merge(
        pd.DataFrame({"t": np.arange(n_types), "m": t_muni}), on="m")
    d_of, t_of = pairs["d"].to_numpy(), pairs["t"].to_numpy()
    keep = compatible[d_req[d_of], t_of]
    d_of, t_of = d_of[keep], t_of[keep]
    source, sink = n_demand + n_types, n_demand + n_types + 1
    need = demand.to_numpy().astype(np.int64)
    supply = types["supply"].to_numpy().astype(np.int64)
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(d_of, n_demand + t_of, need[d_of],
                                                     waste[d_req[d_of], t_of].astype(np.int64))
    flow.add_arcs_with_capacity_and_unit_cost(np.full(n_demand, source), np.arange(n_demand), need,
                                              np.zeros(n_demand, dtype=np.int64))
    has = np.flatnonzero(supply > 0)
    flow.add_arcs_with_capacity_and_unit_cost(n_demand + has, np.full(len(has), sink), supply[has],
                                              np.zeros(len(has), dtype=np.int64))
    total = int(need.sum())
    flow.set_node_supply(source, total)
    flow.set_node_supply(sink, -total)
    status = flow.solve()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"no housing for the chosen cases (min-cost flow status {status})")

    # The cases of each demand node, by id, take the types its flow goes to, in arc order.
    used = flow.flows(arcs)
    routed_node = np.repeat(d_of[used > 0], used[used > 0])
    routed = np.repeat(t_of[used > 0], used[used > 0])[np.argsort(routed_node, kind="stable")]
    node = pd.Series(np.arange(n_demand), index=demand.index)
    todo_node = node.reindex(pd.MultiIndex.from_arrays([todo["municipality"].to_numpy(), req])).to_numpy()
    case_type = np.empty(len(todo), dtype=int)
    case_type[np.lexsort((todo.index.to_numpy(), todo_node))] = routed

    # Concrete dwellings (or shared places) of each type, pinned ones excluded: a type's cases,
    # in the order of (municipality, requirement, case id), take its places in id order.
    type_of = dwelling_type_of(problem).sort_index()
    free = problem.free_dwellings.loc[type_of.index]
    pinned_use = problem.pins.loc[problem.pins["dwelling_id"] != "", "dwelling_id"].value_counts()
    n_places = np.where(free["shared"], free["max_occupants"], 1) - pinned_use.reindex(free.index).fillna(0).to_numpy()
    n_places = np.maximum(n_places, 0).astype(int)
    ids = np.repeat(type_of.index.to_numpy(), n_places)
    types_rep = np.repeat(type_of.to_numpy(), n_places)
    # Group the places by type in one sort (a mask per type is quadratic at national scale).
    by_type = np.argsort(types_rep, kind="stable")
    first_place = np.searchsorted(types_rep[by_type], np.arange(n_types))
    order = np.lexsort((todo.index.to_numpy(), req, todo["municipality"].to_numpy()))
    rank = pd.Series(case_type[order]).groupby(case_type[order]).cumcount().to_numpy()
    dwellings = ids[by_type[first_place[case_type[order]] + rank]]
    return pd.concat([result, pd.Series(dwellings, index=todo.index[order], dtype=object)])

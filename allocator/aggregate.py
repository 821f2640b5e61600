"""Exact aggregation of a round into pools of interchangeable cases and types of dwellings.

Two cases are interchangeable for every hard rule when they have the same size, minors,
service use, bedroom need, step-free need and single-adult status, the same supplied scores and
the same exclusions. Such cases form a *pool*; the model decides how many of a pool go to each
municipality, never which ones. Among interchangeable cases the most urgent are always the best
to place, so urgency enters as a concave function of the pool's count, and ties enter as a count
of tied cases placed at their tie municipality. Dwellings of one municipality with the same
bedrooms, occupancy, step-free access and sharing are a *dwelling type*; the concrete dwelling is
chosen after the solve. Nothing here loses optimality: see ``docs/model.md``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from .problem import Problem, positions

#: Columns that make two cases interchangeable for the constraints (plus service use).
CLASS_COLUMNS = ["size", "minors", "bedrooms", "needs_step_free", "single_adult"]
REQUIREMENT_COLUMNS = ["bedrooms", "size", "needs_step_free", "single_adult"]


@dataclass(frozen=True, eq=False)
class Aggregation:
    """Pools, requirement types and dwelling types of one round, as numpy arrays.

    Municipalities are numbered ``0..M-1`` in the order of ``municipality_ids``.
    """

    problem: Problem
    municipality_ids: np.ndarray
    #: Cases not pinned, with ``pool``, ``urgency``, ``tie`` (municipality number or -1).
    free_cases: pd.DataFrame
    #: One row per pool: class columns, ``use_<service>``, ``requirement``, ``score_row``,
    #: ``exclusion_set`` and ``count``.
    pools: pd.DataFrame
    #: Score rows (distinct score vectors over municipalities).
    score_rows: np.ndarray
    #: Excluded municipality numbers per exclusion set.
    exclusion_sets: list[np.ndarray]
    #: Remaining persons, minors and service capacity after pins (M; M; M x S).
    persons_left: np.ndarray
    minors_left: np.ndarray
    services_left: np.ndarray
    #: Requirement types (bedrooms, size, needs_step_free, single_adult).
    requirements: pd.DataFrame
    #: Dwelling types: ``municipality`` number, bedrooms, max_occupants, step_free, shared,
    #: ``supply`` (dwellings, or places in shared flats).
    dwelling_types: pd.DataFrame
    #: Housing demand of pinned cases without a pinned dwelling: (municipality, requirement) -> n.
    pinned_demand: dict[tuple[int, int], int]

    @property
    def n_municipalities(self) -> int:
        return len(self.municipality_ids)

    @cached_property
    def compatible(self) -> np.ndarray:
        """Requirement x dwelling type: may a case of this requirement live there?"""
        if self.dwelling_types.empty:
            return np.zeros((len(self.requirements), 0), dtype=bool)
        req, dw = self.requirements, self.dwelling_types
        step_ok = dw["step_free"].to_numpy()[None, :] | ~req["needs_step_free"].to_numpy()[:, None]
        shared = dw["shared"].to_numpy()[None, :]
        private_fit = (dw["bedrooms"].to_numpy()[None, :] >= req["bedrooms"].to_numpy()[:, None]) & (
            dw["max_occupants"].to_numpy()[None, :] >= req["size"].to_numpy()[:, None]
        )
        single = req["single_adult"].to_numpy()[:, None]
        return step_ok & np.where(shared, single, private_fit)

    @cached_property
    def compatible_supply(self) -> np.ndarray:
        """Requirement x municipality: dwellings (or shared places) that could take it."""
        supply = np.zeros((len(self.requirements), self.n_municipalities))
        if self.dwelling_types.empty:
            return supply
        owner = self.dwelling_types["municipality"].to_numpy()
        weights = self.compatible * self.dwelling_types["supply"].to_numpy()[None, :]
        for r in range(len(self.requirements)):
            supply[r] = np.bincount(owner, weights=weights[r], minlength=self.n_municipalities)
        return supply

    @cached_property
    def classes(self) -> pd.DataFrame:
        """Pools grouped by everything but service use: one row per class, with ``count``."""
        columns = CLASS_COLUMNS + ["score_row", "exclusion_set", "requirement"]
        out = self.pools.groupby("cls")[columns].first()
        out["count"] = self.pools.groupby("cls")["count"].sum()
        return out.reset_index(drop=True)

    def pair_bounds(self, units: pd.DataFrame | None = None, services: bool = True) -> np.ndarray:
        """Pools (or other units with the pool columns) x municipalities: most cases of the unit
        the municipality could take (0 = never).

        Every hard rule that concerns one case in one municipality is applied here (services
        only when ``services``), so the model never holds a variable for an impossible pair.
        """
        pools = self.pools if units is None else units
        count = pools["count"].to_numpy(dtype=float)[:, None]
        bound = np.broadcast_to(count, (len(pools), self.n_municipalities)).copy()

        def cap(need: np.ndarray, left: np.ndarray) -> None:
            need = need.astype(float)[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                most = np.where(need > 0, np.floor(left[None, :] / np.where(need > 0, need, 1)), np.inf)
            np.minimum(bound, most, out=bound)

        cap(pools["size"].to_numpy(), self.persons_left)
        cap(pools["minors"].to_numpy(), self.minors_left)
        for s, service in enumerate(self.problem.services if services else ()):
            cap(pools[f"use_{service}"].to_numpy(), self.services_left[:, s])
        if self.problem.housing_modelled:
            np.minimum(bound, self.compatible_supply[pools["requirement"].to_numpy()], out=bound)
        for p, set_id in enumerate(pools["exclusion_set"].to_numpy()):
            if set_id >= 0:
                bound[p, self.exclusion_sets[set_id]] = 0
        return np.maximum(bound, 0)


def _municipality_numbers(ids: pd.Series, index: pd.Index) -> np.ndarray:
    numbers = index.get_indexer(ids.where(ids != "", None))
    return numbers


def _score_rows(problem: Problem, case_ids: pd.Index, munis: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Distinct score vectors and the row of each case (-1 without scores)."""
    row_of_case = np.full(len(case_ids), -1)
    if not problem.has_scores:
        return np.zeros((0, len(munis))), row_of_case
    at = problem.cases.index.get_indexer(case_ids)
    has = np.zeros(len(problem.cases), dtype=bool)
    has[positions(problem.cases.index, problem.scores["case_id"])] = True
    # Sorted positions of the cases with scores (np.unique without sorting every score row).
    scored = np.flatnonzero(has[at])
    rows, inverse = unique_rows(problem.score_matrix[at[scored]])
    row_of_case[scored] = inverse
    return rows, row_of_case


#: Odd multipliers for hashing rows of floats (fixed: the result never depends on them).
_ROW_MIX = np.random.default_rng(20240611).integers(1, 2**63, size=1024, dtype=np.uint64) | np.uint64(1)


def unique_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(matrix, axis=0, return_inverse=True)`` for a float matrix without NaN.

    ``np.unique`` sorts whole rows (seconds for thousands of cases with hundreds of scores
    each); here rows are grouped by a hash, the grouping is checked exactly, and only the
    distinct rows are sorted (lexicographically, as ``np.unique`` orders them).

    Returns
    -------
    rows, inverse
        Distinct rows in lexicographic order; the row number of each input row.
    """
    if matrix.ndim != 2 or matrix.shape[1] == 0 or len(matrix) == 0:
        rows, inverse = np.unique(matrix, axis=0, return_inverse=True)
        return rows, inverse.reshape(-1)
    block = np.ascontiguousarray(matrix, dtype=float) + 0.0  # -0.0 == 0.0: same bits too
    bits = block.view(np.uint64)
    mix = np.resize(_ROW_MIX, bits.shape[1])
    with np.errstate(over="ignore"):
        hashes = (bits * mix).sum(axis=1, dtype=np.uint64)
    group, _ = pd.factorize(hashes)
    _, first = np.unique(group, return_index=True)
    if not np.array_equal(bits, bits[first[group]]):
        # Two different rows share a hash: sort whole rows after all.
        rows, inverse = np.unique(matrix, axis=0, return_inverse=True)
        return rows, inverse.reshape(-1)
    distinct = block[first]
    order = np.lexsort(distinct.T[::-1])  # first column most significant
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    return distinct[order], rank[group]


def _exclusion_sets(problem: Problem, case_ids: pd.Index, munis: pd.Index) -> tuple[list[np.ndarray], np.ndarray]:
    set_of_case = np.full(len(case_ids), -1)
    if problem.exclusions.empty:
        return [], set_of_case
    ex = problem.exclusions
    ci = case_ids.get_indexer(ex["case_id"])
    keep = ci >= 0
    frame = pd.DataFrame({"case": ci[keep], "m": munis.get_indexer(ex["municipality_id"][keep])})
    per_case = frame.groupby("case")["m"].apply(lambda s: tuple(sorted(set(s))))
    sets: dict[tuple[int, ...], int] = {}
    for case, key in per_case.items():
        set_of_case[case] = sets.setdefault(key, len(sets))
    return [np.array(k, dtype=int) for k in sets], set_of_case


#: Each problem's dwelling types, taken once: a solve needs them to aggregate, to choose the
#: concrete dwellings and to explain the plan (national-30k: 0.03 s each time).
_TYPES: weakref.WeakKeyDictionary[Problem, tuple[pd.DataFrame, pd.Series]] = weakref.WeakKeyDictionary()


def _dwelling_types(problem: Problem) -> tuple[pd.DataFrame, pd.Series]:
    """Dwelling types with supply after pinned dwellings; and the type of every free dwelling."""
    known = _TYPES.get(problem)
    if known is None:
        known = _TYPES[problem] = _types_of_dwellings(problem)
    return known


def _types_of_dwellings(problem: Problem) -> tuple[pd.DataFrame, pd.Series]:
    columns = ["municipality", "bedrooms", "max_occupants", "step_free", "shared"]
    munis = problem.municipalities.index
    free = problem.free_dwellings
    if free is None or free.empty:
        return pd.DataFrame(columns=columns + ["supply"]), pd.Series(dtype=int)
    frame = free[["bedrooms", "max_occupants", "step_free", "shared"]].copy()
    frame.insert(0, "municipality", munis.get_indexer(free["municipality_id"]))
    places = np.where(frame["shared"], frame["max_occupants"], 1).astype(int)
    pinned = problem.pins.loc[problem.pins["dwelling_id"] != "", "dwelling_id"]
    used = pinned.value_counts().reindex(frame.index).fillna(0).to_numpy(dtype=int)
    frame["supply"] = places - used
    types = frame.groupby(columns, sort=True)["supply"].sum().reset_index()
    type_of = frame.reset_index().merge(types[columns].reset_index(), on=columns)
    return types, type_of.set_index("dwelling_id")["index"]


def aggregate(problem: Problem, scores: bool = True) -> Aggregation:
    """Group the round's cases into pools and its dwellings into types.

    ``scores=False`` ignores supplied scores: cases that differ only in their scores share a
    pool, which is exact for any objective without the scores term (fewer, larger pools).
    """
    munis = problem.municipalities.index
    cases = problem.cases
    services = list(problem.services)
    use_columns = [f"use_{s}" for s in services]

    # Pins consume capacity up front.
    pinned = cases.loc[problem.pins["case_id"]]
    pin_m = munis.get_indexer(problem.pins["municipality_id"])
    m_count = len(munis)
    persons_left = problem.municipalities["resolution_persons"].to_numpy(dtype=float) - np.bincount(
        pin_m, weights=pinned["size"].to_numpy(), minlength=m_count
    )
    minors_left = problem.municipalities["resolution_minors"].to_numpy(dtype=float) - np.bincount(
        pin_m, weights=pinned["minors"].to_numpy(), minlength=m_count
    )
    services_left = np.zeros((m_count, len(services)))
    for s, service in enumerate(services):
        services_left[:, s] = problem.municipalities[f"capacity_{service}"].to_numpy(dtype=float) - np.bincount(
            pin_m, weights=pinned[f"use_{service}"].to_numpy(), minlength=m_count
        )

    free = cases.drop(index=problem.pins["case_id"])
    if scores:
        score_rows, score_row = _score_rows(problem, free.index, munis)
    else:
        score_rows, score_row = np.zeros((0, m_count)), np.full(len(free), -1)
    exclusion_sets, exclusion_set = _exclusion_sets(problem, free.index, munis)

    requirement_keys = pd.concat([free, pinned])[REQUIREMENT_COLUMNS].drop_duplicates()
    requirements = requirement_keys.sort_values(REQUIREMENT_COLUMNS).reset_index(drop=True)
    requirement_index = pd.MultiIndex.from_frame(requirements)

    keyed = free[CLASS_COLUMNS + use_columns].copy()
    keyed["score_row"] = score_row
    keyed["exclusion_set"] = exclusion_set
    pool_columns = CLASS_COLUMNS + use_columns + ["score_row", "exclusion_set"]
    pool_of_case = keyed.groupby(pool_columns, sort=True).ngroup().to_numpy()
    pools = keyed.assign(pool=pool_of_case).groupby("pool")[pool_columns].first()
    pools["count"] = np.bincount(pool_of_case, minlength=len(pools))
    pools["requirement"] = requirement_index.get_indexer(pd.MultiIndex.from_frame(pools[REQUIREMENT_COLUMNS]))
    # Pools that differ only in service use form a class: where no service can bind, the model
    # counts classes, not pools.
    pools["cls"] = pools.groupby(CLASS_COLUMNS + ["score_row", "exclusion_set"], sort=True).ngroup()

    free_cases = pd.DataFrame(
        {
            "pool": pool_of_case,
            "urgency": free["urgency"].to_numpy(),
            "tie": _municipality_numbers(free["tie_municipality_id"], munis),
        },
        index=free.index,
    )

    dwelling_types, _ = _dwelling_types(problem)
    pinned_demand: dict[tuple[int, int], int] = {}
    if problem.housing_modelled:
        unhoused = problem.pins["dwelling_id"].to_numpy() == ""
        req = requirement_index.get_indexer(pd.MultiIndex.from_frame(pinned[REQUIREMENT_COLUMNS]))
        for m, r in zip(pin_m[unhoused], req[unhoused]):
            pinned_demand[(int(m), int(r))] = pinned_demand.get((int(m), int(r)), 0) + 1

    return Aggregation(
        problem=problem,
        municipality_ids=munis.to_numpy(),
        free_cases=free_cases,
        pools=pools.reset_index(drop=True),
        score_rows=score_rows,
        exclusion_sets=exclusion_sets,
        persons_left=persons_left,
        minors_left=minors_left,
        services_left=services_left,
        requirements=requirements,
        dwelling_types=dwelling_types,
        pinned_demand=pinned_demand,
    )


def dwelling_type_of(problem: Problem) -> pd.Series:
    """Dwelling id -> dwelling type number, for choosing concrete dwellings after a solve."""
    return _dwelling_types(problem)[1]

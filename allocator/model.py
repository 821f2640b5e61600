"""The placement model over pools and dwelling types, built in bulk as one sparse matrix.

Variables (all non-negative):

``y[p, m]``   integer  cases of pool p placed in municipality m (only possible pairs)
``w[p, l]``   real     untied cases of pool p placed from urgency level l (highest first)
``s[k]``      binary   tied case k placed (anywhere)
``a[p, m]``   integer  cases of pool p placed at m that are tied to m
``x[m, r, t]`` real    cases of requirement r housed in dwelling type t of m
``z[m, q]``   real     persons placed in the q-th quarter of m's resolution (spread)

The housing block is a transportation problem with integer data, so for integer ``y`` an
integer ``x`` of the same cost always exists: ``x`` may stay continuous.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .aggregate import Aggregation
from .errors import InputIssue, ProblemValidationError

SPREAD_SEGMENTS = 4
INF = np.inf


@dataclass
class _Rows:
    """Collects COO triplets and row bounds."""

    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    vals: list[np.ndarray] = field(default_factory=list)
    lower: list[np.ndarray] = field(default_factory=list)
    upper: list[np.ndarray] = field(default_factory=list)
    groups: list[np.ndarray] = field(default_factory=list)
    count: int = 0

    def add_block(self, n: int, lower: np.ndarray | float, upper: np.ndarray | float, group: str) -> int:
        """Reserve ``n`` rows of a named group; returns the first row number."""
        first = self.count
        self.lower.append(np.broadcast_to(np.asarray(lower, dtype=float), (n,)).copy())
        self.upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (n,)).copy())
        self.groups.append(np.full(n, group, dtype=object))
        self.count += n
        return first

    def terms(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray | float) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        self.rows.append(rows)
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.broadcast_to(np.asarray(vals, dtype=float), rows.shape).copy())


@dataclass(frozen=True, eq=False)
class LinearProgram:
    """Bounds, integrality and rows of a (mixed-integer) linear program, as arrays."""

    lower: np.ndarray
    upper: np.ndarray
    integer: np.ndarray
    matrix: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray

    @property
    def n_vars(self) -> int:
        return len(self.lower)


#: Row groups and variable blocks each objective term needs besides the core rules.
TERM_NEEDS = {
    "urgency": ((), ()),
    "ties": (("tie_link", "tie_slot", "tie_split", "tie_pool"), ("a", "a_pool")),
    "scores": ((), ()),
    "housing_fit": (("flow_demand", "flow_supply"), ("x",)),
    "spread": (("spread",), ("z",)),
}
CORE_GROUPS = ("balance", "capacity", "housing_class", "hall")
CORE_BLOCKS = ("y", "w", "s", "d")


@dataclass(frozen=True, eq=False)
class PlacementModel(LinearProgram):
    """A built model: bounds, integrality, matrix, and how to read each variable block.

    Rows come in named groups; :meth:`program` cuts out the rows and blocks a set of objective
    terms needs, so a level that does not optimise ties or housing fit never carries them.
"""

    agg: Aggregation
    blocks: dict[str, slice]
    row_group: np.ndarray
    y_class: np.ndarray  # housing class of each y column (-1 without housing)
    pinned_class: np.ndarray  # pinned cases without a pinned dwelling, per housing class
    x_class: np.ndarray
    #: Hall's conditions: per entry its housing class and row; per row its supply.
    hall_class: np.ndarray
    hall_row: np.ndarray
    hall_supply: np.ndarray
    #: What y counts: pools (at municipalities where services are modelled) and classes
    #: (elsewhere). Columns size, minors, requirement, score_row, exclusion_set, cls, pool
    #: (-1 for a class), use_<service>.
    units: pd.DataFrame
    #: Municipalities whose service capacities are rows of the model (pools counted there).
    fine: np.ndarray
    y_unit: np.ndarray
    y_muni: np.ndarray
    w_pool: np.ndarray
    w_urgency: np.ndarray
    s_case: np.ndarray  # position in agg.free_cases
    a_unit: np.ndarray
    a_muni: np.ndarray
    #: Ties counted at municipalities without service rows, split by the pool they come from.
    a_pool_pool: np.ndarray
    a_pool_muni: np.ndarray
    x_muni: np.ndarray
    x_type: np.ndarray
    z_muni: np.ndarray
    z_segment: np.ndarray

    @property
    def n_integer(self) -> int:
        return int(self.integer.sum())

    def sizes(self) -> dict[str, int]:
        out = {name: blk.stop - blk.start for name, blk in self.blocks.items()}
        out.update(variables=self.n_vars, integer=self.n_integer, constraints=self.matrix.shape[0],
                   nonzeros=int(self.matrix.nnz))
        return out

    def objective_terms(self) -> dict[str, np.ndarray]:
        """Coefficient vector of each objective term (all maximised)."""
        return {name: fn(self) for name, fn in TERMS.items()}

    def column_at(self) -> np.ndarray:
        """Units x municipalities: the ``y`` column of each pair, -1 where the pair is impossible."""
        column_at = np.full((len(self.units), self.agg.n_municipalities), -1, dtype=int)
        column_at[self.y_unit, self.y_muni] = np.arange(len(self.y_unit))
        return column_at

    def class_demand(self, y: np.ndarray) -> np.ndarray:
        """Demand of each housing class for counts ``y`` (plus the pinned cases)."""
        n_class = self.blocks["d"].stop - self.blocks["d"].start
        has = self.y_class >= 0
        return np.bincount(self.y_class[has], weights=y[has], minlength=n_class) + self.pinned_class

    def rounding_box(self, y: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Bounds on ``y`` around a fractional ``y``: each pair keeps at least its rounded-down
        count less one (none if the LP does not use it) and may add only what the capacity left
        after rounding down allows.

        A MIP in this box is small (most pairs are fixed) and its plans are complete plans of
        the full model. ``keep`` (a previous plan's counts) stays inside the box.
        """
        agg = self.agg
        pools = self.units
        floor = np.floor(np.maximum(y, 0.0) + 1e-9)  # an LP's zero may be -1e-8
        n = agg.n_municipalities
        extra = np.full(len(y), np.inf)

        def room(need: np.ndarray, left: np.ndarray, where: np.ndarray | None = None) -> None:
            need = need[self.y_unit].astype(float)
            if where is not None:
                need = need * where
            rest = left - np.bincount(self.y_muni, weights=floor * need, minlength=n)
            with np.errstate(divide="ignore", invalid="ignore"):
                np.minimum(extra, np.where(need > 0, np.floor(rest[self.y_muni] / np.where(need > 0, need, 1)), np.inf),
                           out=extra)

        room(pools["size"].to_numpy(), agg.persons_left)
        room(pools["minors"].to_numpy(), agg.minors_left)
        for s, service in enumerate(agg.problem.services):
            room(pools[f"use_{service}"].to_numpy(), agg.services_left[:, s], self.fine[self.y_muni])
        upper_y = self.upper[self.blocks["y"]]
        # Pairs the LP uses may also give up one case: room for the swaps whole cases need
        # (measured: a far better plan at little cost).
        lower = np.where(y > 1e-9, np.maximum(floor - 1, 0), floor)
        upper = np.minimum(upper_y, floor + np.maximum(extra, 0))
        if keep is not None:
            lower = np.minimum(lower, keep)
            upper = np.maximum(upper, keep)
        return lower, upper

    def columns_for(self, terms: list[str]) -> np.ndarray:
        """Indices of the variables a program over these terms needs."""
        blocks = list(CORE_BLOCKS) + [b for t in terms for b in TERM_NEEDS[t][1]]
        return np.concatenate([np.arange(self.blocks[b].start, self.blocks[b].stop) for b in blocks])

    def program(self, terms: list[str]) -> tuple[LinearProgram, np.ndarray]:
        """The hard rules plus what ``terms`` need; returns it and its columns in this model."""
        groups = set(CORE_GROUPS) | {g for t in terms for g in TERM_NEEDS[t][0]}
        if "flow_demand" in groups:
            groups.discard("hall")  # the flow rows imply Hall's conditions
        columns = np.sort(self.columns_for(terms))
        rows = np.flatnonzero(np.isin(self.row_group, list(groups)))
        matrix = self.matrix[rows][:, columns].tocsr()
        return LinearProgram(self.lower[columns], self.upper[columns], self.integer[columns], matrix,
                             self.row_lower[rows], self.row_upper[rows]), columns


# -- objective terms: one small function each, all maximised ----------------------------------

def urgency_term(model: PlacementModel) -> np.ndarray:
    """Sum of the urgency of the cases placed (members' base plus wait against target)."""
    c = np.zeros(model.n_vars)
    c[model.blocks["w"]] = model.w_urgency
    free = model.agg.free_cases
    c[model.blocks["s"]] = free["urgency"].to_numpy()[model.s_case]
    return c


def ties_term(model: PlacementModel) -> np.ndarray:
    """Cases placed in the municipality they have a tie to."""
    c = np.zeros(model.n_vars)
    c[model.blocks["a"]] = 1.0
    return c


def scores_term(model: PlacementModel) -> np.ndarray:
    """Sum of supplied scores (e.g. predicted employment) of the placed case-municipality pairs."""
    c = np.zeros(model.n_vars)
    rows = model.units["score_row"].to_numpy()[model.y_unit]
    has = rows >= 0
    values = np.zeros(len(rows))
    values[has] = model.agg.score_rows[rows[has], model.y_muni[has]]
    c[model.blocks["y"]] = values
    return c


def housing_fit_term(model: PlacementModel) -> np.ndarray:
    """Minus the bedrooms left empty in the dwellings used (shared flats waste none).

    Waste = bedrooms of the dwellings used - bedrooms the placed cases need: the first part sits
    on ``x`` (a shared place counts 1, the one bedroom its single adult needs), the second on ``y``.
    """
    c = np.zeros(model.n_vars)
    agg = model.agg
    if len(model.x_type):
        types = agg.dwelling_types
        used = np.where(types["shared"].to_numpy(), 1, types["bedrooms"].to_numpy())[model.x_type]
        c[model.blocks["x"]] = -used
        need = agg.requirements["bedrooms"].to_numpy()[model.units["requirement"].to_numpy()[model.y_unit]]
        c[model.blocks["y"]] = need
    return c


def spread_cost(resolution: float | np.ndarray, persons: float | np.ndarray) -> float | np.ndarray:
    """Spread penalty of ``persons`` placed against ``resolution`` (quarters cost 0, 1/4, 2/4, 3/4)."""
    resolution = np.asarray(resolution, dtype=float)
    persons = np.asarray(persons, dtype=float)
    seg = resolution / SPREAD_SEGMENTS
    cost = np.zeros(np.broadcast(resolution, persons).shape)
    for q in range(SPREAD_SEGMENTS):
        start = q * seg
        amount = persons - start
        if q < SPREAD_SEGMENTS - 1:
            amount = np.minimum(amount, seg)
        cost = cost + np.clip(amount, 0.0, None) * q / SPREAD_SEGMENTS
    return cost if cost.ndim else float(cost)


def spread_term(model: PlacementModel) -> np.ndarray:
    """Minus a penalty that grows with how full each municipality's resolution gets.

    A person placed in the q-th quarter of a resolution costs q/4: filling every municipality
    to the same share is cheapest.
    """
    c = np.zeros(model.n_vars)
    c[model.blocks["z"]] = -model.z_segment / SPREAD_SEGMENTS
    return c


TERMS = {
    "urgency": urgency_term,
    "ties": ties_term,
    "scores": scores_term,
    "housing_fit": housing_fit_term,
    "spread": spread_term,
}


# -- building -----------------------------------------------------------------------------------

def _units(agg: Aggregation, fine: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """The y units and their possible pairs: pools at fine municipalities, classes elsewhere."""
    pools = agg.pools
    classes = agg.classes
    services = list(agg.problem.services)
    pool_units = pools.assign(pool=np.arange(len(pools)))
    class_units = classes.assign(cls=np.arange(len(classes)), pool=-1,
                                 **{f"use_{s}": 0 for s in services})
    columns = ["size", "minors", "requirement", "score_row", "exclusion_set", "needs_step_free",
               "bedrooms", "single_adult", "cls", "pool", "count"] + [f"use_{s}" for s in services]
    units = pd.concat([pool_units[columns], class_units[columns]], ignore_index=True)
    bound = np.zeros((len(units), agg.n_municipalities))
    if fine.any():
        bound[: len(pools)] = agg.pair_bounds() * fine[None, :]
    if (~fine).any():
        bound[len(pools):] = agg.pair_bounds(class_units, services=False) * ~fine[None, :]
    y_unit, y_muni = np.nonzero(bound > 0)
    return units, y_unit, y_muni, bound


def build_model(agg: Aggregation, fine: np.ndarray | None = None) -> PlacementModel:
    """Build the model in bulk (numpy and one sparse matrix); no impossible pair gets a variable.

    ``fine`` marks the municipalities whose service capacities are modelled (default: all);
    elsewhere cases are counted per class, and a plan must be checked against services there.
    """
    problem = agg.problem
    pools = agg.pools
    n_muni = agg.n_municipalities
    if fine is None or not problem.services:
        fine = np.ones(n_muni, dtype=bool)
    units, y_unit, y_muni, bound = _units(agg, fine)
    y_ub = bound[y_unit, y_muni]
    unit_cls = units["cls"].to_numpy()
    n_pools = len(pools)

    # w: urgency levels of the untied cases of each pool.
    free = agg.free_cases
    untied = free[free["tie"] < 0]
    levels = (
        untied.assign(u=untied["urgency"].round(9))
        .groupby(["pool", "u"], sort=True)
        .size()
        .reset_index(name="n")
    )
    w_pool = levels["pool"].to_numpy()
    w_urgency = levels["u"].to_numpy(dtype=float)
    w_ub = levels["n"].to_numpy(dtype=float)

    # s: tied cases; a: (unit, tie municipality) pairs that are possible, where the unit is the
    # pool at a fine municipality and the class elsewhere.
    tied_pos = np.flatnonzero(free["tie"].to_numpy() >= 0)
    s_case = tied_pos
    tied_pool = free["pool"].to_numpy()[tied_pos]
    tied_muni = free["tie"].to_numpy()[tied_pos]
    pool_cls = pools["cls"].to_numpy()
    tied_unit = np.where(fine[tied_muni], tied_pool, n_pools + pool_cls[tied_pool]) if len(tied_pos) else tied_pool
    # A tie counts only where the case itself could go (its services included, which class
    # slots do not check): else the counts would honour a tie no plan can.
    reachable = np.ones(len(tied_pos), dtype=bool)
    if len(tied_pos):
        used_pools, at = np.unique(tied_pool, return_inverse=True)
        reachable = agg.pair_bounds(pools.iloc[used_pools])[at, tied_muni] > 0
    tie_pairs = pd.DataFrame({"unit": tied_unit[reachable], "m": tied_muni[reachable]}).value_counts().sort_index()
    a_unit = tie_pairs.index.get_level_values("unit").to_numpy().astype(int)
    a_muni = tie_pairs.index.get_level_values("m").to_numpy().astype(int)
    possible = bound[a_unit, a_muni] > 0
    a_unit, a_muni = a_unit[possible], a_muni[possible]
    a_ub = np.minimum(tie_pairs.to_numpy()[possible], bound[a_unit, a_muni]).astype(float)
    # A tie counted for a class must come from a case in the class's slots, not one its pool
    # needs at a municipality with service rows: a_pool[p, m] splits a class's ties at m by pool.
    a_key = pd.MultiIndex.from_arrays([a_unit, a_muni])
    in_a = a_key.get_indexer(pd.MultiIndex.from_arrays([tied_unit, tied_muni])) >= 0 if len(tied_pos) \
        else np.zeros(0, dtype=bool)
    coarse_tie = reachable & in_a & (tied_unit >= n_pools)
    split = pd.DataFrame({"pool": tied_pool[coarse_tie], "m": tied_muni[coarse_tie]}).value_counts().sort_index()
    a_pool_pool = split.index.get_level_values("pool").to_numpy().astype(int)
    a_pool_muni = split.index.get_level_values("m").to_numpy().astype(int)
    a_pool_ub = split.to_numpy().astype(float)

    # x: (housing class, dwelling type). Within a municipality, requirements that fit exactly
    # the same dwelling types are one housing class: fewer rows and columns, same plans.
    req_of_unit = units["requirement"].to_numpy()
    n_req = len(agg.requirements)
    if problem.housing_modelled:
        demand_possible = np.zeros((n_req, n_muni), dtype=bool)
        demand_possible[req_of_unit[y_unit], y_muni] = True
        for (m, r) in agg.pinned_demand:
            demand_possible[r, m] = True
        class_of, x_class, x_type, x_muni, hall_class, hall_row, hall_supply = _housing(agg, demand_possible)
    else:
        class_of = np.full((n_req, n_muni), -1)
        x_class = x_type = x_muni = hall_class = hall_row = np.zeros(0, dtype=int)
        hall_supply = np.zeros(0)

    # z: spread segments of municipalities that can receive anyone.
    resolution = problem.municipalities["resolution_persons"].to_numpy(dtype=float)
    pinned_persons = resolution - agg.persons_left
    active = np.unique(y_muni)
    z_muni = np.repeat(active, SPREAD_SEGMENTS)
    z_segment = np.tile(np.arange(SPREAD_SEGMENTS), len(active))
    seg_len = resolution[z_muni] / SPREAD_SEGMENTS
    # Pinned persons fill the first segments.
    seg_start = z_segment * seg_len
    z_ub = np.clip(seg_start + seg_len - np.maximum(pinned_persons[z_muni], seg_start), 0, None)
    z_ub[z_segment == SPREAD_SEGMENTS - 1] = INF  # rounding slack lands in the top segment

    n_class = int(class_of.max()) + 1 if class_of.size else 0
    sizes = {"y": len(y_unit), "w": len(w_pool), "s": len(s_case), "a": len(a_unit), "a_pool": len(a_pool_pool),
             "d": n_class, "x": len(x_class), "z": len(z_muni)}
    blocks, start = {}, 0
    for name, n in sizes.items():
        blocks[name] = slice(start, start + n)
        start += n
    n_vars = start
    lower = np.zeros(n_vars)
    x_ub = agg.dwelling_types["supply"].to_numpy(dtype=float)[x_type] if len(x_type) else np.zeros(0)
    upper = np.concatenate([y_ub, w_ub, np.ones(len(s_case)), a_ub, a_pool_ub, np.full(n_class, INF), x_ub, z_ub])
    integer = np.zeros(n_vars, dtype=bool)
    for name in ("y", "s", "a"):
        integer[blocks[name]] = True

    def col(name: str, idx: np.ndarray | None = None) -> np.ndarray:
        blk = blocks[name]
        base = np.arange(blk.start, blk.stop)
        return base if idx is None else base[idx]

    R = _Rows()
    y_cols = col("y")
    unit_size = units["size"].to_numpy(dtype=float)

    # Balance per class: cases placed = chosen untied levels + chosen tied cases; and per pool
    # counted at fine municipalities: no more placed there than chosen from it.
    n_cls = len(agg.classes)
    first = R.add_block(n_cls, 0.0, 0.0, "balance")
    R.terms(first + unit_cls[y_unit], y_cols, 1.0)
    R.terms(first + pool_cls[w_pool], col("w"), -1.0)
    R.terms(first + pool_cls[tied_pool], col("s"), -1.0)
    fine_cols = np.flatnonzero(y_unit < n_pools)
    if len(fine_cols):
        pools_used = np.unique(y_unit[fine_cols])
        first = R.add_block(len(pools_used), -INF, 0.0, "balance")
        R.terms(first + np.searchsorted(pools_used, y_unit[fine_cols]), y_cols[fine_cols], 1.0)
        w_in = np.isin(w_pool, pools_used)
        R.terms(first + np.searchsorted(pools_used, w_pool[w_in]), col("w", np.flatnonzero(w_in)), -1.0)
        s_in = np.isin(tied_pool, pools_used)
        R.terms(first + np.searchsorted(pools_used, tied_pool[s_in]), col("s", np.flatnonzero(s_in)), -1.0)

    # Ties: a[u, m] <= chosen cases of u tied to m, and <= y[u, m]. For a class, the chosen
    # cases come through a_pool: a_pool[p, m] <= chosen cases of p tied to m, and per pool, the
    # cases placed at municipalities with service rows plus those honouring class ties are no
    # more than the pool's chosen cases. (a_pool may stay continuous: for whole a, y and s the
    # split is a flow with whole capacities, so a whole split exists.)
    if len(a_unit):
        first = R.add_block(len(a_unit), -INF, 0.0, "tie_link")
        row_of_tied = a_key.get_indexer(pd.MultiIndex.from_arrays([tied_unit, tied_muni]))
        has_row = (row_of_tied >= 0) & reachable & (tied_unit < n_pools)
        R.terms(np.arange(len(a_unit)) + first, col("a"), 1.0)
        R.terms(first + row_of_tied[has_row], col("s", np.flatnonzero(has_row)), -1.0)
        split_key = pd.MultiIndex.from_arrays([n_pools + pool_cls[a_pool_pool], a_pool_muni])
        R.terms(first + a_key.get_indexer(split_key), col("a_pool"), -1.0)
        first = R.add_block(len(a_unit), -INF, 0.0, "tie_slot")
        y_key = pd.MultiIndex.from_arrays([y_unit, y_muni])
        R.terms(np.arange(len(a_unit)) + first, col("a"), 1.0)
        R.terms(np.arange(len(a_unit)) + first, y_cols[y_key.get_indexer(a_key)], -1.0)
    if len(a_pool_pool):
        first = R.add_block(len(a_pool_pool), -INF, 0.0, "tie_split")
        R.terms(first + np.arange(len(a_pool_pool)), col("a_pool"), 1.0)
        pair_key = pd.MultiIndex.from_arrays([a_pool_pool, a_pool_muni])
        row_of_case = pair_key.get_indexer(pd.MultiIndex.from_arrays([tied_pool, tied_muni]))
        from_case = (row_of_case >= 0) & coarse_tie
        R.terms(first + row_of_case[from_case], col("s", np.flatnonzero(from_case)), -1.0)
        split_pools = np.unique(a_pool_pool)
        first = R.add_block(len(split_pools), -INF, 0.0, "tie_pool")
        R.terms(first + np.searchsorted(split_pools, a_pool_pool), col("a_pool"), 1.0)
        at_fine = np.flatnonzero(np.isin(y_unit, split_pools))
        R.terms(first + np.searchsorted(split_pools, y_unit[at_fine]), y_cols[at_fine], 1.0)
        w_in = np.flatnonzero(np.isin(w_pool, split_pools))
        R.terms(first + np.searchsorted(split_pools, w_pool[w_in]), col("w", w_in), -1.0)
        s_in = np.flatnonzero(np.isin(tied_pool, split_pools))
        R.terms(first + np.searchsorted(split_pools, tied_pool[s_in]), col("s", s_in), -1.0)

    # Municipal capacities: persons, minors, each service.
    def capacity_rows(need: np.ndarray, left: np.ndarray) -> None:
        coef = need[y_unit].astype(float)
        used = np.flatnonzero(coef > 0)
        if not len(used):
            return
        munis = np.unique(y_muni[used])
        first = R.add_block(len(munis), -INF, left[munis], "capacity")
        local = np.searchsorted(munis, y_muni[used])
        R.terms(first + local, y_cols[used], coef[used])

    capacity_rows(units["size"].to_numpy(), agg.persons_left)
    capacity_rows(units["minors"].to_numpy(), agg.minors_left)
    for s, service in enumerate(problem.services):
        capacity_rows(units[f"use_{service}"].to_numpy(), agg.services_left[:, s])  # classes use 0

    # Housing: d[e] is the demand of housing class e (placed plus pinned cases). Hall's
    # conditions on d are exactly what makes a housing possible; the flow x on top of them is
    # only needed when the objective prices bedrooms.
    pinned_class = np.zeros(n_class)
    if problem.housing_modelled and n_class:
        pinned = pinned_class
        unhoused = []
        for (m, r), n in agg.pinned_demand.items():
            if class_of[r, m] < 0:
                unhoused.append(InputIssue("pins.csv", None, "municipality_id", "pin-without-dwelling",
                                           f"{n} pinned case(s) in '{agg.municipality_ids[m]}' fit no free dwelling there"))
            pinned[class_of[r, m]] += n
        if unhoused:
            raise ProblemValidationError(unhoused)
        first = R.add_block(n_class, -pinned, -pinned, "housing_class")
        R.terms(first + class_of[req_of_unit[y_unit], y_muni], y_cols, 1.0)
        R.terms(first + np.arange(n_class), col("d"), -1.0)
        first = R.add_block(len(hall_supply), -INF, hall_supply, "hall")
        R.terms(first + hall_row, col("d", hall_class), 1.0)
        first = R.add_block(n_class, 0.0, 0.0, "flow_demand")
        R.terms(first + np.arange(n_class), col("d"), 1.0)
        R.terms(first + x_class, col("x"), -1.0)
        used_types = np.unique(x_type)
        first = R.add_block(len(used_types), -INF, agg.dwelling_types["supply"].to_numpy(dtype=float)[used_types],
                            "flow_supply")
        R.terms(first + np.searchsorted(used_types, x_type), col("x"), 1.0)

    # Spread: the segments add up to the persons placed. The penalty is convex in persons, so
    # it is superadditive: a municipality pays at least what each case would pay alone on top
    # of the pins. That row keeps the LP from spreading fractions of families for free.
    if len(active):
        first = R.add_block(len(active), 0.0, 0.0, "spread")
        local_z, local_y = np.searchsorted(active, z_muni), np.searchsorted(active, y_muni)
        R.terms(first + local_z, col("z"), 1.0)
        R.terms(first + local_y, y_cols, -unit_size[y_unit])
        alone = (spread_cost(resolution[y_muni], pinned_persons[y_muni] + unit_size[y_unit])
                 - spread_cost(resolution[y_muni], pinned_persons[y_muni]))
        first = R.add_block(len(active), 0.0, INF, "spread")
        R.terms(first + local_z, col("z"), z_segment / SPREAD_SEGMENTS)
        R.terms(first + local_y, y_cols, -alone)

    matrix = sp.csr_matrix(
        (np.concatenate(R.vals), (np.concatenate(R.rows), np.concatenate(R.cols))),
        shape=(R.count, n_vars),
    )
    return PlacementModel(
        agg=agg,
        lower=lower,
        upper=upper,
        integer=integer,
        matrix=matrix,
        row_lower=np.concatenate(R.lower) if R.lower else np.zeros(0),
        row_upper=np.concatenate(R.upper) if R.upper else np.zeros(0),
        blocks=blocks,
        row_group=np.concatenate(R.groups) if R.groups else np.zeros(0, dtype=object),
        y_class=class_of[req_of_unit[y_unit], y_muni] if n_class else np.full(len(y_unit), -1),
        pinned_class=pinned_class,
        x_class=x_class,
        hall_class=hall_class,
        hall_row=hall_row,
        hall_supply=hall_supply,
        units=units,
        fine=fine,
        y_unit=y_unit,
        y_muni=y_muni,
        w_pool=w_pool,
        w_urgency=w_urgency,
        s_case=s_case,
        a_unit=a_unit,
        a_muni=a_muni,
        a_pool_pool=a_pool_pool,
        a_pool_muni=a_pool_muni,
        x_muni=x_muni,
        x_type=x_type,
        z_muni=z_muni,
        z_segment=z_segment.astype(float),
    )


#: Per aggregation, the housing classes and Hall rows of each set of possible (requirement,
#: municipality) demands. A solve builds its model again with more municipalities' services,
#: mostly over the same demands (national-30k: 0.1 s a build).
_HOUSING: weakref.WeakKeyDictionary[Aggregation, dict[bytes, tuple[np.ndarray, ...]]] = weakref.WeakKeyDictionary()


def _housing(agg: Aggregation, demand_possible: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`_housing_classes` and :func:`_hall_rows` for ``demand_possible``, taken once per
    aggregation; the arrays are shared, so read-only."""
    known = _HOUSING.setdefault(agg, {})
    key = np.packbits(demand_possible).tobytes()
    if key not in known:
        class_of, x_class, x_type, x_muni = _housing_classes(agg, demand_possible)
        arrays = (class_of, x_class, x_type, x_muni, *_hall_rows(agg, x_class, x_type))
        for array in arrays:
            array.setflags(write=False)
        known[key] = arrays
    return known[key]


def _housing_classes(
    agg: Aggregation, demand_possible: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group, per municipality, the requirements that fit the same dwelling types.

    Returns ``class_of`` (requirement x municipality -> class number or -1) and, per ``x``
    column, its class, dwelling type and municipality. Classes are numbered by municipality,
    then by the set of types they fit; ``x`` columns run class by class, types in order.
    """
    types = agg.dwelling_types
    class_of = np.full((len(agg.requirements), agg.n_municipalities), -1)
    empty = (class_of, *(np.zeros(0, dtype=int),) * 3)
    owner = types["municipality"].to_numpy()
    supplied = np.flatnonzero(types["supply"].to_numpy() > 0)
    supplied = supplied[np.argsort(owner[supplied], kind="stable")]  # by municipality, then type
    first = np.searchsorted(owner[supplied], np.arange(agg.n_municipalities + 1))
    count = np.diff(first)
    reqs, munis = np.nonzero(demand_possible & (count > 0)[None, :])
    if not len(reqs):
        return empty
    # Per (requirement, municipality): which of the municipality's supplied types it fits, as a
    # row of bits over their order there; equal rows at one municipality are one class.
    local = np.arange(count.max())
    inside = local[None, :] < count[munis][:, None]
    type_at = supplied[np.minimum(first[munis][:, None] + local[None, :], len(supplied) - 1)]
    fits = inside & agg.compatible[reqs[:, None], type_at]
    keep = fits.any(axis=1)
    reqs, munis, fits = reqs[keep], munis[keep], fits[keep]
    if not len(reqs):
        return empty
    # Municipality first (two bytes, big-endian), then the packed bits: rows sort as (m, pattern).
    key = np.hstack([(munis[:, None] >> np.array([8, 0]) & 0xFF).astype(np.uint8), np.packbits(fits, axis=1)])
    unique, inverse = np.unique(key, axis=0, return_inverse=True)
    class_of[reqs, munis] = inverse.reshape(-1)
    class_muni = unique[:, 0].astype(int) << 8 | unique[:, 1].astype(int)
    pattern = np.unpackbits(unique[:, 2:], axis=1, count=len(local)).astype(bool)
    x_class, position = np.nonzero(pattern)
    x_type = supplied[first[class_muni[x_class]] + position]
    return class_of, x_class, x_type, owner[x_type]


def _hall_rows(agg: Aggregation, x_class: np.ndarray, x_type: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hall's conditions for housing, one row per distinct union of compatible type sets.

    In a municipality, demands d[e] of housing classes can all be housed if and only if, for
    every set U that is a union of classes' compatible type sets, the classes whose sets lie in
    U need no more than U supplies (Hall's theorem for transportation). Returns, per entry,
    the class and the row, and each row's supply.
    """
    supply = agg.dwelling_types["supply"].to_numpy(dtype=float)
    owner = agg.dwelling_types["municipality"].to_numpy()
    if not len(x_class):
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0)
    # Each class's set of types as a Python int bitmask over its municipality's types.
    classes = np.unique(x_class)
    muni_of_class = np.zeros(classes.max() + 1, dtype=int)
    muni_of_class[x_class] = owner[x_type]
    # Bit of each type within its municipality: its rank among that municipality's used types.
    used = np.unique(x_type)
    used_owner = owner[used]
    first_of_owner = np.searchsorted(used_owner, used_owner)  # used is sorted by type, types by owner
    bit_of_type = dict(zip(used.tolist(), (np.arange(len(used)) - first_of_owner).tolist()))
    bit_types = {(int(o), int(b)): int(t) for t, o, b in zip(used, used_owner, np.arange(len(used)) - first_of_owner)}
    mask = np.zeros(classes.max() + 1, dtype=object)
    mask[:] = 0
    for e, t in zip(x_class.tolist(), x_type.tolist()):
        mask[e] |= 1 << bit_of_type[t]
    entries_class, entries_row, row_supply = [], [], []
    by_muni: dict[int, list[int]] = {}
    for e in classes:
        by_muni.setdefault(int(muni_of_class[e]), []).append(int(e))
    for m, members in by_muni.items():
        sets = {int(mask[e]) for e in members}
        unions, frontier = set(sets), set(sets)
        while frontier:
            grown = {u | v for u in frontier for v in sets} - unions
            unions |= grown
            frontier = grown
        for union in sorted(unions):
            inside = [e for e in members if int(mask[e]) & ~union == 0]
            row = len(row_supply)
            row_supply.append(sum(supply[bit_types[(m, b)]] for b in range(union.bit_length()) if union >> b & 1))
            entries_class += inside
            entries_row += [row] * len(inside)
    return np.array(entries_class, dtype=int), np.array(entries_row, dtype=int), np.array(row_supply)

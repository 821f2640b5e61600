"""The obvious per-pair model, written as a new user would (but correct), solved with HiGHS.

This is the baseline the allocator is measured against. It states the same hard rules as the
allocator and maximises the same level-1 objective (urgency), one boolean per pair:

Variables (all binary)

``x[c, m]``  case c is placed in municipality m. One per (case, municipality) pair; the only pairs
             skipped are excluded pairs and, for cases with unaccompanied minors, municipalities
             whose ``resolution_minors`` is 0.
``h[c, t]``  case c lives in dwelling type t, for every free dwelling type t that fits c (bedrooms,
             occupants, step-free, shared flats for single adults only) in a municipality m that
             has a variable ``x[c, m]``.

A *dwelling type* is the free dwellings of one municipality with the same bedrooms,
max_occupants, step_free and shared; its supply is its number of dwellings, or its number of
places (sum of ``max_occupants``) for shared flats. (One boolean per (case, dwelling) would be
larger still; the type is the smaller of the two obvious choices.)

Rows

- each case at most once: ``sum_m x[c, m] <= 1``;
- persons: ``sum_c size_c x[c, m] <= resolution_persons_m``;
- unaccompanied minors: ``sum_c minors_c x[c, m] <= resolution_minors_m``;
- each service: ``sum_c use_c x[c, m] <= capacity_m``;
- dwelling supply: ``sum_c h[c, t] <= supply_t``;
- housing link: ``sum_{t in m} h[c, t] = x[c, m]`` (only when ``dwellings.csv`` is given);
- exclusions: the pair has no variable; pins: ``x[c, pin] = 1`` (and ``h`` of the pinned
  dwelling's type = 1 when the pin names a dwelling).

Objective: maximise ``sum_c urgency_c sum_m x[c, m]``, ``urgency`` being
``problem.cases["urgency"]``, the urgency the allocator's level 1 maximises. Pinned cases count
too (a constant: they are always placed); an allocator that leaves them out of its level-1 value
differs by that constant only, which ``benchmarks.run`` allows for by comparing plans.

Size: ``|x| = sum_c |{m : not excluded, minors_c = 0 or resolution_minors_m > 0}|`` and
``|h| = sum_c sum_{m with x[c, m]} |{free dwelling types of m that fit c}|``; rows
``= cases + municipalities x (2 + services) + dwelling types + |x|``.

The model is built in bulk with numpy and one sparse matrix straight into a MathOpt model proto
(as fast as the allocator builds its own), so the comparison measures the model, not the
building; it is solved by HiGHS through OR-Tools MathOpt with a time limit and a relative gap.
The solver's log rows (BestBound, BestSol) are recorded with the wall time they arrive, so the
time at which a given gap was first proven can be read off afterwards.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from allocator import Problem
from allocator.backend import MathOptBackend, relative_gap
from allocator.model import LinearProgram

TYPE_COLUMNS = ["municipality", "bedrooms", "max_occupants", "step_free", "shared"]

@dataclass(eq=False)
class BaselineModel:
    """The per-pair model as arrays: variables ``x`` then ``h``; rows in one CSR matrix."""

    problem: Problem
    x_case: np.ndarray  # case position
    x_muni: np.ndarray  # municipality position
    h_case: np.ndarray
    h_type: np.ndarray  # row of ``types``
    types: pd.DataFrame  # TYPE_COLUMNS + supply
    type_of_dwelling: pd.Series  # free dwelling id -> type row
    lower: np.ndarray
    upper: np.ndarray
    objective: np.ndarray
    matrix: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    row_blocks: dict[str, int] = field(default_factory=dict)

    @property
    def n_vars(self) -> int:
        return len(self.lower)

    @property
    def n_x(self) -> int:
        return len(self.x_case)

    def sizes(self) -> dict[str, int]:
        return {
            "x": self.n_x,
            "h": len(self.h_case),
            "variables": self.n_vars,
            "integer": self.n_vars,
            "constraints": int(self.matrix.shape[0]),
            "nonzeros": int(self.matrix.nnz),
            **{f"rows_{k}": v for k, v in self.row_blocks.items()},
        }


def dwelling_types(problem: Problem) -> tuple[pd.DataFrame, pd.Series]:
    """Free dwellings grouped into types, with supply; and the type of every free dwelling."""
    free = problem.free_dwellings
    if free is None or free.empty:
        return pd.DataFrame(columns=TYPE_COLUMNS + ["supply"]), pd.Series(dtype=int)
    munis = problem.municipalities.index
    frame = free[["bedrooms", "max_occupants", "step_free", "shared"]].copy()
    frame.insert(0, "municipality", munis.get_indexer(free["municipality_id"]))
    frame["supply"] = np.where(frame["shared"], frame["max_occupants"], 1).astype(int)
    types = frame.groupby(TYPE_COLUMNS, sort=True)["supply"].sum().reset_index()
    type_of = frame.reset_index().merge(types[TYPE_COLUMNS].reset_index(), on=TYPE_COLUMNS)
    return types, type_of.set_index("dwelling_id")["index"].sort_index()


def _fits(cases: pd.DataFrame, types: pd.DataFrame) -> np.ndarray:
    """Cases x types: could the case live in a dwelling of the type (ignoring municipality)?"""
    step_ok = types["step_free"].to_numpy(bool)[None, :] | ~cases["needs_step_free"].to_numpy(bool)[:, None]
    private = (types["bedrooms"].to_numpy()[None, :] >= cases["bedrooms"].to_numpy()[:, None]) & (
        types["max_occupants"].to_numpy()[None, :] >= cases["size"].to_numpy()[:, None]
    )
    single = cases["single_adult"].to_numpy(bool)[:, None]
    return step_ok & np.where(types["shared"].to_numpy(bool)[None, :], single, private)


def _pair_mask(problem: Problem) -> np.ndarray:
    """Cases x municipalities: does the obvious model create ``x[c, m]``?"""
    cases, munis = problem.cases, problem.municipalities
    mask = np.ones((len(cases), len(munis)), dtype=bool)
    no_minors = munis["resolution_minors"].to_numpy() <= 0
    has_minors = cases["minors"].to_numpy() > 0
    mask[np.ix_(has_minors, no_minors)] = False
    if len(problem.exclusions):
        ci = cases.index.get_indexer(problem.exclusions["case_id"])
        mi = munis.index.get_indexer(problem.exclusions["municipality_id"])
        mask[ci, mi] = False
    return mask


def _requirements(cases: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    columns = ["bedrooms", "size", "needs_step_free", "single_adult"]
    keys = cases[columns].reset_index(drop=True)
    req_of_case = keys.groupby(columns, sort=True).ngroup().to_numpy()
    reqs = keys.assign(r=req_of_case).groupby("r")[columns].first()
    return reqs, req_of_case


def model_size(problem: Problem) -> dict[str, int]:
    """Variables and rows of the per-pair model without building it (the size formula)."""
    mask = _pair_mask(problem)
    n_x = int(mask.sum())
    n_h = 0
    n_types = 0
    if problem.housing_modelled:
        types, _ = dwelling_types(problem)
        n_types = len(types)
        if n_types:
            reqs, req_of_case = _requirements(problem.cases)
            fits = _fits(reqs, types).astype(np.int64)  # requirements x types
            per_muni = np.zeros((len(reqs), len(problem.municipalities)), dtype=np.int64)
            owner = types["municipality"].to_numpy()
            for r in range(len(reqs)):
                per_muni[r] = np.bincount(owner, weights=fits[r], minlength=per_muni.shape[1]).astype(np.int64)
            n_h = int((mask * per_muni[req_of_case]).sum())
    n_m = len(problem.municipalities)
    rows = len(problem.cases) + n_m * (2 + len(problem.services)) + n_types + (n_x if problem.housing_modelled else 0)
    return {"x": n_x, "h": n_h, "variables": n_x + n_h, "integer": n_x + n_h, "constraints_at_most": rows}


def build_baseline(problem: Problem) -> BaselineModel:
    """Build the per-pair model (see the module docstring) in bulk."""
    cases, munis = problem.cases, problem.municipalities
    n_c, n_m = len(cases), len(munis)
    mask = _pair_mask(problem)
    x_case, x_muni = np.nonzero(mask)
    n_x = len(x_case)
    x_index = np.full((n_c, n_m), -1, dtype=np.int64)
    x_index[x_case, x_muni] = np.arange(n_x)

    # h: per requirement (bedrooms, size, step-free, single adult), every fitting type whose
    # municipality has x[c, m].
    types, type_of_dwelling = dwelling_types(problem)
    h_case_parts: list[np.ndarray] = []
    h_type_parts: list[np.ndarray] = []
    if problem.housing_modelled and len(types):
        reqs, req_of_case = _requirements(cases)
        fits = _fits(reqs, types)
        owner = types["municipality"].to_numpy()
        order = np.argsort(req_of_case, kind="stable")
        starts = np.searchsorted(req_of_case[order], np.arange(len(reqs) + 1))
        for r in range(len(reqs)):
            members = order[starts[r]:starts[r + 1]]
            fitting = np.flatnonzero(fits[r])
            if not len(members) or not len(fitting):
                continue
            c = np.repeat(members, len(fitting))
            t = np.tile(fitting, len(members))
            keep = mask[c, owner[t]]
            h_case_parts.append(c[keep])
            h_type_parts.append(t[keep])
    h_case = np.concatenate(h_case_parts) if h_case_parts else np.zeros(0, dtype=np.int64)
    h_type = np.concatenate(h_type_parts) if h_type_parts else np.zeros(0, dtype=np.int64)
    n_h = len(h_case)
    n_vars = n_x + n_h

    lower = np.zeros(n_vars)
    upper = np.ones(n_vars)
    objective = np.zeros(n_vars)
    objective[:n_x] = cases["urgency"].to_numpy(dtype=float)[x_case]

    # Pins: the pinned pair is fixed to 1 (the at-most-once row then zeroes the others).
    if len(problem.pins):
        pc = cases.index.get_indexer(problem.pins["case_id"])
        pm = munis.index.get_indexer(problem.pins["municipality_id"])
        lower[x_index[pc, pm]] = 1.0
        named = problem.pins["dwelling_id"].to_numpy() != ""
        if named.any() and n_h:
            h_key = pd.MultiIndex.from_arrays([h_case, h_type])
            want = pd.MultiIndex.from_arrays(
                [pc[named], type_of_dwelling.reindex(problem.pins["dwelling_id"][named]).to_numpy()]
            )
            pos = h_key.get_indexer(want)
            if (pos < 0).any():
                raise ValueError("a pinned dwelling does not fit its case")
            lower[n_x + pos] = 1.0

    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    row_lower: list[np.ndarray] = []
    row_upper: list[np.ndarray] = []
    blocks: dict[str, int] = {}
    count = 0

    def block(name: str, n: int, lo: np.ndarray | float, up: np.ndarray | float) -> int:
        nonlocal count
        first = count
        row_lower.append(np.broadcast_to(np.asarray(lo, dtype=float), (n,)).copy())
        row_upper.append(np.broadcast_to(np.asarray(up, dtype=float), (n,)).copy())
        blocks[name] = blocks.get(name, 0) + n
        count += n
        return first

    def terms(r: np.ndarray, c: np.ndarray, v: np.ndarray | float) -> None:
        rows.append(np.asarray(r, dtype=np.int64))
        cols.append(np.asarray(c, dtype=np.int64))
        vals.append(np.broadcast_to(np.asarray(v, dtype=float), np.shape(r)).copy())

    x_cols = np.arange(n_x)
    # Each case at most once.
    first = block("case", n_c, -np.inf, 1.0)
    terms(first + x_case, x_cols, 1.0)

    # Per municipality: persons, minors, each service.
    def capacity(name: str, need: np.ndarray, limit: np.ndarray) -> None:
        coef = need[x_case].astype(float)
        used = coef > 0
        first = block(name, n_m, -np.inf, limit.astype(float))
        terms(first + x_muni[used], x_cols[used], coef[used])

    capacity("persons", cases["size"].to_numpy(), munis["resolution_persons"].to_numpy())
    capacity("minors", cases["minors"].to_numpy(), munis["resolution_minors"].to_numpy())
    for service in problem.services:
        capacity(f"capacity_{service}", cases[f"use_{service}"].to_numpy(), munis[f"capacity_{service}"].to_numpy())

    if problem.housing_modelled:
        h_cols = n_x + np.arange(n_h)
        # Supply of each dwelling type.
        first = block("supply", len(types), -np.inf, types["supply"].to_numpy(dtype=float))
        terms(first + h_type, h_cols, 1.0)
        # Link: the dwelling-type booleans of (c, m) add up to x[c, m].
        first = block("link", n_x, 0.0, 0.0)
        terms(first + x_cols, x_cols, -1.0)
        if n_h:
            owner = types["municipality"].to_numpy()
            terms(first + x_index[h_case, owner[h_type]], h_cols, 1.0)

    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(count, n_vars)
    )
    matrix.sum_duplicates()
    matrix.sort_indices()
    return BaselineModel(
        problem=problem,
        x_case=x_case,
        x_muni=x_muni,
        h_case=h_case,
        h_type=h_type,
        types=types,
        type_of_dwelling=type_of_dwelling,
        lower=lower,
        upper=upper,
        objective=objective,
        matrix=matrix,
        row_lower=np.concatenate(row_lower),
        row_upper=np.concatenate(row_upper),
        row_blocks=blocks,
    )


@dataclass
class BaselineOutcome:
    status: str  # optimal | feasible | infeasible | no_solution
    objective: float | None
    bound: float | None
    seconds: float
    values: np.ndarray | None
    nodes: int
    detail: str
    solver: str
    #: (wall seconds since the solve started, best objective, best bound) per HiGHS log row.
    progress: list[tuple[float, float | None, float | None]] = field(default_factory=list)

    @property
    def gap(self) -> float | None:
        gap = relative_gap(self.objective, self.bound)
        if self.status == "optimal" and gap is None and self.objective is not None:
            return 0.0
        return gap

    def seconds_to_gap(self, target: float, proven_target: bool = False) -> float | None:
        """Solve seconds at which a relative gap of ``target`` was first proven (None: never).

        ``proven_target``: the solve ran with ``target`` as its relative gap, so an ``optimal``
        termination means the target was met when the solve ended.
        """
        tolerance = target * (1 + 1e-6) + 1e-12
        for seconds, best, bound in self.progress:
            gap = relative_gap(best, bound)
            if gap is not None and gap <= tolerance:
                return seconds
        if self.gap is not None and self.gap <= tolerance:
            return self.seconds
        if proven_target and self.status == "optimal":
            return self.seconds
        return None


def solve_baseline(
    model: BaselineModel,
    *,
    time_limit: float,
    relative_gap: float = 1e-4,
    seed: int = 0,
    presolve: bool = True,
    log_lines: list[str] | None = None,
) -> BaselineOutcome:
    """Solve with HiGHS through MathOpt (the allocator's backend, HiGHS's default threads);
    ``log_lines`` (if given) receives the solver's log.

    ``presolve=False`` switches HiGHS's presolve off (an experiment; the baseline as a new user
    runs it keeps the solver's defaults).
    """
    program = LinearProgram(model.lower, model.upper, np.ones(model.n_vars, dtype=bool), model.matrix,
                            model.row_lower, model.row_upper)
    progress: list[tuple[float, float | None, float | None]] = []
    started = time.perf_counter()

    def line(text: str) -> None:
        if log_lines is not None:
            log_lines.append(text)

    def row(best: float | None, bound: float | None) -> None:
        progress.append((time.perf_counter() - started, best, bound))

    backend = MathOptBackend("highs")
    out = backend.solve(program, model.objective, time_limit=time_limit, relative_gap=relative_gap,
                        absolute_gap=1e-6, seed=seed, presolve=presolve, on_log=row, on_line=line)
    # Progress times count from before the proto is filled; so does the total.
    return BaselineOutcome(status=out.status, objective=out.objective, bound=out.bound,
                           seconds=time.perf_counter() - started,
                           values=out.values, nodes=out.nodes, detail=out.detail, solver=backend.version,
                           progress=progress)


def extract_plan(model: BaselineModel, values: np.ndarray) -> pd.DataFrame:
    """The plan of a solution: ``case_id``, ``municipality_id``, ``dwelling_id``.

    Each placed case gets a concrete dwelling of its chosen type: pinned dwellings first, then
    the type's other dwellings (or shared places) in id order.
    """
    problem = model.problem
    case_ids = problem.cases.index.to_numpy()
    muni_ids = problem.municipalities.index.to_numpy()
    chosen = values[: model.n_x] > 0.5
    placed_case = model.x_case[chosen]
    placed_muni = model.x_muni[chosen]
    plan = pd.DataFrame({"case_id": case_ids[placed_case], "municipality_id": muni_ids[placed_muni],
                         "dwelling_id": ""})
    if not problem.housing_modelled or plan.empty:
        return plan.sort_values("case_id", ignore_index=True)

    housed = values[model.n_x:] > 0.5
    type_of_case = pd.Series(model.h_type[housed], index=case_ids[model.h_case[housed]])
    if type_of_case.index.duplicated().any():
        raise RuntimeError("a case got more than one dwelling type")
    pins = problem.pins.set_index("case_id")["dwelling_id"]
    pins = pins[pins != ""]
    places: dict[int, list[str]] = defaultdict(list)
    free = problem.free_dwellings
    taken = pins.value_counts()
    for dwelling_id, t in model.type_of_dwelling.items():
        shared = bool(free.at[dwelling_id, "shared"])
        n = (int(free.at[dwelling_id, "max_occupants"]) if shared else 1) - int(taken.get(dwelling_id, 0))
        places[int(t)].extend([dwelling_id] * max(n, 0))
    for t in places:
        places[t].reverse()  # pop() from the end gives id order
    dwelling = []
    for case_id in plan["case_id"]:
        if case_id in pins.index:
            dwelling.append(pins[case_id])
            continue
        t = int(type_of_case[case_id])
        dwelling.append(places[t].pop())
    plan["dwelling_id"] = dwelling
    return plan.sort_values("case_id", ignore_index=True)


def plan_objective(problem: Problem, plan: pd.DataFrame) -> float:
    """Level-1 objective recomputed from a plan: the urgency of its cases (pinned ones included)."""
    return float(problem.cases["urgency"].reindex(plan["case_id"]).sum())

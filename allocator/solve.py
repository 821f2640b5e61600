"""``solve()``: one placement round, optimised level by level, returned as a :class:`Result`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from .aggregate import aggregate
from .backend import MathOptBackend, Outcome, Progress, StopFlag
from .explain import municipality_table, unplaced_reasons
from .extract import choose_cases, choose_dwellings
from .model import SPREAD_SEGMENTS, LinearProgram, PlacementModel, build_model
from .problem import Problem
from .result import LevelResult, Result
from .settings import Settings

log = logging.getLogger(__name__)

#: Share of the remaining time the first level may use; later levels share the rest.
FIRST_LEVEL_SHARE = 0.6


def solve(
    problem: Problem,
    settings: Settings | None = None,
    *,
    stop: StopFlag | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    warm_start: pd.DataFrame | None = None,
) -> Result:
    """Propose placements for one round.

    Parameters
    ----------
    problem
        The validated round.
    settings
        Overrides ``problem.settings`` (objective, limits, seed) when given. Settings that
        change derived data (``as_of``, ages, the bedroom rule) need ``problem.with_settings``.
    stop
        Set it from another thread to stop early; the best plan found is kept.
    on_progress
        Called with the objective and bound as the solver reports them.
    warm_start
        A previous plan (``case_id``, ``municipality_id``) used as the solver's starting hint.

    Returns
    -------
    Result
        Placements, unplaced cases with reasons, KPIs and what produced them.
    """
    settings = settings or problem.settings
    started = time.perf_counter()
    deadline = started + settings.solver.time_limit
    agg = aggregate(problem)
    model = build_model(agg)
    build_seconds = time.perf_counter() - started
    log.info("model built in %.2fs: %s", build_seconds, model.sizes())

    terms = model.objective_terms()
    backend = MathOptBackend(settings.solver.backend)
    hint = _hint_from_plan(model, warm_start) if warm_start is not None else None
    locks: list[tuple[np.ndarray, float]] = []
    levels: list[LevelResult] = []
    values: np.ndarray | None = None
    priorities = settings.objective.priorities
    for k, names in enumerate(priorities):
        objective = sum(settings.objective.weight(t) * terms[t] for t in names)
        remaining = deadline - time.perf_counter()
        share = FIRST_LEVEL_SHARE if k == 0 and len(priorities) > 1 else 1.0 / (len(priorities) - k)
        if stop is not None and stop.stopped and values is not None:
            levels.append(LevelResult(names, "not_run", None, None, 0.0, 0))
            continue

        def report(best: float | None, bound: float | None, level: int = k) -> None:
            if on_progress is not None:
                on_progress(Progress(level, time.perf_counter() - started, best, bound))

        # Only the rows and variables this level and the locked ones need.
        program, columns = model.program([t for level in priorities[: k + 1] for t in level])
        sub_hint = complete_hint(model, hint)[columns] if hint is not None else None
        outcome = solve_level(
            backend,
            model,
            program,
            columns,
            objective[columns],
            locks=[(c[columns], b) for c, b in locks],
            budget=max(remaining * share, 0.05),
            settings=settings,
            hint=sub_hint,
            stop=stop,
            on_log=report if on_progress is not None else None,
        )
        log.info("level %d %s: %s objective=%s bound=%s in %.2fs (%d variables, %d rows)", k + 1, names,
                 outcome.status, outcome.objective, outcome.bound, outcome.seconds, program.n_vars,
                 program.matrix.shape[0])
        if outcome.values is None:
            levels.append(LevelResult(names, outcome.status, None, outcome.bound, outcome.seconds, outcome.nodes))
            if outcome.status == "infeasible":
                raise RuntimeError("the pins cannot all be housed: no plan keeps every pin")
            if values is None:
                values = np.zeros(model.n_vars)  # nothing found yet: the empty plan is feasible
            continue
        levels.append(LevelResult(names, outcome.status, outcome.objective, outcome.bound,
                                  outcome.seconds, outcome.nodes))
        values = np.zeros(model.n_vars)
        values[columns] = outcome.values
        hint = values
        locks.append((objective, _lock_value(outcome)))
    assert values is not None
    return _result(problem, settings, model, values, levels, backend, started, build_seconds)


def solve_level(
    backend: MathOptBackend,
    model: PlacementModel,
    program: LinearProgram,
    columns: np.ndarray,
    objective: np.ndarray,
    *,
    locks: list[tuple[np.ndarray, float]],
    budget: float,
    settings: Settings,
    hint: np.ndarray | None,
    stop: StopFlag | None,
    on_log: Callable[[float | None, float | None], None] | None,
) -> Outcome:
    """One level over ``program`` (the model's ``columns``): LP bound, rounding, then search.

    1. The LP relaxation bounds the level (a valid bound for the full model).
    2. A MIP in the box around the LP optimum (every pair keeps its rounded-down count and may
       only grow into the capacity that rounding down left) finds a strong plan fast. It stops
       as soon as a plan is within the relative gap of the LP bound: the level is then proven.
    3. Otherwise the full MIP, started from the best plan, improves plan and bound for the rest
       of the budget. The level's bound is the better of the LP's and the full MIP's.
    """
    started = time.perf_counter()
    gap = settings.solver.relative_gap
    common = dict(locks=locks, seed=settings.solver.seed, threads=settings.solver.threads, stop=stop)

    def left() -> float:
        return max(budget - (time.perf_counter() - started), 0.05)

    if not objective.any():
        values = hint if hint is not None else np.zeros(program.n_vars)
        return Outcome("optimal", values, 0.0, 0.0, 0.0, 0, "nothing to optimise")
    lp = backend.solve(program, objective, time_limit=left() * 0.7, relative_gap=0.0, relax=True, **common)
    if lp.status != "optimal" or lp.values is None:
        log.info("  LP relaxation not solved (%s) in %.2fs", lp.status, lp.seconds)
        return backend.solve(program, objective, time_limit=left(), relative_gap=gap, hint=hint, on_log=on_log, **common)
    bound = lp.objective
    log.info("  LP relaxation %.4f in %.2fs", bound, lp.seconds)

    y_in = np.searchsorted(columns, np.arange(model.blocks["y"].start, model.blocks["y"].stop))
    lower, upper = program.lower.copy(), program.upper.copy()
    keep = np.rint(hint[y_in]) if hint is not None else None
    lower[y_in], upper[y_in] = model.rounding_box(lp.values[y_in], keep)
    local = backend.solve(program, objective, time_limit=left() * 0.6, relative_gap=gap / 4, hint=hint,
                          lower=lower, upper=upper, absolute_gap=gap * abs(bound), on_log=on_log, **common)
    best = local if local.values is not None else None
    log.info("  rounding box: %s %s in %.2fs (%d free pairs)", local.status, local.objective, local.seconds,
             int((upper[y_in] > lower[y_in]).sum()))
    if best is not None and _proven(best.objective, bound, gap):
        return Outcome("optimal", best.values, best.objective, bound, time.perf_counter() - started,
                       local.nodes, "rounding box within the gap of the LP bound")
    if stop is not None and stop.stopped and best is not None:
        return Outcome("feasible", best.values, best.objective, bound, time.perf_counter() - started,
                       local.nodes, "stopped")
    full = backend.solve(program, objective, time_limit=left(), relative_gap=gap,
                         hint=best.values if best is not None else hint, absolute_gap=gap * abs(bound), on_log=on_log, **common)
    log.info("  full model: %s %s bound %s in %.2fs", full.status, full.objective, full.bound, full.seconds)
    if full.bound is not None:
        bound = min(bound, full.bound)
    if full.values is not None and (best is None or full.objective > best.objective):
        best = full
    seconds = time.perf_counter() - started
    if best is None:
        return Outcome("no_solution", None, None, bound, seconds, full.nodes, full.detail)
    status = "optimal" if _proven(best.objective, bound, gap) else "feasible"
    return Outcome(status, best.values, best.objective, bound, seconds, local.nodes + full.nodes, full.detail)


def _proven(objective: float | None, bound: float | None, gap: float) -> bool:
    return objective is not None and bound is not None and (
        bound - objective <= gap * max(abs(bound), abs(objective), 1e-9) + 1e-9
    )


def complete_hint(model: PlacementModel, values: np.ndarray) -> np.ndarray:
    """Fill the blocks a plan's counts determine (class demand, spread, a feasible housing flow)
    so that a plan found at one level is a complete, feasible start for the next."""
    from .extract import housing_flow  # local: extraction depends on this module's callers

    out = values.copy()
    agg = model.agg
    y = np.rint(values[model.blocks["y"]])
    if model.blocks["d"].stop > model.blocks["d"].start:
        out[model.blocks["d"]] = model.class_demand(y)
        out[model.blocks["x"]] = housing_flow(model, out[model.blocks["d"]])
    if model.blocks["z"].stop > model.blocks["z"].start:
        persons = np.bincount(model.y_muni, weights=y * agg.pools["size"].to_numpy()[model.y_pool],
                              minlength=agg.n_municipalities)
        z = np.zeros(len(model.z_muni))
        left = persons[model.z_muni]
        for q in range(SPREAD_SEGMENTS):
            at = model.z_segment == q
            z[at] = np.minimum(left[at], model.upper[model.blocks["z"]][at])
            left[at] -= z[at]
            if q + 1 < SPREAD_SEGMENTS:
                left[model.z_segment == q + 1] = left[at]
        out[model.blocks["z"]] = z
    return out


def _lock_value(outcome: Outcome) -> float:
    """Keep what this level reached (within float tolerance) while optimising the next."""
    value = outcome.objective or 0.0
    return value - 1e-7 * max(1.0, abs(value))


def _hint_from_plan(model: PlacementModel, plan: pd.DataFrame) -> np.ndarray | None:
    """Counts of a previous plan as a starting point (cases placed where they were)."""
    agg = model.agg
    free = agg.free_cases
    plan = plan[plan["case_id"].isin(free.index)]
    if plan.empty:
        return None
    munis = pd.Index(agg.municipality_ids)
    pool = free.loc[plan["case_id"], "pool"].to_numpy()
    muni = munis.get_indexer(plan["municipality_id"])
    key = pd.MultiIndex.from_arrays([model.y_pool, model.y_muni])
    counts = pd.Series(1, index=pd.MultiIndex.from_arrays([pool, muni])).groupby(level=[0, 1]).sum()
    pos = key.get_indexer(counts.index)
    hint = np.zeros(model.n_vars)
    ok = pos >= 0
    hint[model.blocks["y"].start + pos[ok]] = counts.to_numpy()[ok]
    return hint


def _result(
    problem: Problem,
    settings: Settings,
    model: PlacementModel,
    values: np.ndarray,
    levels: list[LevelResult],
    backend: MathOptBackend,
    started: float,
    build_seconds: float,
) -> Result:
    agg = model.agg
    munis = agg.municipality_ids
    chosen = choose_cases(model, values)
    pins = problem.pins.set_index("case_id")
    placed = pd.DataFrame(
        {
            "municipality": pd.concat([
                chosen,
                pd.Series(pd.Index(munis).get_indexer(pins["municipality_id"]), index=pins.index),
            ]),
        }
    )
    placed["dwelling_id"] = pins["dwelling_id"].reindex(placed.index).fillna("")
    dwellings = choose_dwellings(model, placed)
    plan = pd.DataFrame(
        {
            "case_id": placed.index,
            "municipality_id": munis[placed["municipality"].to_numpy()],
            "dwelling_id": dwellings.reindex(placed.index).fillna("").to_numpy()
            if problem.housing_modelled else "",
            "pinned": placed.index.isin(pins.index),
        }
    ).sort_values("case_id", ignore_index=True)
    unplaced = unplaced_reasons(problem, agg, plan, levels)
    return Result(
        problem=problem,
        settings=settings,
        plan=plan,
        unplaced=unplaced,
        municipalities=municipality_table(problem, plan),
        levels=levels,
        term_values={name: float(coef @ values) for name, coef in model.objective_terms().items()},
        model_sizes=model.sizes(),
        solver=backend.version,
        build_seconds=build_seconds,
        total_seconds=time.perf_counter() - started,
    )

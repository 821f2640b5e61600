"""``solve()``: one placement round, optimised level by level, returned as a :class:`Result`."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pandas as pd

from .aggregate import aggregate
from .backend import MathOptBackend, Outcome, Progress, StopFlag
from .carry import carry_lp
from .columns import with_python_text
from .explain import municipality_table, unplaced_reasons
from .extract import choose_cases, choose_dwellings, over_capacity, services_used, services_used_by
from .fill import round_and_fill
from .level import (BOUND_TOLERANCE, LEVEL_LP_SHARE, PACK_SECONDS, level_lp_fits, level_status, mend_plan, moves_cases,
                    proven, solve_level)
from .model import LinearProgram, PlacementModel, build_model
from .pack import lp_pool_totals, pack_lp_totals, pack_with_ties
from .plans import assignment_of, complete_hint, expand, hint_from_plan, plan_frame, values_of
from .probe import first_lp, likely_binding_services, probe_services
from .problem import Problem
from .rehouse import restore_ties
from .result import LevelResult, Result
from .scoring import pinned_offsets, plan_terms
from .settings import Settings

log = logging.getLogger(__name__)


#: After this many refinements, every municipality's services are modelled.
MAX_REFINEMENTS = 3
#: At most this share of the time limit is kept back for making the last level's plan and the
#: result (a level's own repairs may take longer than that). national-30k in 10 s: 0.6-0.9 s a
#: level; with 0.05, the third level started with 0.1 s left and the solve ended 1 s late.
FINISH_SHARE = 0.1
#: Share of the remaining time the first level may use; later levels share the rest.
FIRST_LEVEL_SHARE = 0.6
#: Share of the remaining time a level between the first and the last takes where its LP does
#: not fit an equal share (the levels below are lower in priority): national-30k in 10 s, the
#: ties level's LP (4.1-4.8 s) was skipped in an equal share (about 3 s of LP time), and is now
#: solved in most runs.
NO_LP_SHARE = 0.9
#: A re-solve's carried LP (see :mod:`.carry`) gets this share of the whole LP's expected time.
CARRY_LP_SHARE = 0.3
#: Below the first level, a plan broken at a service capacity is mended by a search over the
#: broken municipalities and at most this many others, for this share of the time left (and
#: at most these seconds).
MEND_MUNICIPALITIES, MEND_SHARE, MEND_SECONDS = 40, 0.1, 2.0


@with_python_text
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
    priorities = settings.objective.priorities
    # Scores split pools by score vector. Levels without the scores term are the same over the
    # coarser pools of the round without scores: the first level is solved there, and the model
    # splits them only for the first level that prices scores (national-30k-scores: 137k
    # variables with them, 60k without).
    scored = [problem.has_scores and "scores" in level for level in priorities]
    split_later = any(scored) and not scored[0]
    agg = aggregate(problem, scores=scored[0])
    backend = MathOptBackend(settings.solver.backend)
    fine = likely_binding_services(agg)
    model = build_model(agg, fine)
    probed = None  # the probe's model and its LP: the urgency level's LP, solved already
    probe_bound = None  # that LP's optimum bounds level 1 (its model is a relaxation)
    if problem.services and not fine.all():
        probe = probe_services(model, backend, priorities[0], settings, stop)
        probe_bound = probe.lp.objective if probe.lp is not None else None
        if probe.lp is not None:
            probed = (model, probe.lp)
        if probe.more.any():
            fine = fine | probe.more
            log.info("the LP would come near service capacities in %d more municipalities; modelling them",
                     int(probe.more.sum()))
            model = build_model(agg, fine)
    build_seconds = time.perf_counter() - started
    log.info("model built in %.2fs (services modelled in %d of %d municipalities): %s", build_seconds,
             int(fine.sum()), len(fine), model.sizes())

    levels: list[LevelResult] = []
    lock_values: list[float] = []
    values = np.zeros(model.n_vars)  # the empty plan is always feasible
    assignment = pd.Series(dtype=int)  # the empty plan: no case placed
    plan_hint = warm_start
    refinements = 0
    spent = 0.0  # this level's time, re-solves included
    incumbent: _Incumbent | None = None  # what a re-solve of a level carries from the solve before
    # The longest a level took from its search's end to the next level (its plan made concrete
    # and checked): the levels' time leaves that much for the last level's and the result's
    # (national-30k in 10 s: 0.3-0.4 s a level; the solve ended 0.4 s past its limit).
    finish_seconds = 0.0
    k = 0
    while k < len(priorities):
        names = priorities[k]
        if stop is not None and stop.stopped and k > 0:
            levels.append(LevelResult(names, "not_run", None, None, 0.0, 0))
            k += 1
            continue
        if k > 0 and deadline - time.perf_counter() < 2 * finish_seconds:
            # Out of time: the plan of the levels above stands; this level is not searched. Also
            # where its search would get less time than making its plan concrete takes: it would
            # only end late (national-30k in 10 s: level 3 with 0.1 s, -33,506.9 as the plan
            # above, and the solve 1 s past its limit).
            levels.append(LevelResult(names, "out_of_time", None, None, 0.0, 0))
            k += 1
            continue
        if split_later and scored[k]:
            rebuilt = time.perf_counter()
            agg = aggregate(problem)
            model = build_model(agg, fine)
            build_seconds += time.perf_counter() - rebuilt
            values = values_of(model, assignment)
            split_later = False
            log.info("pools split by scores for level %d: %s", k + 1, model.sizes())
        terms = model.objective_terms()
        weighted = [sum(settings.objective.weight(t) * terms[t] for t in level) for level in priorities]
        hint = hint_from_plan(model, plan_hint) if plan_hint is not None else None
        remaining = deadline - time.perf_counter() - finish_seconds
        share = FIRST_LEVEL_SHARE if k == 0 and len(priorities) > 1 else 1.0 / (len(priorities) - k)
        # A level's search moves the cases of the plan above, where its terms only depend on
        # where they go. Not on a re-solve after a refinement: its start is the moved plan
        # already, and the MIPs make better use of what time is left (national-1k: -849.7 with
        # the search again, the optimum -774.9 without). A ties level's first solve stops
        # before the search when its packing breaks a service capacity, so its re-solve does
        # search.
        moving = k > 0 and plan_hint is not None and moves_cases(names, problem.has_scores) \
            and (incumbent is None or "ties" in names)

        def report(best: float | None, bound: float | None, level: int = k) -> None:
            if on_progress is not None:
                on_progress(Progress(level, time.perf_counter() - started, best, bound))

        # Only the rows and variables this level and the locked ones need.
        program, columns = model.program([t for level in priorities[: k + 1] for t in level])
        objective = weighted[k][columns]
        locks = [(weighted[j][columns], v) for j, v in enumerate(lock_values)]
        if 0 < k < len(priorities) - 1 and incumbent is None \
                and not level_lp_fits(backend.expected_lp_seconds(program, locks), remaining * share, moves=moving):
            # Its LP does not fit an equal share: the levels below, lower in priority, give up
            # time for it, so that it fits, or else for the search without it.
            share = NO_LP_SHARE
        # With levels to follow, level 1 solves its own LP (its vertex leads the levels below to
        # better plans) and polishes its plan, unless the next level's LP would then not fit.
        hurried = k == 0 and len(priorities) > 1 and _next_lp_hurried(backend, model, program, priorities, weighted,
                                                                      remaining)
        if hurried:
            log.info("  the probe's LP carried and level 1's plan not polished: the next level's LP would not "
                     "fit after level 1's own")
        score_locks = [settings.objective.weight("scores") * ("scores" in priorities[j])
                       for j in range(len(lock_values))]
        known_bound = incumbent.bound if incumbent is not None and k > 0 and incumbent.plan is not None \
            and incumbent.proven else None
        if incumbent is not None and incumbent.lp is not None and known_bound is None and not any(score_locks):
            # A re-solve after a refinement. Not where the search prices locked scores by the
            # LP's dual values of the locks, which a carried LP's raised bounds would change.
            level_lp = _carried_lp(backend, incumbent, model, program, columns, objective, locks,
                                   max(remaining * share, 0.05), settings.solver.relative_gap)
        else:
            level_lp = first_lp(backend, probed, model, program, columns, objective, settings,
                                 alone=len(priorities) == 1 or hurried, budget=max(remaining * share, 0.05))
        # Where level 1 solves its own LP (expected to fit its time), the probe's LP carried in
        # is the fall-back should it fail: without an LP level 1 has only the greedy plan.
        fallback_lp = None
        if level_lp is None and probed is not None:
            fallback_lp = functools.partial(first_lp, backend, probed, model, program, columns, objective, settings,
                                            alone=True)
        solved_lps: list[tuple[PlacementModel, Outcome]] = []  # this solve's LP, as a full vector
        outcome = solve_level(
            backend, model, program, columns, objective,
            locks=locks, score_locks=score_locks,
            budget=max(remaining * share, 0.05), settings=settings,
            hint=complete_hint(model, hint)[columns] if hint is not None else None,
            stop=stop, on_log=report if on_progress is not None else None,
            terms=names,
            lp=level_lp,
            fallback_lp=fallback_lp,
            fill=names == ["urgency"] and k == 0,
            # The levels below are locked to this plan's urgency: with them to follow, the first
            # level goes on from a plan within the gap towards the bound (national-30k: 122,535.5
            # -> 122,544.4 of 122,544.9; level 3's gap 3.8% -> 1.3%, as the LP below can no
            # longer choose other cases with the urgency left over).
            polish=names == ["urgency"] and k == 0 and len(priorities) > 1 and not hurried,
            ties="ties" in names,
            plan=assignment_of(agg, plan_hint) if moving else None,
            # A re-solve below the first level whose plan before was proven, in a coarser model,
            # starts from the repaired plan with the bound before.
            known_bound=known_bound,
            on_lp=lambda lp, m=model, c=columns: solved_lps.append(
                (m, replace(lp, values=expand(lp.values, c, m.n_vars)))),
        )
        probed = None  # a re-solve (after a refinement) carries this solve's LP instead
        searched = time.perf_counter()
        if k == 0 and outcome.bound is None and probe_bound is not None:
            # The level's own LP was not solved in its time (national-5k in 1 s): the probe's holds.
            outcome = replace(outcome, bound=probe_bound, bound_from="lp_relaxation")
        log.info("level %d %s: %s objective=%s bound=%s in %.2fs (%d variables, %d rows)", k + 1, names,
                 outcome.status, outcome.objective, outcome.bound, outcome.seconds, program.n_vars,
                 program.matrix.shape[0])
        if outcome.status == "infeasible":
            raise RuntimeError("the pins cannot all be housed: no plan keeps every pin")
        objective_value, bound, status = outcome.objective, outcome.bound, outcome.status
        bound_from = outcome.bound_from
        candidate = None
        if outcome.values is not None:
            candidate = expand(outcome.values, columns, model.n_vars)
        before = None  # on a re-solve: the solve before's repaired plan, which keeps every rule and lock
        kept_wins = False
        if incumbent is not None:
            # A re-solve after a refinement: keep the better of its plan and the repaired plan of
            # the solve before; both bounds hold for the problem, so the lower one stands (the
            # model before was a relaxation too: national-10k-scores, level 2's third solve had
            # no time for its LP, and the bound of the first two stands).
            kept_plan, kept_bound = incumbent.plan, incumbent.bound
            if kept_bound is not None and (bound is None or kept_bound < bound):
                bound, bound_from = kept_bound, incumbent.bound_from
            elif bound_from == "earlier_solve" and incumbent.bound_from:
                bound_from = incumbent.bound_from  # the solve before names where it got it
            kept = complete_hint(model, hint_from_plan(model, kept_plan)) if kept_plan is not None else None
            kept_value = float(weighted[k] @ kept) if kept is not None else -np.inf
            before = kept_plan
            if kept is not None and (candidate is None or objective_value < kept_value):
                candidate, objective_value = kept, kept_value
                kept_wins = True
            if candidate is not None and status != "optimal":
                status = level_status(objective_value, bound, settings.solver.relative_gap)
            incumbent = None
        if candidate is None:
            levels.append(LevelResult(names, outcome.status, None, bound, spent + outcome.seconds,
                                      outcome.nodes, bound_from=bound_from))
            spent = 0.0
            k += 1
            continue
        checked = time.perf_counter()
        y_block = model.blocks["y"]
        mended = None  # the plan broken at a service capacity, mended by moving its cases
        if kept_wins:
            # The plan kept from the solve before, as it was (the counts of a concrete plan may
            # choose other cases, which might break a capacity).
            found = assignment_of(agg, before)
            broken = over_capacity(agg, found)
        elif outcome.plan is not None and np.array_equal(
                np.rint(values_of(model, outcome.plan)[y_block]),
                np.rint(candidate[y_block])):
            # The level's plan is the concrete plan its search moved (every rule checked per case).
            found = outcome.plan
            broken = over_capacity(agg, found)
        else:
            found, broken = choose_cases(model, candidate)
            mended = mend_plan(model, found, broken, settings, names, deadline, backend) if len(broken) else None
            if mended is not None:
                # The same cases, moved where every capacity holds: every lock holds, and the
                # value is mostly the counts' (national-2k, level 3: -1,941.4 as the counts).
                # Proven, it is the answer: no refinement, no refill (national-2k seed 0,
                # urgency alone: the break took 0.34 s after the level's search, not 0.53 s).
                mended_values = values_of(model, mended)
                mended_value = float(weighted[k] @ mended_values)
                if bound is not None and proven(mended_value, bound, settings.solver.relative_gap) \
                        and all(weighted[j] @ mended_values >= v - 1e-6 for j, v in enumerate(lock_values)):
                    found, broken, candidate, objective_value = mended, np.zeros(0, dtype=int), mended_values, \
                        mended_value
                    status = "optimal"
            if not len(broken) and (lock_values or outcome.plan is not None):
                found, candidate, objective_value = _keep_locks(model, weighted, lock_values, k, found, candidate,
                                                                objective_value, outcome.plan)
        spent += outcome.seconds + time.perf_counter() - checked
        if len(broken):
            # Counting classes broke a service capacity in some municipalities: model them from
            # now on. The broken plan, with the cases that break a capacity taken out, is a valid
            # plan; if it is still within the gap of the bound (which holds: the coarser model
            # is a relaxation), it is this level's answer, else it starts a re-solve of the level
            # (the plans of the levels above stay valid and keep their locks).
            chosen_totals = lp_pool_totals(model, candidate)  # per pool: the same in every model
            refinements += 1
            fine = _finer(model, fine, found, broken, refinements)
            rebuilt = time.perf_counter()
            model = build_model(agg, fine)
            build_seconds += time.perf_counter() - rebuilt
            terms = model.objective_terms()
            weighted = [sum(settings.objective.weight(t) * terms[t] for t in level) for level in priorities]
            repaired = _best_repaired(backend, model, settings, weighted, lock_values, k, found=found, broken=broken,
                                      chosen_totals=chosen_totals, mended=mended, before=before, moved=outcome.plan,
                                      objective_value=objective_value, bound=bound, deadline=deadline)
            good_enough = repaired.keeps_locks and bound is not None and proven(repaired.value, bound,
                                                                                  settings.solver.relative_gap)
            # As at the top of the loop, where a level below the first is not started with less
            # than twice the time a plan took to make: a re-solve it would not start ended the
            # level out of time, without the repaired plan (national-5k-scores in 10 s: level 2's
            # 2,525.4 of at most 2,609.5 lost, and the proposal kept level 1's 54 ties).
            out_of_time = time.perf_counter() >= deadline - max(0.5, 2 * finish_seconds if k > 0 else 0.0) \
                or (stop is not None and stop.stopped)
            log.info("class counts broke service capacities in %d municipalities; modelling them (now %d); "
                     "the repaired plan %.4f%s", len(broken), int(fine.sum()), repaired.value,
                     "" if good_enough or out_of_time else f"; solving level {k + 1} again")
            if not (good_enough or out_of_time):
                if repaired.keeps_locks:
                    plan_hint = repaired.plan
                else:
                    log.info("  the repaired plan misses a lock: only the bound is kept for the re-solve")
                incumbent = _Incumbent(repaired.plan if repaired.keeps_locks else None, bound, status == "optimal",
                                       solved_lps[-1] if solved_lps else None,
                                       repaired.value if repaired.keeps_locks else None, bound_from)
                continue
            # Out of time, the plan this level started from (the level above's, or on a re-solve
            # the valid plan kept from the solve before) keeps every lock; the repaired plan is
            # the answer where it keeps them too and does better (national-2k seed 3, ties: 110
            # against the 10 of the plan above).
            started_from = None if good_enough or k == 0 or repaired.moved \
                else complete_hint(model, hint_from_plan(model, plan_hint))
            if started_from is None or (repaired.keeps_locks and repaired.value > float(weighted[k] @ started_from)):
                found, candidate, objective_value = repaired.assignment, repaired.values, repaired.value
                status = "optimal" if good_enough else "feasible"
            else:
                found, candidate = assignment_of(agg, plan_hint), started_from
                objective_value = float(weighted[k] @ candidate)
                status = "feasible"
        values, assignment = candidate, found
        plan_hint = plan_frame(agg, assignment)
        # Lock what the concrete plan achieves (its cases may honour a tie or two fewer than
        # the counts), so that this plan is always a start the next level can keep.
        reached = min(objective_value, float(weighted[k] @ complete_hint(model, hint_from_plan(model, plan_hint))))
        levels.append(LevelResult(names, status, objective_value, bound, spent, outcome.nodes, locked=reached,
                                  bound_from=bound_from))
        spent = 0.0
        lock_values.append(_lock_value(reached))
        finish_seconds = min(max(finish_seconds, time.perf_counter() - searched),
                             FINISH_SHARE * settings.solver.time_limit)
        k += 1
    return _result(problem, settings, model, values, assignment, levels, backend, started, build_seconds)


class _Incumbent(NamedTuple):
    """What a level's re-solve after a refinement carries from the solve before."""

    plan: pd.DataFrame | None  # the repaired plan; None if it missed a lock
    bound: float | None  # holds for the level: the model before was a relaxation
    proven: bool  # the plan before the refinement was within the gap of its bound
    lp: tuple[PlacementModel, Outcome] | None  # the coarser model and its LP (a full vector), if solved
    value: float | None  # the repaired plan's value at the level, if it keeps every lock
    bound_from: str = ""  # where ``bound`` comes from (``result.BOUND_SOURCES``)


class _Repaired(NamedTuple):
    """The plan a level's re-solve after a refinement starts from, or answers with."""

    assignment: pd.Series
    plan: pd.DataFrame
    values: np.ndarray  # in the finer model
    value: float  # the level's objective
    keeps_locks: bool  # keeps every lock of the levels above
    moved: bool  # the plan the level's search moved


def _finer(
    model: PlacementModel, fine: np.ndarray, found: pd.Series, broken: np.ndarray, refinements: int
) -> np.ndarray:
    """The municipalities whose services are modelled once ``found`` (counted by ``model``) broke
    a service capacity in the ``broken`` ones, at the ``refinements``-th refinement."""
    fine = fine.copy()
    fine[broken] = True
    if refinements > MAX_REFINEMENTS:
        fine[:] = True  # stop chasing: model every service everywhere
    else:
        # Not also those the plan fills near a capacity: on national-5k that modelled 149
        # municipalities for one broken one (5k-scores: 100k variables, not 56k, and the
        # ties level at 17% instead of 2.6%), and no re-solve was saved.
        fine |= too_small_for_a_case(model, found, broken)
    return fine


def _best_repaired(
    backend: MathOptBackend,
    model: PlacementModel,
    settings: Settings,
    weighted: list[np.ndarray],
    lock_values: list[float],
    k: int,
    *,
    found: pd.Series,
    broken: np.ndarray,
    chosen_totals: np.ndarray,
    mended: pd.Series | None,
    before: pd.DataFrame | None,
    moved: pd.Series | None,
    objective_value: float,
    bound: float | None,
    deadline: float,
) -> _Repaired:
    """Level k's plan ``found`` broke a service capacity in the ``broken`` municipalities, and
    ``model`` now models them: the best plan that keeps every capacity. Its candidates: ``found``
    with the cases that break a capacity taken out, refilled with the level's ``chosen_totals``
    (urgency) or packed back with its ties kept (ties); the same cases ``mended`` by moving them;
    the plan repaired ``before`` (a second re-solve); a search around where cases were taken out
    (below the first level, where the others miss a lock or fall short of the level's proven
    ``objective_value``); the plan the level's search ``moved``."""
    agg = model.agg
    priorities = settings.objective.priorities
    level = priorities[k]
    repaired = _without_broken_services(model, found)
    repaired_plan = plan_frame(agg, repaired)
    repaired_values = complete_hint(model, hint_from_plan(model, repaired_plan))
    repaired_value = float(weighted[k] @ repaired_values)
    if level == ["urgency"] and k == 0:
        better = _refill(model, repaired_values, chosen_totals, weighted[k], settings.solver.seed)
        if better is not None and better[2] > repaired_value:
            repaired, repaired_values, repaired_value = better
            repaired_plan = plan_frame(agg, repaired)
    # Taking cases out may cost a level above: then the repaired plan is no answer here.
    keeps_locks = all(weighted[j] @ repaired_values >= v - 1e-6 for j, v in enumerate(lock_values))
    if mended is not None:
        # Not proven: a candidate for the plan that starts the re-solve.
        mended_values = values_of(model, mended)
        mended_value = float(weighted[k] @ mended_values)
        if all(weighted[j] @ mended_values >= v - 1e-6 for j, v in enumerate(lock_values)) \
                and (not keeps_locks or mended_value > repaired_value):
            repaired, repaired_values, repaired_value = mended, mended_values, mended_value
            repaired_plan = plan_frame(agg, repaired)
            keeps_locks = True
    if "ties" in level:
        # The cases taken out (national-5k: one family of 8 at a municipality with two
        # kindergarten places) packed back in, now with the service rows, and every tie the
        # plan honours kept: most of the packing survives the refinement.
        better = _refill_ties(model, repaired_values, chosen_totals, weighted, lock_values, k,
                              settings.solver.seed)
        if better is not None and (not keeps_locks or better[2] > repaired_value):
            repaired, repaired_values, repaired_value = better
            repaired_plan = plan_frame(agg, repaired)
            keeps_locks = True
    if before is not None:
        # A second re-solve: the plan repaired after the first may be the better one (400
        # cases with scores, level 2: 286.386 repaired, then 286.441 broke a capacity and
        # its re-solve ended at 286.218).
        before_values = complete_hint(model, hint_from_plan(model, before))
        before_value = float(weighted[k] @ before_values)
        if not keeps_locks or before_value > repaired_value:
            log.info("  the plan repaired before kept: %.4f (repaired now: %.4f)", before_value,
                     repaired_value)
            repaired, repaired_plan = assignment_of(agg, before), before
            repaired_values, repaired_value, keeps_locks = before_values, before_value, True
    moved_wins = False
    # Also where the broken plan was proven and the repaired one, keeping every lock,
    # falls short of it (400 cases with scores, level 2: the full model's 286.514 broke a
    # service; the cases taken out packed back, the re-solve ended at 286.23; mended in
    # 0.2 s, 286.40).
    gap = settings.solver.relative_gap
    short = keeps_locks and proven(objective_value, bound, gap) \
        and not proven(repaired_value, objective_value, gap)
    if (not keeps_locks or short) and k > 0 and time.perf_counter() < deadline - 1.0:
        # Free where cases were taken out or packed back in.
        changed = found.index[found.ne(repaired.reindex(found.index))]
        packed_at = repaired.reindex(changed).dropna().to_numpy(dtype=int)
        around = _mend_around(backend, model, priorities[: k + 1], weighted, lock_values, k,
                              repaired_plan, changed, np.union1d(broken, packed_at), settings,
                              min((deadline - time.perf_counter()) * MEND_SHARE, MEND_SECONDS))
        if around is not None and (not keeps_locks or around[2] > repaired_value):
            repaired, repaired_values, repaired_value = around
            repaired_plan = plan_frame(agg, repaired)
            keeps_locks = True
    if moved is not None:
        # The level's search moved concrete cases (every rule kept): a plan that keeps
        # every lock, and the start of the re-solve if it is the better one.
        moved_plan = plan_frame(agg, moved)
        moved_values = complete_hint(model, hint_from_plan(model, moved_plan))
        moved_value = float(weighted[k] @ moved_values)
        if all(weighted[j] @ moved_values >= v - 1e-6 for j, v in enumerate(lock_values)) \
                and (not keeps_locks or moved_value > repaired_value):
            repaired, repaired_plan, repaired_values, repaired_value = (
                moved, moved_plan, moved_values, moved_value)
            keeps_locks = moved_wins = True
    return _Repaired(repaired, repaired_plan, repaired_values, repaired_value, keeps_locks, moved_wins)


def _carried_lp(
    backend: MathOptBackend,
    incumbent: _Incumbent,
    model: PlacementModel,
    program: LinearProgram,
    columns: np.ndarray,
    objective: np.ndarray,
    locks: list[tuple[np.ndarray, float]],
    budget: float,
    relative_gap: float,
) -> Outcome | None:
    """The LP of the solve before a refinement (``incumbent.lp``), carried into the finer
    ``model`` (:mod:`.carry`; national-30k's ties level: 0.6 s, where its whole LP took 4.9 s
    again); None where the level must solve its own. A carry slower than a share of the whole
    LP saves little (national-2k-scores: found infeasible after 1.9 s, the whole LP 2.9 s)."""
    coarse, coarse_lp = incumbent.lp
    seconds = budget * LEVEL_LP_SHARE
    expected = backend.expected_lp_seconds(program, locks)
    if expected is not None:
        seconds = min(seconds, CARRY_LP_SHARE * expected)
    return carry_lp(backend, coarse, coarse_lp, model, program, columns, objective, seconds, relative_gap,
                    locks=locks, source="the LP before the refinement", plan_value=incumbent.value)


def _keep_locks(
    model: PlacementModel,
    weighted: list[np.ndarray],
    lock_values: list[float],
    k: int,
    found: pd.Series,
    candidate: np.ndarray,
    objective_value: float,
    moved: pd.Series | None,
) -> tuple[pd.Series, np.ndarray, float]:
    """The concrete plan of level k: cases chosen from counts may honour fewer ties than the
    counts (a lock above); swaps within classes give them back where they can. The plan the
    level's search moved (``moved``, if any) keeps every lock; it wins if the plan from counts
    still breaks one or reaches less. Returns the plan, its values and its level objective."""

    def keeps(v: np.ndarray) -> bool:
        return all(weighted[j] @ v >= lock - 1e-6 for j, lock in enumerate(lock_values))

    counted = values_of(model, found)
    if not keeps(counted):
        swapped = restore_ties(model, found)
        again = values_of(model, swapped)
        log.info("  the cases chosen from counts break a lock above; swaps within classes %s",
                 "mend it" if keeps(again) else "do not mend it")
        if keeps(again):
            found, counted, candidate = swapped, again, again
    if moved is not None:
        values = values_of(model, moved)
        if keeps(values) and (not keeps(counted) or weighted[k] @ values > weighted[k] @ counted + 1e-9):
            return moved, values, float(weighted[k] @ values)
    return found, candidate, objective_value


def _mend_around(
    backend: MathOptBackend,
    model: PlacementModel,
    levels: list[list[str]],
    weighted: list[np.ndarray],
    lock_values: list[float],
    k: int,
    plan: pd.DataFrame,
    taken_out: pd.Index,
    broken: np.ndarray,
    settings: Settings,
    time_limit: float,
) -> tuple[pd.Series, np.ndarray, float] | None:
    """Below the first level, taking cases out for a service capacity costs a level above its
    lock, so that plan cannot start the re-solve. Mend it with a search in the finer model that
    may change only the ``broken`` municipalities (the caller adds those where cases were packed
    back) and those with the most persons' room where the cases ``taken_out`` could go; the rest
    of the plan stays. Also for a ``plan`` that keeps every lock but lost some of this level's
    objective. Returns (assignment, values, level objective) of a concrete plan that keeps every
    capacity and lock, or None."""
    agg = model.agg
    program, columns = model.program([t for level in levels for t in level])
    start = complete_hint(model, hint_from_plan(model, plan))
    y = model.blocks["y"]
    pools = agg.free_cases.loc[taken_out, "pool"].to_numpy()
    unit_cls = model.units["cls"].to_numpy()[model.y_unit]
    takes = np.isin(model.y_unit, pools) | ((model.y_unit >= len(agg.pools)) & np.isin(
        unit_cls, agg.pools["cls"].to_numpy()[pools]))
    persons = np.bincount(model.y_muni, weights=start[y] * model.units["size"].to_numpy()[model.y_unit],
                          minlength=agg.n_municipalities)
    room = agg.persons_left - persons
    near = np.unique(model.y_muni[takes])
    near = near[np.argsort(-room[near], kind="stable")][:MEND_MUNICIPALITIES]
    free = np.zeros(agg.n_municipalities, dtype=bool)
    free[broken] = free[near] = True
    y_in = np.searchsorted(columns, np.arange(y.start, y.stop))
    fixed = ~free[model.y_muni]
    lower, upper = program.lower.copy(), program.upper.copy()
    lower[y_in[fixed]] = upper[y_in[fixed]] = np.rint(start[y][fixed])
    out = backend.solve(program, weighted[k][columns], locks=[(weighted[j][columns], v) for j, v in enumerate(lock_values)],
                        time_limit=time_limit, relative_gap=settings.solver.relative_gap, lower=lower, upper=upper,
                        seed=settings.solver.seed, threads=settings.solver.threads)
    log.info("  mended around %d broken municipalities (%d free): %s %s in %.2fs", len(broken), int(free.sum()),
             out.status, out.objective, out.seconds)
    if out.values is None:
        return None
    counts = expand(out.values, columns, model.n_vars)
    found, still = choose_cases(model, counts)
    if len(still):
        return None
    values = values_of(model, found)
    if not all(weighted[j] @ values >= v - 1e-6 for j, v in enumerate(lock_values)):
        return None
    return found, values, float(weighted[k] @ values)


def too_small_for_a_case(model: PlacementModel, assignment: pd.Series, broken: np.ndarray) -> np.ndarray:
    """Municipalities without service rows where a case that broke a capacity could not go
    even alone: its class has slots there, but a service it broke has less room than the case
    uses. Modelling them all at once keeps such a case out of every one of them; else it moves
    to the next, one re-solve each (a family with three in kindergarten broke ten small
    municipalities in turn on a 150-case round)."""
    agg = model.agg
    out = np.zeros(agg.n_municipalities, dtype=bool)
    at = assignment[assignment.isin(broken)]
    if at.empty:
        return out
    use = services_used_by(agg, at.index)
    over = services_used(agg, at) > agg.services_left + 1e-9  # municipality x service broken
    cls = agg.pools["cls"].to_numpy()[agg.free_cases.loc[at.index, "pool"].to_numpy()]
    coarse = model.y_unit >= len(agg.pools)
    unit_cls = model.units["cls"].to_numpy()[model.y_unit[coarse]]
    reach_muni = model.y_muni[coarse]
    for k, m in enumerate(at.to_numpy(dtype=int)):
        reach = reach_muni[unit_cls == cls[k]]
        out[reach[((agg.services_left[reach] < use[k]) & over[m]).any(axis=1)]] = True
    return out & ~model.fine


def _levels_of_plan(
    settings: Settings, levels: list[LevelResult], terms: dict[str, float], offsets: dict[str, float]
) -> list[LevelResult]:
    """Each level's objective as the final plan achieves it (pinned cases included, scored from
    the input), and its bound shifted by what pins add; a level is optimal when that gap is
    within the setting."""
    out = []
    gap = settings.solver.relative_gap
    for level in levels:
        if level.objective is None:
            out.append(level)
            continue
        weight = settings.objective.weight
        objective = sum(weight(t) * terms.get(t, 0.0) for t in level.terms)
        offset = sum(weight(t) * offsets.get(t, 0.0) for t in level.terms)
        bound = level.bound
        if bound is not None:
            bound += offset
            if objective > bound + BOUND_TOLERANCE * max(1.0, abs(bound)):
                # A plan above the bound disproves it (a solver's wrong proof): claim no gap.
                log.warning("level %s: the plan reaches %s, above the bound %s, which therefore does not "
                            "hold; the level is reported without a bound", "+".join(level.terms), objective, bound)
                bound = None
            else:
                bound = max(bound, objective)  # the input's scoring and the model's differ in the last bits
        status = level.status
        if status == "optimal" and (bound is None or not proven(objective, bound, gap)):
            status = "feasible"
        locked = level.locked + offset if level.locked is not None else None
        out.append(LevelResult(level.terms, status, objective, bound, level.seconds, level.nodes, locked,
                               level.bound_from if bound is not None else ""))
    return out


def _refill(
    model: PlacementModel, values: np.ndarray, totals: np.ndarray, objective: np.ndarray, seed: int
) -> tuple[pd.Series, np.ndarray, float] | None:
    """After cases were taken out for a service capacity, the urgency level's plan with the
    room filled again: the cases the level chose packed (moving others, now with the service
    rows), or else the room left filled with the most urgent cases that fit. Returns the
    better one that keeps every capacity, as (assignment, values, objective), or None."""
    y = values[model.blocks["y"]]
    packing = pack_lp_totals(model, y, totals, time.perf_counter() + PACK_SECONDS, seed)
    best = None
    for plan in (packing.values, round_and_fill(model, y)):
        plan = complete_hint(model, plan)
        found, broken = choose_cases(model, plan)
        value = float(objective @ plan)
        log.info("  refilled after taking cases out: %.4f (%d municipalities broken)", value, len(broken))
        if not len(broken) and (best is None or value > best[2]):
            best = (found, plan, value)
        if packing.complete and best is not None:
            break
    return best


def _refill_ties(
    model: PlacementModel,
    values: np.ndarray,
    totals: np.ndarray,
    weighted: list[np.ndarray],
    lock_values: list[float],
    k: int,
    seed: int,
) -> tuple[pd.Series, np.ndarray, float] | None:
    """After cases were taken out for a service capacity, a ties level's plan with ``totals``
    cases per pool packed again from the repaired counts ``values`` (a full vector), the ties
    they honour kept in place (:func:`.pack.pack_with_ties`), retried with new seeds for up to
    ``PACK_SECONDS``. Returns the first packing whose concrete plan keeps every capacity and
    every lock, as (assignment, values, level-k objective), or None."""
    deadline = time.perf_counter() + PACK_SECONDS
    y, a = values[model.blocks["y"]], values[model.blocks["a"]]
    attempt = 0
    while attempt == 0 or time.perf_counter() < deadline:
        packing = pack_with_ties(model, y, a, totals, deadline, seed + attempt)
        attempt += 1
        if not packing.complete:
            continue
        found, broken = choose_cases(model, complete_hint(model, packing.values))
        if len(broken):
            continue
        plan = values_of(model, found)
        if all(weighted[j] @ plan >= v - 1e-6 for j, v in enumerate(lock_values)):
            value = float(weighted[k] @ plan)
            log.info("  cases taken out packed back with the ties kept: %.0f (try %d)", value, attempt)
            return found, plan, value
    log.info("  cases taken out not packed back in %d tries", attempt)
    return None


def _without_broken_services(model: PlacementModel, assignment: pd.Series) -> pd.Series:
    """Out of time with a plan from a model that counted classes: unplace, per municipality,
    the least urgent cases using a service until its capacity holds. The plan is then valid
    but not proven optimal."""
    agg = model.agg
    if assignment.empty or not agg.problem.services:
        return assignment
    use = services_used_by(agg, assignment.index)
    muni = assignment.to_numpy(dtype=int)
    urgency = agg.free_cases.loc[assignment.index, "urgency"].to_numpy()
    over = -agg.services_left.copy()
    np.add.at(over, muni, use)
    keep = np.ones(len(assignment), dtype=bool)
    for s in range(use.shape[1]):
        for m in np.flatnonzero(over[:, s] > 1e-9):
            users = np.flatnonzero((muni == m) & keep & (use[:, s] > 0))
            for i in users[np.argsort(urgency[users], kind="stable")]:
                if over[m, s] <= 1e-9:
                    break
                keep[i] = False
                over[m] -= use[i]
    return assignment[keep]


def _next_lp_hurried(
    backend: MathOptBackend,
    model: PlacementModel,
    program: LinearProgram,
    priorities: list[list[str]],
    weighted: list[np.ndarray],
    remaining: float,
) -> bool:
    """Whether the second level's LP would not fit its share of the ``remaining`` seconds that
    level 1 leaves after solving its own LP (``program``), both at the pace of the LPs before.
    With the margin of an estimate from below, as level 1 does more than its LP (national-30k:
    rounding, packing and polishing 1.1 s after its LP's 2.5 s). False before any LP is paced."""
    own = backend.expected_lp_seconds(program)
    if own is None:
        return False
    below, columns = model.program([t for level in priorities[:2] for t in level])
    share = NO_LP_SHARE if len(priorities) > 2 else 1.0
    return not level_lp_fits(backend.expected_lp_seconds(below, [(weighted[0][columns], 0.0)]),
                             (remaining - own) * share, moves=True)


def _lock_value(value: float | None) -> float:
    """Keep what this level reached (within float tolerance) while optimising the next."""
    value = value or 0.0
    return value - 1e-7 * max(1.0, abs(value))


def _result(
    problem: Problem,
    settings: Settings,
    model: PlacementModel,
    values: np.ndarray,
    chosen: pd.Series,
    levels: list[LevelResult],
    backend: MathOptBackend,
    started: float,
    build_seconds: float,
) -> Result:
    agg = model.agg
    munis = agg.municipality_ids
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
    terms = plan_terms(problem, plan)
    levels = _levels_of_plan(settings, levels, terms, pinned_offsets(problem))
    unplaced = unplaced_reasons(problem, agg, plan, levels)
    return Result(
        problem=problem,
        settings=settings,
        plan=plan,
        unplaced=unplaced,
        municipalities=municipality_table(problem, plan),
        levels=levels,
        term_values=terms,
        model_sizes=model.sizes(),
        solver=backend.version,
        cp_sat_options=dict(backend.cp_sat_options),
        build_seconds=build_seconds,
        total_seconds=time.perf_counter() - started,
    )

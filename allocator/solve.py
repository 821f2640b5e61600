"""``solve()``: one placement round, optimised level by level, returned as a :class:`Result`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import NamedTuple, TypeVar

import numpy as np
import pandas as pd

from .aggregate import Aggregation, aggregate
from .backend import MathOptBackend, Outcome, Progress, StopFlag, integral_objective
from .carry import carry_lp
from .columns import with_python_text
from .explain import municipality_table, unplaced_reasons
from .extract import choose_cases, choose_dwellings, chosen_cases, over_capacity, services_used, services_used_by
from .fill import round_and_fill
from .pack import lp_pool_totals, pack_lp_totals, pack_with_ties
from .rehouse import mend_services, rehouse, restore_ties
from .tie_search import search_around_ties
from .ties import honour_more_ties, prefer_tied_cases, split_class_ties
from .model import SPREAD_SEGMENTS, LinearProgram, PlacementModel, build_model
from .problem import Problem
from .result import LevelResult, Result
from .same_cases import place_same_cases
from .scoring import pinned_offsets, plan_terms
from .settings import ObjectiveSettings, Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A service is modelled from the start where an average mix filling the resolution would use
#: more than 1/BINDING_MARGIN of its capacity.
BINDING_MARGIN = 1.0
#: After this many refinements, every municipality's services are modelled.
MAX_REFINEMENTS = 3
#: Share of a level's budget, and most seconds, for packing the LP's totals; share of the rest
#: for the search that finishes a stalled packing.
PACK_SHARE, PACK_SECONDS, REPAIR_SHARE = 0.2, 1.0, 0.3
#: The ties packing retries with new seeds for up to this share of the level's time left and
#: this long (the MIP after it is far slower; one try takes 2.5-5.5 s on national-30k, by load,
#: and without a complete try the level keeps the plan above's cases: 1,229 ties, not 1,947).
#: Where the full model will have no time after it, the packing may take the larger share: it
#: is the level's best chance (national-30k with level 1 polished to 122,544.4: a try takes
#: 4.8 s and reaches 1,836 ties of at most 1,878; in a 60 s benchmark run the level's times left
#: the packing about 3.4 s, and it ended at 1,242).
TIES_PACK_SHARE, TIES_PACK_SECONDS, TIES_PACK_ALONE_SHARE = 0.4, 6.0, 0.8
#: Tries the ties packing makes after one that reaches the bound (or gains on the plan above) but
#: breaks a service capacity, and at most in all (a packing that completes did so by the 5th try
#: on national-2k and -5k; a 150-case round made 73 fruitless tries in 3.6 s, where the full
#: model then took 0.6 s).
BREAKING_RETRIES, TIES_PACK_TRIES = 2, 8
#: Share of the ties level's time left for placing the cases of the plan above (its LP, packing
#: and search: national-5k 1.9 s of 12), and where no full model follows (it is then the level's
#: best chance: national-5k in 10 s, skipped for want of time, and the ties packing's six tries
#: and the moves after them reached 225 ties, where the cases above allow 322).
SAME_CASES_SHARE, SAME_CASES_ALONE_SHARE = 0.3, 0.8
#: Share of the ties level's time left for the search around the ties (:mod:`.tie_search`;
#: national-5k: 2.9 s of about 10 s, 320 -> 322 ties, and the full model found the optimum, 323).
TIES_SEARCH_SHARE = 0.3
#: The full model is searched only with at least this many times the LP's time left.
FULL_MODEL_LP_TIMES = 6
#: At most this share of the time limit is kept back for making the last level's plan and the
#: result (a level's own repairs may take longer than that).
FINISH_SHARE = 0.05
#: Share of the remaining time the first level may use; later levels share the rest.
FIRST_LEVEL_SHARE = 0.6
#: Where a level's LP would take at least this share of its time (at the pace of the LPs before,
#: an estimate from below: national-30k's level 3, 6.4 s estimated, 13.5 s taken, of 32 s), the
#: search that moves cases runs beside it. Not where it is short: national-2k's level 3 (1 s of
#: 57 s) ended at -1,930 to -1,948 in seven runs with it, -1,931 to -1,932 in four without, as
#: the plan the search reaches beside the LP leads the full model and the search after it
#: elsewhere.
BESIDE_LP_SHARE = 0.1
#: How much longer than the pace of the LPs before a level's LP may take, where the level has the
#: search that moves cases to use the time without it.
LP_PACE_MARGIN = 1.5
#: Share of a level's time its LP relaxation may take.
LEVEL_LP_SHARE = 0.7
#: A re-solve's carried LP (see :mod:`.carry`) gets this share of the whole LP's expected time.
CARRY_LP_SHARE = 0.3
#: Share of the time limit for the probe's LP. It is the round's first LP, and without an LP
#: level 1 has only the greedy plan: on a machine where national-30k's probe LP takes 2.5-3.2 s,
#: 0.3 of a 10 s limit failed it, level 1's own LP failed as well, and the proposal placed
#: 19,212 cases instead of 26,424.
PROBE_SHARE = 0.6
#: Terms a level may hold for the search that moves the cases of the plan above (moving cases
#: changes nothing else; ties alone are left to the ties moves and the full model, whose bound
#: they need), and the share of the level's time it gets.
REHOUSE_TERMS, REHOUSE_SHARE = {"housing_fit", "spread", "scores", "ties"}, 0.6
#: Share of the time left that the full model gets when that search first stalls. HiGHS needs
#: 13-17 s from the moved plan to prove level 3 of a 400-case round (its root cuts, then a
#: sub-MIP finds the optimum), and a quarter was 10.9-12.6 s: 0 of 6 such rounds proven in
#: 60 s with it, 5 of 6 with half, in 33-38 s.
FULL_MODEL_TRY_SHARE = 0.5
#: Below the first level, a plan broken at a service capacity is mended by a search over the
#: broken municipalities and at most this many others, for this share of the time left (and
#: at most these seconds).
MEND_MUNICIPALITIES, MEND_SHARE, MEND_SECONDS = 40, 0.1, 2.0
#: After that search, the full model gets at most this many times the LP's time (its root).
FULL_MODEL_ROOT_LP_TIMES = 12
#: Share of a scores level's time for the rounding box before the search that moves cases.
SCORES_BOX_SHARE = 0.25
#: With levels to follow, the first level's plan is polished to within this share of the gap.
POLISH_GAP = 0.25
#: CP-SAT's search for a plan that finishes a packing gets at most this many times the level's
#: LP time (national-2k: mostly 0.1-0.4 s, at most 1.7 s, with LPs of 0.3-0.5 s), so that
#: HiGHS's MIP after it has time where it finds nothing within the gap.
FIND_PLAN_LP_TIMES = 3.0
#: Seconds the mending of a plan broken at a service capacity may take where the time limit has
#: passed (a break found at the limit still gets a try; without it, cases are taken out).
MEND_SECONDS_PAST_LIMIT = 0.25
#: How far, relative to the bound, the final plan's value may exceed a level's bound before the
#: bound counts as disproved (the input's scoring and the model's differ in the last bits only).
BOUND_TOLERANCE = 1e-6


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
        if k > 0 and time.perf_counter() >= deadline:
            # Out of time: the plan of the levels above stands; this level is not searched.
            levels.append(LevelResult(names, "out_of_time", None, None, 0.0, 0))
            k += 1
            continue
        if split_later and scored[k]:
            rebuilt = time.perf_counter()
            agg = aggregate(problem)
            model = build_model(agg, fine)
            build_seconds += time.perf_counter() - rebuilt
            values = _values_of(model, assignment)
            split_later = False
            log.info("pools split by scores for level %d: %s", k + 1, model.sizes())
        terms = model.objective_terms()
        weighted = [sum(settings.objective.weight(t) * terms[t] for t in level) for level in priorities]
        hint = _hint_from_plan(model, plan_hint) if plan_hint is not None else None
        remaining = deadline - time.perf_counter() - finish_seconds
        share = FIRST_LEVEL_SHARE if k == 0 and len(priorities) > 1 else 1.0 / (len(priorities) - k)

        def report(best: float | None, bound: float | None, level: int = k) -> None:
            if on_progress is not None:
                on_progress(Progress(level, time.perf_counter() - started, best, bound))

        # Only the rows and variables this level and the locked ones need.
        program, columns = model.program([t for level in priorities[: k + 1] for t in level])
        locks = [(weighted[j][columns], v) for j, v in enumerate(lock_values)]
        score_locks = [settings.objective.weight("scores") * ("scores" in priorities[j])
                       for j in range(len(lock_values))]
        known_bound = incumbent.bound if incumbent is not None and k > 0 and incumbent.plan is not None \
            and incumbent.proven else None
        if incumbent is not None and incumbent.lp is not None and known_bound is None and not any(score_locks):
            # A re-solve after a refinement. Not where the search prices locked scores by the
            # LP's dual values of the locks, which a carried LP's raised bounds would change.
            level_lp = _carried_lp(backend, incumbent, model, program, columns, weighted[k][columns], locks,
                                   max(remaining * share, 0.05), settings.solver.relative_gap)
        else:
            level_lp = _first_lp(backend, probed, model, program, columns, weighted[k][columns], settings,
                                 alone=len(priorities) == 1, budget=max(remaining * share, 0.05))
        solved_lps: list[tuple[PlacementModel, Outcome]] = []  # this solve's LP, as a full vector
        outcome = solve_level(
            backend, model, program, columns, weighted[k][columns],
            locks=locks, score_locks=score_locks,
            budget=max(remaining * share, 0.05), settings=settings,
            hint=complete_hint(model, hint)[columns] if hint is not None else None,
            stop=stop, on_log=report if on_progress is not None else None,
            terms=names,
            lp=level_lp,
            fill=names == ["urgency"] and k == 0,
            # The levels below are locked to this plan's urgency: with them to follow, the first
            # level goes on from a plan within the gap towards the bound (national-30k: 122,535.5
            # -> 122,544.4 of 122,544.9; level 3's gap 3.8% -> 1.3%, as the LP below can no
            # longer choose other cases with the urgency left over).
            polish=names == ["urgency"] and k == 0 and len(priorities) > 1,
            ties="ties" in names,
            # Not on a re-solve after a refinement: its start is the moved plan already, and the
            # MIPs make better use of what time is left (national-1k: -849.7 with the search
            # again, the optimum -774.9 without).
            # A ties level's first solve stops before the search when its packing breaks a
            # service capacity, so its re-solve does search.
            plan=_assignment_of(agg, plan_hint)
            if k > 0 and plan_hint is not None and _moves_cases(names, problem.has_scores)
            and (incumbent is None or "ties" in names)
            else None,
            # A re-solve below the first level whose plan before was proven, in a coarser model,
            # starts from the repaired plan with the bound before.
            known_bound=known_bound,
            on_lp=lambda lp, m=model, c=columns: solved_lps.append(
                (m, replace(lp, values=_expand(lp.values, c, m.n_vars)))),
        )
        probed = None  # a re-solve (after a refinement) carries this solve's LP instead
        searched = time.perf_counter()
        if k == 0 and outcome.bound is None and probe_bound is not None:
            # The level's own LP was not solved in its time (national-5k in 1 s): the probe's holds.
            outcome = replace(outcome, bound=probe_bound)
        log.info("level %d %s: %s objective=%s bound=%s in %.2fs (%d variables, %d rows)", k + 1, names,
                 outcome.status, outcome.objective, outcome.bound, outcome.seconds, program.n_vars,
                 program.matrix.shape[0])
        if outcome.status == "infeasible":
            raise RuntimeError("the pins cannot all be housed: no plan keeps every pin")
        objective_value, bound, status = outcome.objective, outcome.bound, outcome.status
        candidate = None
        if outcome.values is not None:
            candidate = _expand(outcome.values, columns, model.n_vars)
        before = None  # on a re-solve: the solve before's repaired plan, which keeps every rule and lock
        kept_wins = False
        if incumbent is not None:
            # A re-solve after a refinement: keep the better of its plan and the repaired plan of
            # the solve before; both bounds hold for the problem, so the lower one stands (the
            # model before was a relaxation too: national-10k-scores, level 2's third solve had
            # no time for its LP, and the bound of the first two stands).
            kept_plan, kept_bound = incumbent.plan, incumbent.bound
            bounds = [b for b in (bound, kept_bound) if b is not None]
            bound = min(bounds) if bounds else None
            kept = complete_hint(model, _hint_from_plan(model, kept_plan)) if kept_plan is not None else None
            kept_value = float(weighted[k] @ kept) if kept is not None else -np.inf
            before = kept_plan
            if kept is not None and (candidate is None or objective_value < kept_value):
                candidate, objective_value = kept, kept_value
                kept_wins = True
            if candidate is not None and status != "optimal":
                status = _status(objective_value, bound, settings.solver.relative_gap)
            incumbent = None
        if candidate is None:
            levels.append(LevelResult(names, outcome.status, None, bound, spent + outcome.seconds,
                                      outcome.nodes))
            spent = 0.0
            k += 1
            continue
        checked = time.perf_counter()
        y_block = model.blocks["y"]
        mended = None  # the plan broken at a service capacity, mended by moving its cases
        if kept_wins:
            # The plan kept from the solve before, as it was (the counts of a concrete plan may
            # choose other cases, which might break a capacity).
            found = _assignment_of(agg, before)
            broken = over_capacity(agg, found)
        elif outcome.plan is not None and np.array_equal(
                np.rint(_values_of(model, outcome.plan)[y_block]),
                np.rint(candidate[y_block])):
            # The level's plan is the concrete plan its search moved (every rule checked per case).
            found = outcome.plan
            broken = over_capacity(agg, found)
        else:
            found, broken = choose_cases(model, candidate)
            mended = _mended(model, found, broken, settings, names, deadline, backend) if len(broken) else None
            if mended is not None:
                # The same cases, moved where every capacity holds: every lock holds, and the
                # value is mostly the counts' (national-2k, level 3: -1,941.4 as the counts).
                # Proven, it is the answer: no refinement, no refill (national-2k seed 0,
                # urgency alone: the break took 0.34 s after the level's search, not 0.53 s).
                mended_values = _values_of(model, mended)
                mended_value = float(weighted[k] @ mended_values)
                if bound is not None and _proven(mended_value, bound, settings.solver.relative_gap) \
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
            repaired = _without_broken_services(model, found)
            repaired_plan = _plan_frame(agg, repaired)
            chosen_totals = lp_pool_totals(model, candidate)  # per pool: the same in every model
            fine = fine.copy()
            fine[broken] = True
            refinements += 1
            if refinements > MAX_REFINEMENTS:
                fine[:] = True  # stop chasing: model every service everywhere
            else:
                # Not also those the plan fills near a capacity: on national-5k that modelled 149
                # municipalities for one broken one (5k-scores: 100k variables, not 56k, and the
                # ties level at 17% instead of 2.6%), and no re-solve was saved.
                fine |= too_small_for_a_case(model, found, broken)
            rebuilt = time.perf_counter()
            model = build_model(agg, fine)
            build_seconds += time.perf_counter() - rebuilt
            terms = model.objective_terms()
            weighted = [sum(settings.objective.weight(t) * terms[t] for t in level) for level in priorities]
            repaired_values = complete_hint(model, _hint_from_plan(model, repaired_plan))
            repaired_value = float(weighted[k] @ repaired_values)
            if names == ["urgency"] and k == 0:
                better = _refill(model, repaired_values, chosen_totals, weighted[k], settings.solver.seed)
                if better is not None and better[2] > repaired_value:
                    repaired, repaired_values, repaired_value = better
                    repaired_plan = _plan_frame(agg, repaired)
            # Taking cases out may cost a level above: then the repaired plan is no answer here.
            keeps_locks = all(weighted[j] @ repaired_values >= v - 1e-6 for j, v in enumerate(lock_values))
            if mended is not None:
                # Not proven: a candidate for the plan that starts the re-solve.
                mended_values = _values_of(model, mended)
                mended_value = float(weighted[k] @ mended_values)
                if all(weighted[j] @ mended_values >= v - 1e-6 for j, v in enumerate(lock_values)) \
                        and (not keeps_locks or mended_value > repaired_value):
                    repaired, repaired_values, repaired_value = mended, mended_values, mended_value
                    repaired_plan = _plan_frame(agg, repaired)
                    keeps_locks = True
            if "ties" in names:
                # The cases taken out (national-5k: one family of 8 at a municipality with two
                # kindergarten places) packed back in, now with the service rows, and every tie the
                # plan honours kept: most of the packing survives the refinement.
                better = _refill_ties(model, repaired_values, chosen_totals, weighted, lock_values, k,
                                      settings.solver.seed)
                if better is not None and (not keeps_locks or better[2] > repaired_value):
                    repaired, repaired_values, repaired_value = better
                    repaired_plan = _plan_frame(agg, repaired)
                    keeps_locks = True
            if before is not None:
                # A second re-solve: the plan repaired after the first may be the better one (400
                # cases with scores, level 2: 286.386 repaired, then 286.441 broke a capacity and
                # its re-solve ended at 286.218).
                before_values = complete_hint(model, _hint_from_plan(model, before))
                before_value = float(weighted[k] @ before_values)
                if not keeps_locks or before_value > repaired_value:
                    log.info("  the plan repaired before kept: %.4f (repaired now: %.4f)", before_value,
                             repaired_value)
                    repaired, repaired_plan = _assignment_of(agg, before), before
                    repaired_values, repaired_value, keeps_locks = before_values, before_value, True
            moved_wins = False
            # Also where the broken plan was proven and the repaired one, keeping every lock,
            # falls short of it (400 cases with scores, level 2: the full model's 286.514 broke a
            # service; the cases taken out packed back, the re-solve ended at 286.23; mended in
            # 0.2 s, 286.40).
            gap = settings.solver.relative_gap
            short = keeps_locks and _proven(objective_value, bound, gap) \
                and not _proven(repaired_value, objective_value, gap)
            if (not keeps_locks or short) and k > 0 and time.perf_counter() < deadline - 1.0:
                # Free where cases were taken out or packed back in.
                changed = found.index[found.ne(repaired.reindex(found.index))]
                packed_at = repaired.reindex(changed).dropna().to_numpy(dtype=int)
                mended = _mend_around(backend, model, priorities[: k + 1], weighted, lock_values, k,
                                      repaired_plan, changed, np.union1d(broken, packed_at), settings,
                                      min((deadline - time.perf_counter()) * MEND_SHARE, MEND_SECONDS))
                if mended is not None and (not keeps_locks or mended[2] > repaired_value):
                    repaired, repaired_values, repaired_value = mended
                    repaired_plan = _plan_frame(agg, repaired)
                    keeps_locks = True
            if outcome.plan is not None:
                # The level's search moved concrete cases (every rule kept): a plan that keeps
                # every lock, and the start of the re-solve if it is the better one.
                moved_plan = _plan_frame(agg, outcome.plan)
                moved_values = complete_hint(model, _hint_from_plan(model, moved_plan))
                moved_value = float(weighted[k] @ moved_values)
                if all(weighted[j] @ moved_values >= v - 1e-6 for j, v in enumerate(lock_values)) \
                        and (not keeps_locks or moved_value > repaired_value):
                    repaired, repaired_plan, repaired_values, repaired_value = (
                        outcome.plan, moved_plan, moved_values, moved_value)
                    keeps_locks = moved_wins = True
            good_enough = keeps_locks and bound is not None and _proven(repaired_value, bound,
                                                                         settings.solver.relative_gap)
            out_of_time = time.perf_counter() >= deadline - 0.5 or (stop is not None and stop.stopped)
            log.info("class counts broke service capacities in %d municipalities; modelling them (now %d); "
                     "the repaired plan %.4f%s", len(broken), int(fine.sum()), repaired_value,
                     "" if good_enough or out_of_time else f"; solving level {k + 1} again")
            if not (good_enough or out_of_time):
                if keeps_locks:
                    plan_hint = repaired_plan
                else:
                    log.info("  the repaired plan misses a lock: only the bound is kept for the re-solve")
                incumbent = _Incumbent(repaired_plan if keeps_locks else None, bound, status == "optimal",
                                       solved_lps[-1] if solved_lps else None,
                                       repaired_value if keeps_locks else None)
                continue
            # Out of time, the plan this level started from (the level above's, or on a re-solve
            # the valid plan kept from the solve before) keeps every lock; the repaired plan is
            # the answer where it keeps them too and does better (national-2k seed 3, ties: 110
            # against the 10 of the plan above).
            started_from = None if good_enough or k == 0 or moved_wins \
                else complete_hint(model, _hint_from_plan(model, plan_hint))
            if started_from is None or (keeps_locks and repaired_value > float(weighted[k] @ started_from)):
                found, candidate, objective_value = repaired, repaired_values, repaired_value
                status = "optimal" if good_enough else "feasible"
            else:
                found, candidate = _assignment_of(agg, plan_hint), started_from
                objective_value = float(weighted[k] @ candidate)
                status = "feasible"
        values, assignment = candidate, found
        plan_hint = _plan_frame(agg, assignment)
        # Lock what the concrete plan achieves (its cases may honour a tie or two fewer than
        # the counts), so that this plan is always a start the next level can keep.
        reached = min(objective_value, float(weighted[k] @ complete_hint(model, _hint_from_plan(model, plan_hint))))
        levels.append(LevelResult(names, status, objective_value, bound, spent, outcome.nodes, locked=reached))
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

    counted = _values_of(model, found)
    if not keeps(counted):
        swapped = restore_ties(model, found)
        again = _values_of(model, swapped)
        log.info("  the cases chosen from counts break a lock above; swaps within classes %s",
                 "mend it" if keeps(again) else "do not mend it")
        if keeps(again):
            found, counted, candidate = swapped, again, again
    if moved is not None:
        values = _values_of(model, moved)
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
    start = complete_hint(model, _hint_from_plan(model, plan))
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
    counts = _expand(out.values, columns, model.n_vars)
    found, still = choose_cases(model, counts)
    if len(still):
        return None
    values = _values_of(model, found)
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
        if status == "optimal" and (bound is None or not _proven(objective, bound, gap)):
            status = "feasible"
        locked = level.locked + offset if level.locked is not None else None
        out.append(LevelResult(level.terms, status, objective, bound, level.seconds, level.nodes, locked))
    return out


def _assignment_of(agg: Aggregation, plan: pd.DataFrame) -> pd.Series:
    """A plan frame (case_id, municipality_id) as free case_id -> municipality number."""
    plan = plan[plan["case_id"].isin(agg.free_cases.index)]
    return pd.Series(pd.Index(agg.municipality_ids).get_indexer(plan["municipality_id"]),
                     index=plan["case_id"].to_numpy(), dtype=int)


def _values_of(model: PlacementModel, assignment: pd.Series) -> np.ndarray:
    """A concrete plan (free case_id -> municipality number) as a complete vector of the model."""
    return complete_hint(model, _hint_from_plan(model, _plan_frame(model.agg, assignment)))


def _plan_frame(agg: Aggregation, assignment: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"case_id": assignment.index,
                         "municipality_id": agg.municipality_ids[assignment.to_numpy(dtype=int)]})


def _first_lp(
    backend: MathOptBackend,
    probed: tuple[PlacementModel, Outcome] | None,
    model: PlacementModel,
    program: LinearProgram,
    columns: np.ndarray,
    objective: np.ndarray,
    settings: Settings,
    *,
    alone: bool,
    budget: float,
) -> Outcome | None:
    """The first level's LP as the probe left it: solved on this model already (the same LP),
    or carried into it from the probe's model (national-2k: 0.2-0.3 s saved, 2 s on
    national-30k); None if the level must solve its own.

    The carry is used with urgency ``alone``. With levels to follow, only when the level's own
    LP is not expected to finish in its share of the ``budget``: the levels below start from
    level 1's plan, and the carried LP's vertex leads to other plans of the same urgency. The
    ties level no longer minds (it places the plan's cases first: national-5k 320 of 323 ties
    with the carry, 321 without), but ties with scores do: national-5k-scores, level 2 at 2,429
    of at most 2,609 with it, 2,573 without (the packing from its LP fails). Without an LP,
    though, level 1 has only the greedy plan."""
    if probed is None:
        return None
    coarse, lp = probed
    if coarse is model:  # the same LP
        return replace(lp, values=lp.values[columns], detail="the probe's LP, on this model")
    if not alone:
        expected = backend.expected_lp_seconds(program)
        if expected is None or expected <= budget * LEVEL_LP_SHARE:
            return None
        log.info("  level 1's own LP needs about %.1fs of %.1fs left: the probe's LP carried", expected, budget)
    # At least a second, even past the limit: without this LP, level 1 has only the greedy plan
    # (national-5k, urgency alone, in 1 s: 3,226 cases placed instead of 4,434).
    return carry_lp(backend, coarse, lp, model, program, columns, objective,
                    max(budget * LEVEL_LP_SHARE, 1.0), settings.solver.relative_gap)


@dataclass(frozen=True)
class Probe:
    """What the first level's LP over the model with the fewest service rows showed."""

    more: np.ndarray  # municipalities where it would come near a service capacity
    lp: Outcome | None  # that LP, when solved to optimality, with ``values`` a full vector


def probe_services(
    model: PlacementModel, backend: MathOptBackend, terms: list[str], settings: Settings,
    stop: StopFlag | None = None,
) -> Probe:
    """Municipalities without service rows where the first level's LP would fill a service's
    capacity, if its class slots held cases of the average
    service use of the cases the LP chooses from each class. Modelling them before any search
    saves most re-solves."""
    agg = model.agg
    program, columns = model.program(terms)
    objective = sum(settings.objective.weight(t) * model.objective_terms()[t] for t in terms)[columns]
    lp = backend.solve(program, objective, time_limit=max(settings.solver.time_limit * PROBE_SHARE, 1.0),
                       relative_gap=0.0, relax=True, stop=stop)
    probed = np.zeros(agg.n_municipalities, dtype=bool)
    if lp.values is None:
        return Probe(probed, None)
    values = _expand(lp.values, columns, model.n_vars)
    solved = replace(lp, values=values) if lp.status == "optimal" else None
    chosen = chosen_cases(model, values)
    if chosen.empty:
        return Probe(probed, solved)
    problem = agg.problem
    y = values[model.blocks["y"]]
    coarse = model.y_unit >= len(agg.pools)
    cls = model.units["cls"].to_numpy()[model.y_unit[coarse]]
    for s, service in enumerate(problem.services):
        use = problem.cases.loc[chosen.index, f"use_{service}"].groupby(chosen["cls"].to_numpy()).mean()
        per_case = use.reindex(range(len(agg.classes))).fillna(0).to_numpy()[cls]
        expected = np.bincount(model.y_muni[coarse], weights=y[coarse] * per_case, minlength=agg.n_municipalities)
        probed |= (expected > 0) & (expected >= agg.services_left[:, s]) & ~model.fine
    return Probe(probed, solved)


def likely_binding_services(agg: Aggregation) -> np.ndarray:
    """Municipalities whose service capacities are modelled from the start: those where an
    average mix of cases filling the resolution would come near a capacity.
    Elsewhere classes are counted; a plan that breaks a capacity there makes the municipality
    modelled and the round solved again, so the answer is exact either way."""
    problem = agg.problem
    fine = np.zeros(agg.n_municipalities, dtype=bool)
    cases = problem.cases.loc[agg.free_cases.index]
    persons = max(int(cases["size"].sum()), 1)
    for s, service in enumerate(problem.services):
        share = cases[f"use_{service}"].sum() / persons
        fine |= agg.services_left[:, s] < BINDING_MARGIN * share * agg.persons_left
    return fine


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
        plan = _values_of(model, found)
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
    fill: bool = False,
    ties: bool = False,
    plan: pd.Series | None = None,
    polish: bool = False,
    terms: Sequence[str] = (),
    lp: Outcome | None = None,
    score_locks: Sequence[float] = (),
    known_bound: float | None = None,
    on_lp: Callable[[Outcome], None] | None = None,
) -> Outcome:
    """One level over ``program`` (the model's ``columns``): LP bound, rounding, then search.

    1. The LP relaxation bounds the level (a valid bound for the full model; ``lp``, when the
       probe solved it already, see :mod:`.carry`). On the urgency
       level, its counts rounded down and filled greedily, or the cases it chose packed
       (:mod:`.pack`, finished by a search where the packing stalls), may already be within
       the gap of that bound.
    2. A MIP in the box around the LP optimum (every pair keeps its rounded-down count and may
       only grow into the capacity that rounding down left) finds a strong plan fast. It stops
       as soon as a plan is within the relative gap of the LP bound: the level is then proven.
    3. Otherwise the full MIP, started from the best plan, improves plan and bound for the rest
       of the budget. The level's bound is the better of the LP's and the full MIP's.

    With ``polish`` (the urgency level when levels follow: they are locked to this level's plan),
    a rounded plan within the gap is not the answer yet: the LP's cases are packed, and a plan
    within a quarter of the gap, or failing that the best within the gap, is.

    ``plan`` (the concrete plan of the level above, case_id -> municipality number) is given on
    a level whose ``terms`` (housing fit, spread, scores, ties) only depend on where the chosen
    cases go: before the MIPs, a search moves its cases between municipalities
    (:mod:`.rehouse`), which keeps every lock; if it wins, the returned ``Outcome.plan`` is that
    concrete plan. ``score_locks`` is the weight of the supplied scores in each lock: with the
    LP's dual values of the locks, it prices the locked scores for that search.

    ``known_bound`` (a re-solve after a refinement, whose plan before was proven in the coarser
    model) holds for this level already: the full model starts at once from ``hint``, the
    repaired plan, if its root fits in the time.

    ``on_lp`` is called with the level's LP relaxation (values over ``columns``) once solved.
    """
    started = time.perf_counter()
    gap = settings.solver.relative_gap
    common = dict(locks=locks, seed=settings.solver.seed, threads=settings.solver.threads, stop=stop)

    def left() -> float:
        return max(budget - (time.perf_counter() - started), 0.05)

    if not objective.any():
        values = hint if hint is not None else np.zeros(program.n_vars)
        return Outcome("optimal", values, 0.0, 0.0, 0.0, 0, "nothing to optimise")
    if known_bound is not None and hint is not None:
        straight = _full_model_from_repair(backend, program, objective, hint, known_bound, left(), gap, on_log,
                                           common)
        if straight is not None:
            return replace(straight, seconds=time.perf_counter() - started)
    lp_skipped = False
    if lp is None:
        expected = backend.expected_lp_seconds(program, locks)
        # An LP that cannot finish in its time only takes it from the search without an LP
        # (national-30k-scores in 10 s: level 2's LP failed after 1.3 s, and the ties moves ran
        # out of time at 13,462 instead of 13,847).
        # Where the search that moves cases can use the time without it, an LP that may just
        # not finish is skipped: the pace is an estimate from below (national-10k, 10 s: level
        # 3's LP, 2.5 s expected with 3.7 s left, failed at its limit).
        margin = LP_PACE_MARGIN if plan is not None else 1.0

        def level_lp() -> Outcome:
            return backend.solve(program, objective, time_limit=left() * LEVEL_LP_SHARE, relative_gap=0.0,
                                 relax=True, **common)

        lp_skipped = expected is not None and left() * LEVEL_LP_SHARE < expected * margin
        if lp_skipped:
            log.info("  LP relaxation skipped: about %.1fs needed, %.1fs left", expected, left())
            lp = Outcome("no_solution", None, None, None, 0.0, 0, "no time for the LP")
        elif plan is not None and hint is not None and not ties and settings.solver.threads > 1 \
                and expected is not None and expected >= BESIDE_LP_SHARE * left():
            # The search that moves cases needs no LP to start: where the LP takes a good part
            # of the level's time, the search runs beside it, on the threads it leaves, and the
            # search the LP guides goes on from its plan (national-30k, 60 s: level 3's LP takes
            # 13.5 s of 30 s). Not with one thread: a round solved again with one gives the same
            # plan where the search stalls in its time.
            log.info("  the search moves cases beside the LP (about %.1fs of %.1fs)", expected, left())
            lp, moved = _lp_beside_search(
                level_lp,
                lambda done: _rehouse(model, columns, objective, None, plan, hint, locks, None, gap,
                                      settings.with_overrides(solver__threads=max(settings.solver.threads - 1, 1)),
                                      started + budget, list(terms), done),
                stop)
            if moved is not None:
                plan, hint = moved
        else:
            lp = level_lp()
    if lp.status != "optimal" or lp.values is None:
        if not lp_skipped:
            log.info("  LP relaxation not solved (%s) in %.2fs", lp.status, lp.seconds)
        if fill and hint is None:
            # No LP in time: the most urgent cases, greedily, are still a plan.
            y_in = np.searchsorted(columns, np.arange(model.blocks["y"].start, model.blocks["y"].stop))
            hint = complete_hint(model, round_and_fill(model, np.zeros(len(y_in))))[columns]
        if ties and hint is not None and not (stop is not None and stop.stopped):
            # The ties moves need no LP (national-30k in 10 s: level 2 369 -> 1,257 ties).
            hint = _move_ties(model, columns, objective, hint, locks, time.perf_counter() + left())
            plan = _concrete(model, columns, hint) if plan is not None else None
        if plan is not None and hint is not None and not (stop is not None and stop.stopped):
            # The search that moves cases needs no LP either, and the full model would not get
            # through its root (national-30k-scores, level 2: 166k columns, no LP in 18 s).
            rehoused = _rehouse(model, columns, objective, None, plan, hint, locks, None, gap, settings,
                                time.perf_counter() + left(), list(terms), stop)
            if rehoused is not None:
                return Outcome("feasible", rehoused[1], float(objective @ rehoused[1]), None,
                               time.perf_counter() - started, 0, "cases moved; no LP in time", plan=rehoused[0])
        if lp_skipped and hint is not None:
            # The full model would not get through its root LP either.
            return Outcome("feasible", hint, float(objective @ hint), None, time.perf_counter() - started, 0,
                           "no time for the LP; the plan of the level above, moved where it could be")
        full = backend.solve(program, objective, time_limit=left(), relative_gap=gap, hint=hint, on_log=on_log, **common)
        if full.values is None and hint is not None:
            return Outcome("feasible", hint, float(objective @ hint), full.bound, time.perf_counter() - started,
                           full.nodes, "kept the plan of the level above")
        return full
    if on_lp is not None:
        on_lp(lp)
    bound = lp.objective
    log.info("  LP relaxation %.4f in %.2fs%s", bound, lp.seconds,
             f" ({lp.detail})" if "carried" in lp.detail or lp.detail.startswith("the probe") else "")
    integral = integral_objective(program.integer, objective)  # every plan's value is a whole number
    if integral:
        bound = float(np.floor(bound + 1e-6))

    y_in = np.searchsorted(columns, np.arange(model.blocks["y"].start, model.blocks["y"].stop))
    to_full_model = False  # straight to the full model from the packing's search
    if fill:
        filled = complete_hint(model, round_and_fill(model, lp.values[y_in]))[columns]
        value = float(objective @ filled)
        log.info("  rounded and filled: %.4f", value)
        if _proven(value, bound, gap) and not polish:
            return Outcome("optimal", filled, value, bound, time.perf_counter() - started, 0,
                           "rounded LP plan within the gap of the LP bound")
        if hint is None or float(objective @ hint) < value:
            hint = filled
        lp_full = _expand(lp.values, columns, model.n_vars)
        totals = lp_pool_totals(model, lp_full)
        if totals.any():
            # Placing the cases the LP chose reaches the LP bound (less what it chose in part).
            packing = pack_lp_totals(model, lp.values[y_in], totals,
                                     time.perf_counter() + min(left() * PACK_SHARE, PACK_SECONDS),
                                     settings.solver.seed)
            packed = complete_hint(model, packing.values)[columns]
            value = float(objective @ packed)
            log.info("  LP totals %s: %.4f", "packed" if packing.complete else "partly packed", value)
            if _proven(value, bound, gap * POLISH_GAP if polish else gap):
                return Outcome("optimal", packed, value, bound, time.perf_counter() - started, 0,
                               "the LP's cases packed: a plan at the LP bound")
            if float(objective @ hint) < value:
                hint = packed
            # Not at the bound: finish by a search where the packing stalled or where the LP
            # chose part of a case; the rest of the plan stays.
            def around_packing(near: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                """Bounds that fix every count outside the municipalities ``near`` at the packing's."""
                lower, upper = program.lower.copy(), program.upper.copy()
                fixed = ~near[model.y_muni]
                lower[y_in[fixed]] = upper[y_in[fixed]] = np.rint(packing.values[model.blocks["y"]][fixed])
                return lower, upper

            # Where the packing placed every case the LP chose and CP-SAT finds no plan at the LP
            # bound near it, the LP bound itself is mostly what is wrong: on 6 of 48 national-1k
            # rounds it sat 0.03-0.23% above the optimum, which the packing had reached on 5, and
            # only the full model's root cuts proved it (0.3-0.4 s; 1.1 s where it also found the
            # optimum); HiGHS's search of the neighbourhood and the rounding box found nothing
            # better in 0.4-0.7 s first. So the full model comes next where its root fits the
            # time. Not after a packing that stalled: there the rounding box may reach the bound
            # (national-2k seed 38: in 1.6 s, the full model in 5.7 s). But a packing that stalled
            # below the rounded plan is no start for a search around it: on 2 of 48 national-1k
            # rounds, where the LP split families of eight and nine, it stalled with more cases
            # waiting than at its start (3,728 and 3,870 against 4,234 and 4,277 rounded), its
            # neighbourhood held 259-270 of the 357 municipalities, and CP-SAT found nothing there
            # in 0.6 s. The full model from the rounded plan then (seed 2: 4.5 s -> 2.5 s).
            root_fits = left() >= FULL_MODEL_ROOT_LP_TIMES * lp.seconds
            below_rounded = not packing.complete and value < float(objective @ filled)
            to_full_model = not polish and (packing.complete or below_rounded) and root_fits
            if to_full_model and below_rounded:
                log.info("  packing stalled below the rounded plan: the full model from the rounded plan")
            else:
                # After a complete packing, where the LP chose part of a case, a second search with
                # more municipalities for those pools may place it whole (national-2k, 64 rounds
                # packed with 4 seeds each: on 5 of the 256 the first search found no plan at the
                # LP bound and the full model took 3.4-6.0 s; the second found it on all 5, the
                # level in 0.8-1.2 s). Where the wider neighbourhood adds no municipality it is not
                # searched (national-1k: there the LP bound is what is wrong, as above).
                searches = [packing.neighbourhood] + ([packing.wider] if packing.wider is not None else [])
                start = packed
                for i, near in enumerate(searches):
                    repair = _finish_packing(backend, program, objective, start, *around_packing(near), bound, gap,
                                             lambda: left() * REPAIR_SHARE, FIND_PLAN_LP_TIMES * lp.seconds,
                                             on_log, common, polish=polish,
                                             search=not to_full_model and i == len(searches) - 1)
                    log.info("  packing finished by a search in %d municipalities: %s %s in %.2fs (%s)",
                             int(near.sum()), repair.status, repair.objective, repair.seconds, repair.detail)
                    if repair.values is not None and _proven(repair.objective, bound, gap):
                        return Outcome("optimal", repair.values, repair.objective, bound,
                                       time.perf_counter() - started, repair.nodes,
                                       "the LP's cases packed with a search where packing stalled")
                    if repair.values is not None and repair.objective > float(objective @ start):
                        start = repair.values
                if float(objective @ start) > float(objective @ hint):
                    hint = start
        if polish and _proven(float(objective @ hint), bound, gap):
            # The best of the rounded, packed and searched plans, within the gap: proven.
            return Outcome("optimal", hint, float(objective @ hint), bound, time.perf_counter() - started, 0,
                           "the best plan within the gap of the LP bound, polished for the levels below")
    if ties and hint is not None:
        # With ties alone, first the cases of the plan above placed for this level: they keep
        # every lock as they are, and their own LP's counts fit them (national-5k seed 4: 306
        # ties of at most 306, where the packings from the level's LP failed and the moves after
        # them reached 229). With scores, their placements broke a service capacity at every
        # refinement (national-2k-scores: three more LPs, level 2 at 0.97% instead of 0.63%), and
        # the search that moves cases does better. Then the packing from the level's LP, which
        # may choose other cases within the locks.
        def alone() -> bool:
            return left() < FULL_MODEL_LP_TIMES * lp.seconds  # no full model after it

        def packing_seconds() -> float:
            return min(left() * (TIES_PACK_ALONE_SHARE if alone() else TIES_PACK_SHARE), TIES_PACK_SECONDS)

        placements = [
            ("cases packed with the LP's ties", lambda: _pack_ties(
                model, columns, lp.values, hint, locks, time.perf_counter() + packing_seconds(),
                settings.solver.seed, objective, bound - gap * max(abs(bound), 1e-9), stop)),
        ]
        if integral:
            placements.insert(0, ("the cases above placed", lambda: _same_cases(
                backend, model, program, columns, objective, hint, locks, settings,
                time.perf_counter() + left() * (SAME_CASES_ALONE_SHARE if alone() else SAME_CASES_SHARE), stop)))
        for what, place in placements:
            tied, breaks = place()
            if tied is None:
                continue
            value = float(objective @ tied)
            log.info("  %s: %.0f -> %.0f%s", what, float(objective @ hint), value,
                     " (breaks a service capacity)" if breaks else "")
            if breaks and value > float(objective @ hint):
                # Searching on in a model that misses a binding capacity is wasted: the caller
                # models it and solves the level again.
                return Outcome("feasible", tied, value, bound, time.perf_counter() - started, 0,
                               f"{what}; a service capacity to model")
            if _proven(value, bound, gap):
                return Outcome("optimal", tied, value, bound, time.perf_counter() - started, 0,
                               f"{what}: a plan at the LP bound")
            if value > float(objective @ hint):
                hint = tied
        hint = _move_ties(model, columns, objective, hint, locks, time.perf_counter() + left())
        value = float(objective @ hint)
        if _proven(value, bound, gap):
            return Outcome("optimal", hint, value, bound, time.perf_counter() - started, 0,
                           "ties moved into place: a plan at the LP bound")
        if integral and left() >= FULL_MODEL_LP_TIMES * lp.seconds and not (stop is not None and stop.stopped):
            # Ties alone, with time for the full model after it (which the plan found starts,
            # and whose root cuts mostly prove it): the chains of moves the moves above miss.
            searched, breaks = _search_ties(backend, model, program, columns, objective, lp.values, hint, locks,
                                            bound, left() * TIES_SEARCH_SHARE, settings.solver.seed, stop)
            if breaks:
                # As after a packing that breaks one: the caller models it and solves again
                # (national-5k seed 3: 298 -> 301 ties, the optimum, which broke a service capacity
                # in one municipality; solved again, the full model proved 301 in 4.6 s).
                return Outcome("feasible", searched, float(objective @ searched), bound, time.perf_counter() - started,
                               0, "the search around the ties; a service capacity to model")
            if searched is not None:
                hint = searched
            value = float(objective @ hint)
            if _proven(value, bound, gap):
                return Outcome("optimal", hint, value, bound, time.perf_counter() - started, 0,
                               "ties found by a search around them: a plan at the LP bound")
    def rounding_box(share: float) -> Outcome:
        lower, upper = program.lower.copy(), program.upper.copy()
        keep = np.rint(hint[y_in]) if hint is not None else None
        lower[y_in], upper[y_in] = model.rounding_box(lp.values[y_in], keep)
        local = backend.solve(program, objective, time_limit=left() * share, relative_gap=gap / 4, hint=hint,
                              lower=lower, upper=upper, absolute_gap=gap * abs(bound), on_log=on_log, **common)
        log.info("  rounding box: %s %s in %.2fs (%d free pairs)", local.status, local.objective, local.seconds,
                 int((upper[y_in] > lower[y_in]).sum()))
        return local

    rehoused = None
    box = None
    box_start = hint
    # What a unit of locked scores is worth here, by the LP: the search may then trade scores
    # between its steps (national-1k-scores, level 3: about 17 bedrooms or spread units).
    score_price = float(np.abs(lp.lock_duals) @ np.asarray(score_locks, dtype=float)) \
        if lp.lock_duals is not None and len(score_locks) == len(lp.lock_duals) else 0.0
    # The search that moves cases hands over what the full model after it needs.
    handover = FULL_MODEL_LP_TIMES * lp.seconds
    if score_price:
        log.info("  locked scores priced at %.3f a unit (the LP's dual values of the locks)", score_price)
    searching = plan is not None and hint is not None and not (stop is not None and stop.stopped)
    if searching and "scores" in terms:
        # Scores priced: the rounding box first, for a share of the time (on small rounds it is
        # within a tenth of a percent in a second, which the search is not; on national-2k-scores
        # it took 14 s for a gain of 0.5 where the search gains 22), then the search moves the
        # cases of the better plan.
        box = rounding_box(SCORES_BOX_SHARE)
        if box.values is not None and _proven(box.objective, bound, gap):
            return Outcome("optimal", box.values, box.objective, bound, time.perf_counter() - started, box.nodes,
                           "rounding box within the gap of the LP bound")
        if box.values is not None and box.objective > float(objective @ hint):
            hint = box.values
    if searching and (ties or hint is not box_start):
        # The search moves the cases of the best plan so far: the ties moves' or the box's.
        plan = _concrete(model, columns, hint)
    if searching and plan is not None:
        available = left()
        seconds = _rehouse_seconds(available, lp.seconds)
        full_after = seconds < available  # time is kept for the full model after the search
        rehoused = _rehouse(model, columns, objective, lp.values, plan, hint, locks, bound, gap, settings,
                            time.perf_counter() + seconds, list(terms), stop, grow=not full_after,
                            score_price=score_price, handover=handover)
        if rehoused is not None:
            hint = rehoused[1]
        if full_after and not _proven(float(objective @ hint), bound, gap) \
                and not (stop is not None and stop.stopped) and left() >= FULL_MODEL_LP_TIMES * lp.seconds:
            # The search stopped at its first stall: the full model comes first, for a share of
            # the time. On small rounds it proves the optimum in seconds where larger
            # neighbourhoods find nothing (the 200-case demo round: level 3 in 5-6 s instead of
            # 12-15 s). Elsewhere they go on after it, with the rest of the time, which the
            # full model would have had at the end (national-2k: they add 28 of the search's
            # 444; the full model at the end found nothing, here or after the search).
            moved = rehoused[0] if rehoused is not None else plan  # the concrete plan so far
            tried = backend.solve(program, objective, time_limit=left() * FULL_MODEL_TRY_SHARE, relative_gap=gap,
                                  hint=hint, absolute_gap=gap * abs(bound), on_log=on_log, **common)
            log.info("  full model after the search's stall: %s %s bound %s in %.2fs", tried.status,
                     tried.objective, tried.bound, tried.seconds)
            if tried.bound is not None:
                bound = min(bound, tried.bound)
            if tried.values is not None and _proven(tried.objective, bound, gap):
                # The moved plan rides along, as after the full model below.
                return Outcome("optimal", tried.values, tried.objective, bound, time.perf_counter() - started,
                               tried.nodes, tried.detail, plan=moved)
            if tried.values is not None and tried.objective > float(objective @ hint) + 1e-9:
                concrete = _concrete_or_mended(model, columns, objective, tried.values, locks, settings, terms,
                                               time.perf_counter() + left(), backend)
                if concrete is not None and concrete[1] > float(objective @ hint) + 1e-9:
                    moved, hint = concrete[0], _values_of(model, concrete[0])[columns]
                    rehoused = (moved, hint)
            again = _rehouse(model, columns, objective, lp.values, moved, hint, locks, bound, gap, settings,
                             time.perf_counter() + left(), list(terms), stop, score_price=score_price,
                             handover=handover)
            if again is not None:
                rehoused = again
                hint = again[1]
        if rehoused is not None and _proven(float(objective @ hint), bound, gap):
            return Outcome("optimal", hint, float(objective @ hint), bound, time.perf_counter() - started, 0,
                           "cases moved between municipalities: a plan within the gap of the bound",
                           plan=rehoused[0])
    box_nodes = box.nodes if box is not None else 0
    if rehoused is not None:
        # The moved plan starts the full model; the rounding box around the LP did not improve
        # on it on the benchmark rounds (national-2k: 20 s for nothing), the full model did.
        best = Outcome("feasible", hint, float(objective @ hint), bound, 0.0, 0, "cases moved", plan=rehoused[0])
    elif box is not None:
        best = box if box.values is not None and box.objective >= float(objective @ hint) else \
            Outcome("feasible", hint, float(objective @ hint), bound, 0.0, 0, "ties packed")
    elif ties and hint is not None and integral:
        # Ties alone: the rounding box never improved on the packing and moves above
        # (national-5k, -10k, -30k: 10-16 s for nothing); the full model gets the time and may
        # tighten the bound (national-10k: 635 -> 609, 607 ties reached). The concrete plan of
        # the packing rides along, as the moved plan does above, for where the full model's
        # counts break a service capacity.
        best = Outcome("feasible", hint, float(objective @ hint), bound, 0.0, 0, "ties packed",
                       plan=_concrete(model, columns, hint))
    elif to_full_model:
        best = Outcome("feasible", hint, float(objective @ hint), bound, 0.0, 0, "the best plan so far")
    else:
        local = rounding_box(0.6)
        best, box_nodes = (local if local.values is not None else None), local.nodes
        if best is not None and _proven(best.objective, bound, gap):
            return Outcome("optimal", best.values, best.objective, bound, time.perf_counter() - started,
                           local.nodes, "rounding box within the gap of the LP bound")
    start = best
    if stop is not None and stop.stopped and best is not None:
        return replace(best, status=_status(best.objective, bound, gap), bound=bound,
                       seconds=time.perf_counter() - started, detail="stopped")
    if (best is not None or hint is not None) and left() < FULL_MODEL_LP_TIMES * lp.seconds:
        # HiGHS checks its time limit only between rounds of root cuts, which take several LP
        # solves: with less time than that left, the full model would overrun the limit
        # (national-10k in 3 s, where the box had no time: 2.6 s for 0.3 s, and only the hint).
        log.info("  full model skipped: %.1fs left, under %d times the LP's %.1fs", left(), FULL_MODEL_LP_TIMES,
                 lp.seconds)
        if best is None:
            best = Outcome("feasible", hint, float(objective @ hint), bound, 0.0, 0, "the plan so far")
        # The box's own status is "optimal" for the box: the level's is against its bound.
        return replace(best, status=_status(best.objective, bound, gap), bound=bound,
                       seconds=time.perf_counter() - started, detail="no time for the full model")
    full = backend.solve(program, objective, time_limit=left(), relative_gap=gap,
                         hint=best.values if best is not None else hint, absolute_gap=gap * abs(bound), on_log=on_log, **common)
    log.info("  full model: %s %s bound %s in %.2fs", full.status, full.objective, full.bound, full.seconds)
    if full.bound is not None:
        bound = min(bound, full.bound)
    if full.values is not None and (best is None or full.objective > best.objective + 1e-9):
        best = full
    seconds = time.perf_counter() - started
    if best is None and hint is not None:
        # The search found nothing in its time: the plan of the level above is still a plan of
        # this level (it keeps every lock), so the level keeps it.
        return Outcome("feasible", hint, float(objective @ hint), bound, seconds, full.nodes,
                       "kept the plan of the level above")
    if best is None:
        return Outcome("no_solution", None, None, bound, seconds, full.nodes, full.detail)
    status = _status(best.objective, bound, gap)
    # The moved (or packed) plan rides along even when the MIP beat it: if the MIP's counts
    # break a service where classes are counted, it is the plan that keeps every rule (``solve``).
    return Outcome(status, best.values, best.objective, bound, seconds, box_nodes + full.nodes, full.detail,
                   plan=start.plan if start is not None else None)


def _finish_packing(
    backend: MathOptBackend,
    program: LinearProgram,
    objective: np.ndarray,
    packed: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    bound: float,
    gap: float,
    seconds: Callable[[], float],
    cp_sat_seconds: float,
    on_log: Callable[[float | None, float | None], None] | None,
    common: dict,
    *,
    polish: bool,
    search: bool = True,
) -> Outcome:
    """The search that finishes a stalled packing in its neighbourhood (``lower``/``upper``),
    from the ``packed`` plan. CP-SAT searches first, for at most ``cp_sat_seconds``; where its
    best plan is not within the gap, HiGHS's MIP searches from it for ``seconds()`` (with
    ``search``; without, the better of CP-SAT's plan and the packed one is returned).

    With levels to ``polish`` for, CP-SAT stops at a plan at ``bound`` or proven within a
    quarter of the gap of the neighbourhood's own bound (what HiGHS's MIP is asked for): the
    levels below are locked to this plan's urgency, and a plan that only reaches a quarter of
    the gap left the demo round's level 3 at 2.0% instead of 1.0%. Without, the first plan
    within the gap of ``bound`` is the level's answer, proven (national-2k seed 0's repair:
    0.69 s instead of 1.49 s, seed 26's 0.74 s instead of 0.96 s; replayed)."""
    target = bound - (BOUND_TOLERANCE if polish else gap) * abs(bound)
    found = backend.find_plan(program, objective, target, lower=lower, upper=upper,
                              hint=packed, time_limit=min(seconds(), cp_sat_seconds), relative_gap=gap / 4,
                              locks=common["locks"], seed=common["seed"], stop=common["stop"], first_plan=not polish)
    if found.values is not None and _proven(found.objective, bound, gap):
        return found
    log.info("  no plan within the gap in the packing's neighbourhood by CP-SAT (%s, %.2fs)", found.detail,
             found.seconds)
    better = found.values is not None and found.objective > float(objective @ packed)
    if not search:
        return found if better else Outcome("feasible", packed, float(objective @ packed), None, found.seconds, 0,
                                            "the packed plan; CP-SAT found no better")
    searched = backend.solve(program, objective, time_limit=seconds(), relative_gap=gap / 4,
                             hint=found.values if better else packed, lower=lower, upper=upper,
                             absolute_gap=gap * abs(bound) / 4, on_log=on_log, **common)
    if better and (searched.values is None or searched.objective < found.objective):
        return found
    return searched


def _full_model_from_repair(
    backend: MathOptBackend,
    program: LinearProgram,
    objective: np.ndarray,
    hint: np.ndarray,
    known_bound: float,
    seconds: float,
    gap: float,
    on_log: Callable[[float | None, float | None], None] | None,
    common: dict,
) -> Outcome | None:
    """A re-solve of a level whose plan was proven before a refinement: the full model from the
    repaired plan ``hint``, for the level's ``seconds``, with ``known_bound`` (None when its root
    would not fit: the level is solved as usual).

    On 400-case rounds with scores, the ties level's full model proved it in about 18 s, its
    counts broke a kindergarten capacity, and the re-solve's LP, packing, rounding box and
    search took its time without reaching the plan before (286.395 against 286.514), with no
    time left for the full model.
    """
    expected = backend.expected_lp_seconds(program, common["locks"])
    if expected is None or seconds < FULL_MODEL_LP_TIMES * expected:
        return None
    full = backend.solve(program, objective, time_limit=seconds, relative_gap=gap, hint=hint,
                         absolute_gap=gap * abs(known_bound), on_log=on_log, **common)
    bound = known_bound if full.bound is None else min(known_bound, full.bound)
    start = float(objective @ hint)
    log.info("  full model from the repaired plan (%.4f): %s %s bound %s in %.2fs", start, full.status,
             full.objective, full.bound, full.seconds)
    if full.values is None or full.objective < start:
        return Outcome(_status(start, bound, gap), hint, start, bound, full.seconds, full.nodes,
                       "the repaired plan; the full model found no better")
    return Outcome(_status(full.objective, bound, gap), full.values, full.objective, bound, full.seconds,
                   full.nodes, "the full model from the repaired plan")


def _lp_beside_search(lp: Callable[[], Outcome], search: Callable[[StopFlag], T],
                      stop: StopFlag | None) -> tuple[Outcome, T]:
    """``lp()`` solved in this thread while ``search(done)`` runs in another, until ``done`` is
    set as the LP ends (or ``stop`` is): the LP's outcome and the search's answer."""
    done = StopFlag(parent=stop)
    with ThreadPoolExecutor(1) as pool:
        searching = pool.submit(search, done)
        try:
            outcome = lp()
        finally:
            done.stop()
        return outcome, searching.result()


def _rehouse_seconds(left: float, lp_seconds: float) -> float:
    """Seconds for the search that moves cases, out of the ``left`` seconds of a level whose LP
    took ``lp_seconds``.

    The full model after it rarely improves the moved plan; what it adds is a tighter bound
    from its root (national-2k: -1929 against the LP's -1905, reached within 8 s, about ten
    LP times, and no better after 30 s). So it gets what its root needs, at most
    ``1 - REHOUSE_SHARE`` of the time, and the search the rest; when that is too little for the
    full model to run at all, the search gets all of it.
    """
    full = min(left * (1 - REHOUSE_SHARE), FULL_MODEL_ROOT_LP_TIMES * lp_seconds)
    if left - full <= 0 or full < FULL_MODEL_LP_TIMES * lp_seconds:
        return left
    return left - full


def _rehouse(
    model: PlacementModel,
    columns: np.ndarray,
    objective: np.ndarray,
    lp_values: np.ndarray | None,
    plan: pd.Series,
    hint: np.ndarray,
    locks: list[tuple[np.ndarray, float]],
    bound: float | None,
    gap: float,
    settings: Settings,
    deadline: float,
    terms: list[str],
    stop: StopFlag | None,
    grow: bool = True,
    score_price: float = 0.0,
    handover: float = np.inf,
) -> tuple[pd.Series, np.ndarray] | None:
    """The concrete ``plan`` with its cases moved for this level's ``terms``
    (:func:`.rehouse.rehouse`, which stops at its first stall unless it may ``grow`` its
    neighbourhoods): the plan and its full vector over ``columns``, or None if it is no better
    than ``hint`` or (never expected: cases only move) breaks a lock. ``score_price`` and
    ``handover`` are :func:`.rehouse.rehouse`'s."""
    weight = _search_weights(settings.objective, terms)
    guide = target = enough = None
    start = float(objective @ hint)  # the plan's counts (a concrete plan may honour a tie fewer)
    if lp_values is not None:
        full = _expand(lp_values, columns, model.n_vars)
        n_muni = model.agg.n_municipalities
        # The LP's cost per municipality (its objective there, negated): where a plan costs more,
        # moving helps.
        at = _column_municipality(model)[columns]
        gains = objective * lp_values
        guide = -np.bincount(at[at >= 0], weights=gains[at >= 0], minlength=n_muni)
        # The LP's cases per municipality and housing requirement: the counts the search steers to.
        y = model.blocks["y"]
        target = np.zeros((n_muni, len(model.agg.requirements)))
        np.add.at(target, (model.y_muni, model.units["requirement"].to_numpy()[model.y_unit]), full[y])
    if bound is not None:
        # Stop once within the gap of the bound: the cost must fall by this much.
        enough = bound - gap * max(abs(bound), 1e-9) - start
    moved, waste, spread = rehouse(model, plan, weight["housing_fit"], weight["spread"], deadline, guide,
                                   settings.solver.seed, enough_gain=enough, target=target,
                                   threads=settings.solver.threads, weight_scores=weight["scores"],
                                   weight_ties=weight["ties"], stop=stop, grow=grow, score_price=score_price,
                                   handover=handover, tie_credit=_tie_credit(settings.objective, terms))
    values = _values_of(model, moved)[columns]
    value = float(objective @ values)
    log.info("  cases moved for %s: %.4f -> %.4f (%.0f bedrooms empty)", " and ".join(terms), start, value, waste)
    if value <= start + 1e-9:
        return None
    if not all(c @ values >= v - 1e-9 for c, v in locks):
        log.warning("  the moved plan breaks a lock of a level above: not used")
        return None
    return moved, values


def _tie_credit(objective: ObjectiveSettings, terms: list[str]) -> float:
    """Where a level above the one of ``terms`` locks the ties and the supplied scores together
    (and nothing else), what a tie honoured is worth in units of score in that lock; else 0."""
    levels = objective.priorities
    above = levels[: levels.index(terms)] if terms in levels else []
    if not any(set(level) == {"ties", "scores"} for level in above) or objective.weight("scores") <= 0:
        return 0.0
    return objective.weight("ties") / objective.weight("scores")


def _status(value: float, bound: float | None, gap: float) -> str:
    """A level's status: optimal when ``value`` is proven within ``gap`` of ``bound``."""
    return "optimal" if bound is not None and _proven(value, bound, gap) else "feasible"


def _concrete(model: PlacementModel, columns: np.ndarray, values: np.ndarray) -> pd.Series | None:
    """The concrete plan (free case_id -> municipality number) of counts ``values`` over
    ``columns``, or None where its class slots break a service capacity."""
    found, broken = choose_cases(model, complete_hint(model, _expand(values, columns, model.n_vars)))
    return None if len(broken) else found


def _concrete_or_mended(
    model: PlacementModel, columns: np.ndarray, objective: np.ndarray, values: np.ndarray,
    locks: list[tuple[np.ndarray, float]], settings: Settings, terms: Sequence[str], deadline: float,
    backend: MathOptBackend | None = None,
) -> tuple[pd.Series, float] | None:
    """The concrete plan of counts ``values`` over ``columns`` and its value, where its class
    slots break a service capacity mended by the search's steps (:func:`.rehouse.mend_services`):
    national-2k's level 3 had dropped the full model's -1,941.4 for it, and ended at -1,945.4.
    None if not mended, or if the plan breaks a lock."""
    found, broken = choose_cases(model, complete_hint(model, _expand(values, columns, model.n_vars)))
    if len(broken):
        found = _mended(model, found, broken, settings, terms, deadline, backend)
        if found is None:
            return None
    plan = _values_of(model, found)[columns]
    if not all(c @ plan >= v - 1e-9 for c, v in locks):
        return None
    return found, float(objective @ plan)


def _mended(
    model: PlacementModel, found: pd.Series, broken: np.ndarray, settings: Settings, terms: Sequence[str],
    deadline: float, backend: MathOptBackend | None = None,
) -> pd.Series | None:
    """The concrete plan ``found``, whose class slots break a service capacity in the ``broken``
    municipalities, mended by the search's steps for the level of ``terms``
    (:func:`.rehouse.mend_services`: the same cases placed), or None. Its steps end by
    ``deadline``, or within ``MEND_SECONDS_PAST_LIMIT`` where that has passed: a break found at
    the time limit still gets a try (the fallback takes cases out). ``backend``: the solve's,
    whose CP-SAT finds the plans of steps that price nothing."""
    weights = _search_weights(settings.objective, terms)
    mended = mend_services(model, found, broken, weights["housing_fit"], weights["spread"], settings.solver.seed,
                           weights["scores"], weights["ties"], _tie_credit(settings.objective, list(terms)),
                           deadline=max(deadline, time.perf_counter() + MEND_SECONDS_PAST_LIMIT), backend=backend)
    log.info("  class counts broke a service capacity in %d municipalities: %s", len(broken),
             "mended by moving cases" if mended is not None else "not mended")
    return mended


def _search_weights(objective: ObjectiveSettings, terms: Sequence[str]) -> dict[str, float]:
    """The weight of each term the search that moves cases prices: 0 for those not in ``terms``."""
    return {t: objective.weight(t) if t in terms else 0.0 for t in ("housing_fit", "spread", "scores", "ties")}


def _moves_cases(terms: list[str], has_scores: bool) -> bool:
    """Is the search that moves the cases of a plan (:mod:`.rehouse`) one for a level of these
    terms (scores count only where supplied)?"""
    priced = {t for t in terms if t != "scores" or has_scores}
    return set(terms) <= REHOUSE_TERMS and bool(priced - {"ties"})


def _column_municipality(model: PlacementModel) -> np.ndarray:
    """The municipality of each column of the model (-1 for those of no one municipality)."""
    at = np.full(model.n_vars, -1, dtype=int)
    for block, munis in (("y", model.y_muni), ("a", model.a_muni), ("x", model.x_muni), ("z", model.z_muni)):
        at[model.blocks[block]] = munis
    return at


def _pack_ties(
    model: PlacementModel,
    columns: np.ndarray,
    lp_values: np.ndarray,
    hint: np.ndarray,
    locks: list[tuple[np.ndarray, float]],
    deadline: float,
    seed: int,
    objective: np.ndarray,
    enough: float,
    stop: StopFlag | None = None,
) -> tuple[np.ndarray | None, bool]:
    """The cases of the plan above (so every lock holds), packed again from the LP's counts
    with the tied cases the LP honours kept at their tie municipality; as a concrete plan's
    full vector over ``columns`` (or the best packing's counts by ``objective``, if no concrete
    plan of them keeps the service capacities), or None if no packing finished by ``deadline``
    or each broke a lock; and whether the counts break a service capacity. The packing is a
    randomised search: each failed try starts anew with the next seed (``TIES_PACK_TRIES`` at
    most); after counts that
    break a service capacity but reach ``enough``, or gain a unit over the plan above, only
    ``BREAKING_RETRIES`` more tries (the caller models the capacity and packs the cases it takes
    out back in; national-1k: 6 s of tries, all breaking, before; national-2k: the third try
    keeps every capacity; national-30k: 3 s of tries after the first, 1,839 ties of at most 1,908,
    found nothing better, and the packing in the finer model kept them on its first try)."""
    lp_full, above = _expand(lp_values, columns, model.n_vars), _expand(hint, columns, model.n_vars)
    # The cases of the plan above; where the LP chose other cases (this level's LP may trade
    # cases within the lock), every second try packs the LP's own cases (rounded down, the room
    # left filled) instead.
    full_locks = [(_expand(c, columns, model.n_vars), v) for c, v in locks]
    totals_above = lp_pool_totals(model, above)
    totals_lp = np.floor(lp_pool_totals(model, lp_full) + 1e-6)
    differ = not np.array_equal(np.rint(totals_above), totals_lp)
    # The LP's own cases first when their urgency alone keeps the locks (filling only adds):
    # national-30k's packings of the plan above's cases stall, and under load a second try may
    # find no time left; national-5k's own cases break the lock, so they go second there.
    own_first = differ and all(c @ _most_urgent(model, totals_lp) >= v - 1e-9 for c, v in full_locks)
    attempt = 0
    breaking = None
    last_try: int | None = None
    while (attempt == 0 or time.perf_counter() < deadline and not (stop is not None and stop.stopped)) \
            and attempt < (last_try or TIES_PACK_TRIES):
        own = differ and attempt % 2 == (0 if own_first else 1)
        packing = pack_with_ties(model, lp_full[model.blocks["y"]], lp_full[model.blocks["a"]],
                                 totals_lp if own else totals_above, deadline, seed + attempt, fill=own)
        attempt += 1
        if not packing.complete:
            continue
        plan, counts = _ties_plan(model, columns, packing.values, locks)
        if counts is not None and (breaking is None or objective @ counts > objective @ breaking):
            breaking = counts
            if last_try is None and objective @ counts >= min(enough, float(objective @ hint) + 1):
                last_try = attempt + BREAKING_RETRIES
        if plan is not None:
            log.info("  ties packing: a plan on try %d", attempt)
            return plan, False
    log.info("  ties packing: %d tries, %s", attempt, "counts that break a service" if breaking is not None else "none complete")
    return breaking, breaking is not None


def _move_ties(
    model: PlacementModel, columns: np.ndarray, objective: np.ndarray, hint: np.ndarray,
    locks: list[tuple[np.ndarray, float]], deadline: float,
) -> np.ndarray:
    """``hint`` with tied cases preferred to their pool's other cases where the locks allow, then
    moved to their tie municipality or swapped there until ``deadline`` (:mod:`.ties`); no LP
    needed."""
    full_locks = [(_expand(c, columns, model.n_vars), v) for c, v in locks]
    full = prefer_tied_cases(model, _expand(hint, columns, model.n_vars), full_locks)
    improved = complete_hint(model, honour_more_ties(model, complete_hint(model, full), deadline=deadline))[columns]
    log.info("  ties honoured by moving and swapping cases: %.0f -> %.0f",
             float(objective @ hint), float(objective @ improved))
    return improved


def _search_ties(
    backend: MathOptBackend,
    model: PlacementModel,
    program: LinearProgram,
    columns: np.ndarray,
    objective: np.ndarray,
    lp_values: np.ndarray,
    hint: np.ndarray,
    locks: list[tuple[np.ndarray, float]],
    bound: float,
    seconds: float,
    seed: int,
    stop: StopFlag | None,
) -> tuple[np.ndarray | None, bool]:
    """The plan of :func:`.tie_search.search_around_ties` (over ``columns``) where it honours
    more ties than ``hint`` and keeps every lock, else None; and whether its class slots break
    a service capacity (it is then counts, as from :func:`_pack_ties`)."""
    found, near, short = search_around_ties(
        backend, model, program, columns, objective, _expand(lp_values, columns, model.n_vars),
        _expand(hint, columns, model.n_vars), target=np.floor(bound + 1e-6), time_limit=seconds, locks=locks,
        seed=seed, stop=stop)
    start = float(objective @ hint)
    plan = counts = None
    better = found.values is not None and found.objective > start + 0.5
    if better:
        plan, counts = _ties_plan(model, columns, _expand(found.values, columns, model.n_vars), locks)
    log.info("  ties searched around (%d municipalities, %d short of the LP's ties): %.0f -> %s in %.2fs (%s%s)",
             int(near.sum()), short, start, "-" if found.objective is None else f"{found.objective:.0f}",
             found.seconds, found.detail, "" if plan is not None or not better
             else "; it breaks a service capacity" if counts is not None else "; it breaks a lock")
    if plan is not None and float(objective @ plan) > start:
        return plan, False
    if counts is not None and float(objective @ counts) > start:
        return counts, True
    return None, False


def _same_cases(
    backend: MathOptBackend,
    model: PlacementModel,
    program: LinearProgram,
    columns: np.ndarray,
    objective: np.ndarray,
    hint: np.ndarray,
    locks: list[tuple[np.ndarray, float]],
    settings: Settings,
    deadline: float,
    stop: StopFlag | None,
) -> tuple[np.ndarray | None, bool]:
    """The cases of the plan above (``hint``) placed for this level (:mod:`.same_cases`): a
    plan over ``columns`` (None if none was found) and whether it breaks a service capacity the
    model does not count (it is then counts, as from :func:`_pack_ties`)."""
    found = place_same_cases(backend, model, program, columns, objective, hint, deadline=deadline,
                             relative_gap=settings.solver.relative_gap, seed=settings.solver.seed, locks=locks,
                             threads=settings.solver.threads, stop=stop)
    if found is None or found.values is None:
        return None, False
    plan, counts = _ties_plan(model, columns, found.values, locks)
    return (plan, False) if plan is not None else (counts, counts is not None)


def _ties_plan(
    model: PlacementModel, columns: np.ndarray, values: np.ndarray, locks: list[tuple[np.ndarray, float]]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Counts of a placement for the ties level (a full vector: y, w, s at least) as a concrete
    plan over ``columns`` that keeps every lock, or, where its class slots break a service
    capacity the model does not count, as counts that keep every lock (the caller models those
    municipalities and solves again); (None, None) where a lock breaks."""
    full_locks = [(_expand(c, columns, model.n_vars), v) for c, v in locks]
    # The most urgent cases of each pool are chosen; tied cases take the places their units
    # keep at their tie municipalities, where the locks allow (national-30k: 1,835 -> 1,947).
    values = prefer_tied_cases(model, complete_hint(model, values), full_locks)
    found, broken = choose_cases(model, values)
    if len(broken):
        counts = complete_hint(model, values)[columns]
        return None, counts if all(c @ counts >= v - 1e-9 for c, v in locks) else None
    plan = _values_of(model, found)[columns]
    return (plan, None) if all(c @ plan >= v - 1e-9 for c, v in locks) else (None, None)


def _most_urgent(model: PlacementModel, totals: np.ndarray) -> np.ndarray:
    """A full vector choosing the ``totals[p]`` most urgent cases of every pool p (its w and s
    blocks; the rest zero): what a plan of those totals scores on urgency."""
    free = model.agg.free_cases
    order = free.assign(_key=free.index).sort_values(["urgency", "_key"], ascending=[False, True])
    pool = order["pool"].to_numpy()
    chosen = order[order.groupby("pool").cumcount().to_numpy() < np.rint(totals)[pool]]
    values = np.zeros(model.n_vars)
    _add_chosen(model, values, chosen)
    return values


def _add_chosen(model: PlacementModel, values: np.ndarray, chosen: pd.DataFrame) -> None:
    """Add chosen free cases (rows of ``free_cases``: pool, urgency, tie) to ``values``: tied
    ones in the s block, the others counted at their pool's urgency level in the w block."""
    free = model.agg.free_cases
    tied = chosen["tie"].to_numpy() >= 0
    s_pos = pd.Index(free.index[model.s_case]).get_indexer(chosen.index[tied])
    values[model.blocks["s"].start + s_pos[s_pos >= 0]] = 1.0
    untied = chosen[~tied]
    w_pos = pd.MultiIndex.from_arrays([model.w_pool, model.w_urgency]).get_indexer(
        pd.MultiIndex.from_arrays([untied["pool"].to_numpy(), untied["urgency"].to_numpy().round(9)]))
    np.add.at(values, model.blocks["w"].start + w_pos[w_pos >= 0], 1.0)


def _expand(values: np.ndarray, columns: np.ndarray, n: int) -> np.ndarray:
    """A vector over ``columns`` as a full vector of ``n`` (zero elsewhere)."""
    full = np.zeros(n)
    full[columns] = values
    return full


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
    if len(model.a_pool_pool):
        out[model.blocks["a"]], out[model.blocks["a_pool"]] = split_class_ties(model, out)
    if model.blocks["z"].stop > model.blocks["z"].start:
        persons = np.bincount(model.y_muni, weights=y * model.units["size"].to_numpy()[model.y_unit],
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


def _lock_value(value: float | None) -> float:
    """Keep what this level reached (within float tolerance) while optimising the next."""
    value = value or 0.0
    return value - 1e-7 * max(1.0, abs(value))


def _hint_from_plan(model: PlacementModel, plan: pd.DataFrame) -> np.ndarray | None:
    """A previous plan (case_id, municipality_id) as a complete start: its counts, the cases
    it chose (urgency levels and tied cases) and the ties it honoured."""
    agg = model.agg
    free = agg.free_cases
    plan = plan[plan["case_id"].isin(free.index)]
    hint = np.zeros(model.n_vars)
    if plan.empty:
        return hint
    munis = pd.Index(agg.municipality_ids)
    placed = free.loc[plan["case_id"]]
    pool = placed["pool"].to_numpy()
    muni = munis.get_indexer(plan["municipality_id"])
    n_pools = len(agg.pools)
    unit = np.where(model.fine[muni], pool, n_pools + agg.pools["cls"].to_numpy()[pool])

    def add(block: str, keys: pd.MultiIndex, index: pd.MultiIndex) -> None:
        counts = pd.Series(1, index=keys).groupby(level=list(range(keys.nlevels))).sum()
        pos = index.get_indexer(counts.index)
        ok = pos >= 0
        np.add.at(hint, model.blocks[block].start + pos[ok], counts.to_numpy()[ok])

    add("y", pd.MultiIndex.from_arrays([unit, muni]), pd.MultiIndex.from_arrays([model.y_unit, model.y_muni]))
    _add_chosen(model, hint, placed)
    tied = placed["tie"].to_numpy() >= 0
    at_tie = tied & (placed["tie"].to_numpy() == muni)
    add("a", pd.MultiIndex.from_arrays([unit[at_tie], muni[at_tie]]),
        pd.MultiIndex.from_arrays([model.a_unit, model.a_muni]))
    return hint


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

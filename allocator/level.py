"""One level of the lexicographic objective: its LP bound, then the steps that reach a plan
within the gap of it (rounding, packing, the searches that move cases or ties, the rounding
box, the full model). :func:`solve_level` is called by :func:`.solve.solve` for each level."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
import pandas as pd

from .backend import MathOptBackend, Outcome, StopFlag, integral_objective
from .cheap_bound import level_bound
from .extract import choose_cases
from .fill import round_and_fill
from .model import LinearProgram, PlacementModel
from .pack import STALLED_NEIGHBOURS, lp_pool_totals, pack_lp_totals, pack_with_ties
from .plans import complete_hint, concrete_plan, expand, most_urgent, values_of
from .rehouse import mend_services, rehouse
from .same_cases import lp_fits, place_same_cases
from .settings import ObjectiveSettings, Settings
from .tie_search import search_around_ties
from .ties import honour_more_ties, prefer_tied_cases

log = logging.getLogger(__name__)

T = TypeVar("T")
U = TypeVar("U")


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
#: Share of the ties level's time its LP may take where the ties moves and the search that moves
#: cases run beside it (they use the time either way). national-30k in 10 s, six rounds twice:
#: with 0.85 one round's LP failed in one run (1,694 ties against 1,959), with 0.9 none did; a
#: packing cut short by the time left still counts (:func:`_pack_ties`).
TIES_BESIDE_LP_TIME_SHARE = 0.9
#: How much longer than the pace of the LPs before the ties level's LP may take (national-5k:
#: 1.16-1.33 s against 0.71 s expected; -10k 1.81 against 1.43; -2k 0.41 against 0.30), and
#: beside the placing of the cases above (-10k: 2.04 s, and in a run where both LPs failed at
#: their limits, over 2.3 s against 1.5 s expected).
TIES_LP_PACE = 2.0
#: Share of the ties level's time left for the search around the ties (:mod:`.tie_search`;
#: national-5k: 2.9 s of about 10 s, 320 -> 322 ties, and the full model found the optimum, 323).
TIES_SEARCH_SHARE = 0.3
#: The full model is searched only with at least this many times the LP's time left.
FULL_MODEL_LP_TIMES = 6
#: A ties level with less time left than the full model needs gives it to the search that moves
#: cases, with at least this many seconds (its set-up alone takes about 0.3 s on national-30k).
TIES_SEARCH_MIN_SECONDS = 0.5
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
#: Terms a level may hold for the search that moves the cases of the plan above (moving cases
#: changes nothing else; ties alone are left to the ties moves and the full model, whose bound
#: they need), and the share of the level's time it gets.
REHOUSE_TERMS, REHOUSE_SHARE = {"housing_fit", "spread", "scores", "ties"}, 0.6
#: Share of the time left that the full model gets when that search first stalls. HiGHS needs
#: 13-17 s from the moved plan to prove level 3 of a 400-case round (its root cuts, then a
#: sub-MIP finds the optimum), and a quarter was 10.9-12.6 s: 0 of 6 such rounds proven in
#: 60 s with it, 5 of 6 with half, in 33-38 s.
FULL_MODEL_TRY_SHARE = 0.5
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


@dataclass
class BoundsSeen:
    """The bounds a level's solve had in hand, to tell which one its answer's bound is."""

    lp: float | None = None  # the LP relaxation's bound, as the level used it
    ties_count: float | None = None
    earlier: float | None = None  # a re-solve's bound from the solve before its refinement

    def source_of(self, outcome: Outcome) -> str:
        """The key of :data:`.result.BOUND_SOURCES` for ``outcome.bound`` ("" without a bound). A bound
        that is none of these, below them all, is a MIP's: only the full model's search (or a
        search with every pair free) lowers a bound."""
        bound = outcome.bound
        if bound is None:
            return ""
        if outcome.bound_from:
            return outcome.bound_from
        for source, value in (("lp_relaxation", self.lp), ("ties_count", self.ties_count),
                              ("earlier_solve", self.earlier)):
            if value is not None and abs(bound - value) <= 1e-9 * max(1.0, abs(bound)):
                return source
        return "branch_and_bound"


def _records_bound_source(solve: Callable[..., Outcome]) -> Callable[..., Outcome]:
    """``solve`` with its answer's ``bound_from`` filled in from the bounds it reported in ``seen``."""

    @functools.wraps(solve)
    def solve_recording(*args, **kwargs) -> Outcome:
        seen = BoundsSeen()
        outcome = solve(*args, seen=seen, **kwargs)
        return replace(outcome, bound_from=seen.source_of(outcome))

    return solve_recording


@dataclass(frozen=True)
class _Level:
    """What every step of one level works on: the level's program (the model's ``columns``),
    its objective, and its time (``budget`` seconds from ``started``)."""

    backend: MathOptBackend
    model: PlacementModel
    program: LinearProgram
    columns: np.ndarray
    objective: np.ndarray
    settings: Settings
    started: float
    budget: float

    def left(self) -> float:
        return max(self.budget - (time.perf_counter() - self.started), 0.05)

    def out_of_time(self) -> bool:
        return time.perf_counter() - self.started >= self.budget


def level_lp_fits(expected: float | None, seconds: float, *, moves: bool, share: float = LEVEL_LP_SHARE) -> bool:
    """Whether a level's LP, ``expected`` to take that many seconds (None: not known, so it is
    tried), fits its ``share`` of the level's ``seconds``. Where the search that ``moves`` cases
    can use the time without it, an LP that may just not finish does not fit: the pace is an
    estimate from below (national-10k, 10 s: level 3's LP, 2.5 s expected with 3.7 s left,
    failed at its limit)."""
    margin = LP_PACE_MARGIN if moves else 1.0
    return expected is None or expected * margin <= seconds * share


@_records_bound_source
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
    fallback_lp: Callable[..., Outcome | None] | None = None,
    score_locks: Sequence[float] = (),
    known_bound: float | None = None,
    on_lp: Callable[[Outcome], None] | None = None,
    seen: BoundsSeen,
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
    ``fallback_lp`` (called with ``budget``, the level's time left) gives another LP of the level,
    whose bound holds, for when the level's own LP is not solved.

    The answer's ``bound_from`` says which bound it states (:data:`.result.BOUND_SOURCES`); ``seen``
    collects the bounds for that (the decorator passes it; callers do not).
    """
    started = time.perf_counter()
    gap = settings.solver.relative_gap
    common = dict(locks=locks, seed=settings.solver.seed, threads=settings.solver.threads, stop=stop)

    level = _Level(backend, model, program, columns, objective, settings, started, budget)
    left = level.left

    if not objective.any():
        values = hint if hint is not None else np.zeros(program.n_vars)
        return Outcome("optimal", values, 0.0, 0.0, 0.0, 0, "nothing to optimise", bound_from="trivial")
    seen.earlier = known_bound
    if known_bound is not None and hint is not None:
        straight = _full_model_from_repair(backend, program, objective, hint, known_bound, left(), gap, on_log,
                                           common)
        if straight is not None:
            return replace(straight, seconds=time.perf_counter() - started)
    lp_skipped = False
    above: tuple[np.ndarray | None, bool] | None = None  # the cases above placed, where done beside the LP
    if lp is None:
        expected = backend.expected_lp_seconds(program, locks)

        def level_lp(paced: bool = True, share: float = LEVEL_LP_SHARE) -> Outcome:
            return backend.solve(program, objective, time_limit=left() * share, relative_gap=0.0,
                                 relax=True, paced=paced, **common)

        # The ties moves and the search after them may run beside a ties level's LP (below).
        ties_beside = ties and hint is not None and plan is None and settings.solver.threads > 1
        lp_share = TIES_BESIDE_LP_TIME_SHARE if ties_beside else LEVEL_LP_SHARE
        # An LP that cannot finish in its time only takes it from the search without an LP
        # (national-30k-scores in 10 s: level 2's LP failed after 1.3 s, and the ties moves ran
        # out of time at 13,462 instead of 13,847).
        lp_skipped = not level_lp_fits(expected, left(), moves=plan is not None, share=lp_share)
        if not lp_skipped and ties_beside and expected is not None \
                and expected * TIES_LP_PACE > left() * LEVEL_LP_SHARE:
            # At the ties LP's own pace it may not finish in a level's usual share, and the
            # packing from it may fail in what is left (national-30k in 10 s: the LP 4.1-4.8 s of
            # 6.1-6.5 s, 2.9-3.8 s expected; one try of the packing reached 1,980 ties of at most
            # 2,016, but on another round three tries found no plan in 1.6 s and the level kept
            # the ties moves' 1,309). So the ties moves and the search after them run beside the
            # LP, on the thread it leaves, and the LP may take a larger share: their plan stands
            # where the LP or its packing fails, and the packing starts from it.
            log.info("  the ties are moved beside the LP (about %.1fs of %.1fs)", expected, left())
            tie_settings = settings.with_overrides(solver__threads=max(settings.solver.threads - 1, 1))
            lp, (_, hint) = _lp_beside_search(
                lambda: level_lp(paced=False, share=lp_share),
                lambda done: _search_ties_without_lp(model, columns, objective, hint, locks, gap, tie_settings,
                                                     started + budget, list(terms), done),
                stop)
        elif not lp_skipped and ties and hint is not None and settings.solver.threads > 1 \
                and integral_objective(program.integer, objective) and _above_beside_lp(expected, left()):
            # The cases above need no LP of the level: where they would have no time after it,
            # they are placed beside it, on the thread it leaves.
            log.info("  the cases above are placed beside the LP (about %.1fs of %.1fs)", expected, left())
            deadline = time.perf_counter() + left() * LEVEL_LP_SHARE
            lp, above = _beside(lambda: level_lp(paced=False), lambda: _same_cases(
                backend, model, program, columns, objective, hint, locks, settings, deadline, stop))
        elif lp_skipped:
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
    if (lp.status != "optimal" or lp.values is None) and not lp_skipped and fallback_lp is not None \
            and not (stop is not None and stop.stopped):
        fallback = fallback_lp(budget=left())
        if fallback is not None:
            log.info("  LP relaxation not solved (%s) in %.2fs: %s instead", lp.status, lp.seconds, fallback.detail)
            lp = fallback
    # A bound that needs no LP (ties levels): without the LP the level still states its gap.
    cheap = seen.ties_count = level_bound(model, columns, objective)
    if lp.status != "optimal" or lp.values is None:
        if not lp_skipped:
            log.info("  LP relaxation not solved (%s) in %.2fs", lp.status, lp.seconds)
        if cheap is not None:
            log.info("  bound without the LP: %.1f", cheap)

        def without_lp(values: np.ndarray, seconds: float, nodes: int, detail: str, bound: float | None = None,
                       plan: pd.Series | None = None) -> Outcome:
            """A plan found without the LP, with the better of ``bound`` and the cheap bound."""
            value = float(objective @ values)
            bound = cheap if bound is None else bound if cheap is None else min(bound, cheap)
            status = level_status(value, bound, gap) if bound is not None else "feasible"
            return Outcome(status, values, value, bound, seconds, nodes, detail, plan=plan)

        if fill and hint is None:
            # No LP in time: the most urgent cases, greedily, are still a plan.
            y_in = np.searchsorted(columns, np.arange(model.blocks["y"].start, model.blocks["y"].stop))
            hint = complete_hint(model, round_and_fill(model, np.zeros(len(y_in))))[columns]
        if above is not None and above[0] is not None and not above[1] \
                and float(objective @ above[0]) > float(objective @ hint):
            hint = above[0]
        if ties and hint is not None and not (stop is not None and stop.stopped):
            # The ties moves need no LP (national-30k in 10 s: level 2 369 -> 1,257 ties), nor
            # does the search that moves cases, which the ties guide (:func:`.rehouse._tie_group`)
            # also where the level prices nothing else: its steps honour the ties whose cycles of
            # moves are too long for the moves (national-30k: 1,257 -> 1,393-1,474 ties in 1.5 s,
            # 1,548-1,604 in 3 s, 1,788 in 6 s).
            hint = _move_ties(model, columns, objective, hint, locks, time.perf_counter() + left())
            plan = concrete_plan(model, columns, hint)
        if plan is not None and hint is not None and not level.out_of_time() \
                and not (stop is not None and stop.stopped):
            # The search that moves cases needs no LP either, and the full model would not get
            # through its root (national-30k-scores, level 2: 166k columns, no LP in 18 s). Not
            # with no time left: setting it up alone took 1 s there, past the limit.
            rehoused = _rehouse(model, columns, objective, None, plan, hint, locks, cheap, gap, settings,
                                time.perf_counter() + left(), list(terms), stop)
            if rehoused is not None:
                return without_lp(rehoused[1], time.perf_counter() - started, 0, "cases moved; no LP in time",
                                  plan=rehoused[0])
        if lp_skipped and hint is not None:
            # The full model would not get through its root LP either.
            return without_lp(hint, time.perf_counter() - started, 0,
                              "no time for the LP; the plan of the level above, moved where it could be")
        full = backend.solve(program, objective, time_limit=left(), relative_gap=gap, hint=hint, on_log=on_log, **common)
        if full.values is None and hint is not None:
            return without_lp(hint, time.perf_counter() - started, full.nodes, "kept the plan of the level above",
                              full.bound)
        if full.values is not None:
            return without_lp(full.values, full.seconds, full.nodes, full.detail, full.bound)
        return full
    if on_lp is not None:
        on_lp(lp)
    bound = lp.objective
    log.info("  LP relaxation %.4f in %.2fs%s", bound, lp.seconds,
             f" ({lp.detail})" if "carried" in lp.detail or lp.detail.startswith("the probe") else "")
    integral = integral_objective(program.integer, objective)  # every plan's value is a whole number
    if cheap is not None and cheap < bound:
        log.info("  bound without the LP %.1f, below the LP's", cheap)
        bound = cheap
    if integral:
        bound = float(np.floor(bound + 1e-6))
    if cheap is not None and cheap < lp.objective:
        seen.ties_count = bound
    else:
        seen.lp = bound

    y_in = np.searchsorted(columns, np.arange(model.blocks["y"].start, model.blocks["y"].stop))
    to_full_model = False  # straight to the full model from the packing's search
    if fill:
        done, hint, to_full_model = _urgency_plans(level, lp, bound, hint, y_in, on_log, common, polish=polish)
        if done is not None:
            return done
    if ties and hint is not None:
        done, hint = _ties_plans(level, lp, bound, hint, locks, stop, integral=integral, above=above)
        if done is not None:
            return done

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
        if box.values is not None and proven(box.objective, bound, gap):
            return Outcome("optimal", box.values, box.objective, bound, time.perf_counter() - started, box.nodes,
                           "rounding box within the gap of the LP bound")
        if box.values is not None and box.objective > float(objective @ hint):
            hint = box.values
    if searching and (ties or hint is not box_start):
        # The search moves the cases of the best plan so far: the ties moves' or the box's.
        plan = concrete_plan(model, columns, hint)
    if searching and plan is not None:
        available = left()
        seconds = _rehouse_seconds(available, lp.seconds)
        full_after = seconds < available  # time is kept for the full model after the search
        rehoused = _rehouse(model, columns, objective, lp.values, plan, hint, locks, bound, gap, settings,
                            time.perf_counter() + seconds, list(terms), stop, grow=not full_after,
                            score_price=score_price, handover=handover)
        if rehoused is not None:
            hint = rehoused[1]
        if full_after and not proven(float(objective @ hint), bound, gap) \
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
            if tried.values is not None and proven(tried.objective, bound, gap):
                # The moved plan rides along, as after the full model below.
                return Outcome("optimal", tried.values, tried.objective, bound, time.perf_counter() - started,
                               tried.nodes, tried.detail, plan=moved)
            if tried.values is not None and tried.objective > float(objective @ hint) + 1e-9:
                concrete = _concrete_or_mended(model, columns, objective, tried.values, locks, settings, terms,
                                               time.perf_counter() + left(), backend)
                if concrete is not None and concrete[1] > float(objective @ hint) + 1e-9:
                    moved, hint = concrete[0], values_of(model, concrete[0])[columns]
                    rehoused = (moved, hint)
            again = _rehouse(model, columns, objective, lp.values, moved, hint, locks, bound, gap, settings,
                             time.perf_counter() + left(), list(terms), stop, score_price=score_price,
                             handover=handover)
            if again is not None:
                rehoused = again
                hint = again[1]
        if rehoused is not None and proven(float(objective @ hint), bound, gap):
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
        # counts break a service capacity. The search that moves cases comes only where the full
        # model then has no time (below).
        best = Outcome("feasible", hint, float(objective @ hint), bound, 0.0, 0, "ties packed",
                       plan=concrete_plan(model, columns, hint))
    elif to_full_model:
        best = Outcome("feasible", hint, float(objective @ hint), bound, 0.0, 0, "the best plan so far")
    else:
        local = rounding_box(0.6)
        best, box_nodes = (local if local.values is not None else None), local.nodes
        if best is not None and proven(best.objective, bound, gap):
            return Outcome("optimal", best.values, best.objective, bound, time.perf_counter() - started,
                           local.nodes, "rounding box within the gap of the LP bound")
    start = best
    if stop is not None and stop.stopped and best is not None:
        return replace(best, status=level_status(best.objective, bound, gap), bound=bound,
                       seconds=time.perf_counter() - started, detail="stopped")
    if (best is not None or hint is not None) and left() < FULL_MODEL_LP_TIMES * lp.seconds:
        # HiGHS checks its time limit only between rounds of root cuts, which take several LP
        # solves: with less time than that left, the full model would overrun the limit
        # (national-10k in 3 s, where the box had no time: 2.6 s for 0.3 s, and only the hint).
        log.info("  full model skipped: %.1fs left, under %d times the LP's %.1fs", left(), FULL_MODEL_LP_TIMES,
                 lp.seconds)
        if best is None:
            best = Outcome("feasible", hint, float(objective @ hint), bound, 0.0, 0, "the plan so far")
        if ties and integral and not proven(best.objective, bound, gap) and left() >= TIES_SEARCH_MIN_SECONDS \
                and not (stop is not None and stop.stopped):
            # Ties alone, and the level's time left, which the full model cannot use: the search
            # that moves cases, around the ties not honoured, up to its first stall (national-2k
            # round 0 in 10 s: the packings failed, the moves reached 93 ties of at most 137, the
            # search 129 in 0.7 s, and 132 growing its neighbourhoods to the level's end, 1.6 s;
            # national-30k in 60 s: 1,839 -> 1,841 in 1.2 s, or in 12.8 s to the level's end).
            # The rest of the time goes to the levels below. (national-30k in 60 s: level 3's LP
            # then failed in 28 s, where after 1,839 ties it took 11 s; it did so with the search
            # to the level's end too, and at an earlier commit, in two runs, at 25.6-25.9 s.)
            plan = best.plan if best.plan is not None else concrete_plan(model, columns, best.values)
            moved = None if plan is None else _rehouse(
                model, columns, objective, lp.values, plan, best.values, locks, bound, gap, settings,
                time.perf_counter() + left(), list(terms), stop, grow=False)
            if moved is not None:
                best = Outcome("feasible", moved[1], float(objective @ moved[1]), bound, 0.0, 0, "cases moved",
                               plan=moved[0])
        # The box's own status is "optimal" for the box: the level's is against its bound.
        return replace(best, status=level_status(best.objective, bound, gap), bound=bound,
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
    status = level_status(best.objective, bound, gap)
    # The moved (or packed) plan rides along even when the MIP beat it: if the MIP's counts
    # break a service where classes are counted, it is the plan that keeps every rule (``solve``).
    return Outcome(status, best.values, best.objective, bound, seconds, box_nodes + full.nodes, full.detail,
                   plan=start.plan if start is not None else None)


def _urgency_plans(
    level: _Level,
    lp: Outcome,
    bound: float,
    hint: np.ndarray | None,
    y_in: np.ndarray,
    on_log: Callable[[float | None, float | None], None] | None,
    common: dict,
    *,
    polish: bool,
) -> tuple[Outcome | None, np.ndarray, bool]:
    """Step 2 of :func:`solve_level` on the urgency level: the LP's counts rounded down and
    filled, then the cases it chose packed and, where the packing stalls, finished by a search
    around it. Returns the level's answer where one of them is proven (else None), the best plan
    so far, and whether the full model comes next, straight from the packing's search."""
    backend, model, program, columns = level.backend, level.model, level.program, level.columns
    objective, settings, left, started = level.objective, level.settings, level.left, level.started
    gap = settings.solver.relative_gap
    to_full_model = False
    filled = complete_hint(model, round_and_fill(model, lp.values[y_in]))[columns]
    value = float(objective @ filled)
    log.info("  rounded and filled: %.4f", value)
    if proven(value, bound, gap) and not polish:
        return Outcome("optimal", filled, value, bound, time.perf_counter() - started, 0,
                       "rounded LP plan within the gap of the LP bound"), hint, to_full_model
    if hint is None or float(objective @ hint) < value:
        hint = filled
    lp_full = expand(lp.values, columns, model.n_vars)
    totals = lp_pool_totals(model, lp_full)
    if totals.any():
        # Placing the cases the LP chose reaches the LP bound (less what it chose in part).
        packing = pack_lp_totals(model, lp.values[y_in], totals,
                                 time.perf_counter() + min(left() * PACK_SHARE, PACK_SECONDS),
                                 settings.solver.seed)
        packed = complete_hint(model, packing.values)[columns]
        value = float(objective @ packed)
        log.info("  LP totals %s: %.4f", "packed" if packing.complete else "partly packed", value)
        if proven(value, bound, gap * POLISH_GAP if polish else gap):
            return Outcome("optimal", packed, value, bound, time.perf_counter() - started, 0,
                           "the LP's cases packed: a plan at the LP bound"), hint, to_full_model
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
            if packing.many_waiting:
                log.info("  %d cases the LP chose wait: HiGHS searches %d municipalities per waiting pool",
                         packing.waiting, STALLED_NEIGHBOURS)
            searches = [packing.neighbourhood] + ([packing.wider] if packing.wider is not None else [])
            start = packed
            for i, near in enumerate(searches):
                repair = _finish_packing(backend, program, objective, start, *around_packing(near), bound, gap,
                                         lambda: left() * REPAIR_SHARE, FIND_PLAN_LP_TIMES * lp.seconds,
                                         on_log, common, polish=polish,
                                         search=not to_full_model and i == len(searches) - 1,
                                         cp_sat=not packing.many_waiting)
                log.info("  packing finished by a search in %d municipalities: %s %s in %.2fs (%s)",
                         int(near.sum()), repair.status, repair.objective, repair.seconds, repair.detail)
                if repair.values is not None and proven(repair.objective, bound, gap):
                    return Outcome("optimal", repair.values, repair.objective, bound,
                                   time.perf_counter() - started, repair.nodes,
                                   "the LP's cases packed with a search where packing stalled"), hint, to_full_model
                if repair.values is not None and repair.objective > float(objective @ start):
                    start = repair.values
            if float(objective @ start) > float(objective @ hint):
                hint = start
    if polish and proven(float(objective @ hint), bound, gap):
        # The best of the rounded, packed and searched plans, within the gap: proven.
        polished = Outcome("optimal", hint, float(objective @ hint), bound, time.perf_counter() - started, 0,
                           "the best plan within the gap of the LP bound, polished for the levels below")
        return polished, hint, to_full_model
    return None, hint, to_full_model


def _ties_plans(
    level: _Level,
    lp: Outcome,
    bound: float,
    hint: np.ndarray,
    locks: list[tuple[np.ndarray, float]],
    stop: StopFlag | None,
    *,
    integral: bool,
    above: tuple[np.ndarray | None, bool] | None = None,
) -> tuple[Outcome | None, np.ndarray]:
    """The ties level's steps before the rounding box and the full model (from ``hint``, the plan
    above): the level's answer where a step reaches a plan within the gap of ``bound``, or where
    its plan breaks a service capacity (the caller models it and solves again), else None; and
    the best plan so far. ``above``: the cases above placed already (beside the level's LP),
    as :func:`_same_cases` returns them."""
    backend, model, program, columns = level.backend, level.model, level.program, level.columns
    objective, settings, left, started = level.objective, level.settings, level.left, level.started
    gap = settings.solver.relative_gap
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
    if above is not None:
        placements.insert(0, ("the cases above placed", lambda: above))
    elif integral:
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
                           f"{what}; a service capacity to model"), hint
        if proven(value, bound, gap):
            return Outcome("optimal", tied, value, bound, time.perf_counter() - started, 0,
                           f"{what}: a plan at the LP bound"), hint
        if value > float(objective @ hint):
            hint = tied
    hint = _move_ties(model, columns, objective, hint, locks, time.perf_counter() + left())
    value = float(objective @ hint)
    if proven(value, bound, gap):
        return Outcome("optimal", hint, value, bound, time.perf_counter() - started, 0,
                       "ties moved into place: a plan at the LP bound"), hint
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
                           0, "the search around the ties; a service capacity to model"), hint
        if searched is not None:
            hint = searched
        value = float(objective @ hint)
        if proven(value, bound, gap):
            return Outcome("optimal", hint, value, bound, time.perf_counter() - started, 0,
                           "ties found by a search around them: a plan at the LP bound"), hint
    return None, hint


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
    cp_sat: bool = True,
) -> Outcome:
    """The search that finishes a stalled packing in its neighbourhood (``lower``/``upper``),
    from the ``packed`` plan. CP-SAT searches first (with ``cp_sat``), for at most
    ``cp_sat_seconds``; where its best plan is not within the gap, HiGHS's MIP searches from it
    for ``seconds()`` (with ``search``; without, the better of CP-SAT's plan and the packed one
    is returned). CP-SAT finishes packings with a few cases waiting; with many (national-2k
    seed 38: 39) it found nothing in 0.6 s, where HiGHS's MIP reached the bound.

    With levels to ``polish`` for, CP-SAT stops at a plan at ``bound`` or proven within a
    quarter of the gap of the neighbourhood's own bound (what HiGHS's MIP is asked for): the
    levels below are locked to this plan's urgency, and a plan that only reaches a quarter of
    the gap left the demo round's level 3 at 2.0% instead of 1.0%. Without, the first plan
    within the gap of ``bound`` is the level's answer, proven (national-2k seed 0's repair:
    0.69 s instead of 1.49 s, seed 26's 0.74 s instead of 0.96 s; replayed)."""
    if cp_sat:
        target = bound - (BOUND_TOLERANCE if polish else gap) * abs(bound)
        found = backend.find_plan(program, objective, target, lower=lower, upper=upper, hint=packed,
                                  time_limit=min(seconds(), cp_sat_seconds), relative_gap=gap / 4,
                                  locks=common["locks"], seed=common["seed"], stop=common["stop"],
                                  first_plan=not polish)
        if found.values is not None and proven(found.objective, bound, gap):
            return found
        log.info("  no plan within the gap in the packing's neighbourhood by CP-SAT (%s, %.2fs)", found.detail,
                 found.seconds)
    else:
        found = Outcome("no_solution", None, None, None, 0.0, 0, "many cases waiting: no CP-SAT search")
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
        return Outcome(level_status(start, bound, gap), hint, start, bound, full.seconds, full.nodes,
                       "the repaired plan; the full model found no better")
    return Outcome(level_status(full.objective, bound, gap), full.values, full.objective, bound, full.seconds,
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


def _above_beside_lp(expected: float | None, left: float) -> bool:
    """Would the ties level's placing of the cases above be skipped for want of time after its
    LP, ``expected`` to take that long at the pace of the LPs before, with ``left`` seconds left,
    while that LP, slower beside it, still fits in its time?"""
    if expected is None:
        return False
    lp = expected * TIES_LP_PACE
    after = max(left - lp, 0.0)
    share = SAME_CASES_ALONE_SHARE if after < FULL_MODEL_LP_TIMES * lp else SAME_CASES_SHARE
    return not lp_fits(lp, after * share) and lp <= left * LEVEL_LP_SHARE


def _beside(first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U]:
    """``first()`` solved in this thread while ``second()`` runs in another: both answers."""
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(second)
        return first(), other.result()


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
        full = expand(lp_values, columns, model.n_vars)
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
    values = values_of(model, moved)[columns]
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


def level_status(value: float, bound: float | None, gap: float) -> str:
    """A level's status: optimal when ``value`` is proven within ``gap`` of ``bound``."""
    return "optimal" if bound is not None and proven(value, bound, gap) else "feasible"


def _concrete_or_mended(
    model: PlacementModel, columns: np.ndarray, objective: np.ndarray, values: np.ndarray,
    locks: list[tuple[np.ndarray, float]], settings: Settings, terms: Sequence[str], deadline: float,
    backend: MathOptBackend | None = None,
) -> tuple[pd.Series, float] | None:
    """The concrete plan of counts ``values`` over ``columns`` and its value, where its class
    slots break a service capacity mended by the search's steps (:func:`.rehouse.mend_services`):
    national-2k's level 3 had dropped the full model's -1,941.4 for it, and ended at -1,945.4.
    None if not mended, or if the plan breaks a lock."""
    found, broken = choose_cases(model, complete_hint(model, expand(values, columns, model.n_vars)))
    if len(broken):
        found = mend_plan(model, found, broken, settings, terms, deadline, backend)
        if found is None:
            return None
    plan = values_of(model, found)[columns]
    if not all(c @ plan >= v - 1e-9 for c, v in locks):
        return None
    return found, float(objective @ plan)


def mend_plan(
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


def moves_cases(terms: list[str], has_scores: bool) -> bool:
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
    or each broke a lock; and whether the counts break a service capacity. Where no try
    completes, the best packing of the LP's own cases that left at most ``FEW_WAITING`` waiting,
    the room filled, is the answer if its plan keeps every lock. The packing is a randomised
    search: each failed try starts anew with the next seed (``TIES_PACK_TRIES`` at most); after
    counts that break a service capacity but reach ``enough``, or gain a unit over the plan
    above, only ``BREAKING_RETRIES`` more tries (the caller models the capacity and packs the
    cases it takes out back in; national-1k: 6 s of tries, all breaking, before; national-2k:
    the third try keeps every capacity; national-30k: 3 s of tries after the first, 1,839 ties
    of at most 1,908, found nothing better, and the packing in the finer model kept them on its
    first try)."""
    lp_full, above = expand(lp_values, columns, model.n_vars), expand(hint, columns, model.n_vars)
    # The cases of the plan above; where the LP chose other cases (this level's LP may trade
    # cases within the lock), every second try packs the LP's own cases (rounded down, the room
    # left filled) instead.
    full_locks = [(expand(c, columns, model.n_vars), v) for c, v in locks]
    totals_above = lp_pool_totals(model, above)
    totals_lp = np.floor(lp_pool_totals(model, lp_full) + 1e-6)
    differ = not np.array_equal(np.rint(totals_above), totals_lp)
    # The LP's own cases first when their urgency alone keeps the locks (filling only adds):
    # national-30k's packings of the plan above's cases stall, and under load a second try may
    # find no time left; national-5k's own cases break the lock, so they go second there.
    own_first = differ and all(c @ most_urgent(model, totals_lp) >= v - 1e-9 for c, v in full_locks)
    attempt = 0
    breaking = None
    short: np.ndarray | None = None  # the best plan of a filled packing that left some cases out
    last_try: int | None = None
    while (attempt == 0 or time.perf_counter() < deadline and not (stop is not None and stop.stopped)) \
            and attempt < (last_try or TIES_PACK_TRIES):
        own = differ and attempt % 2 == (0 if own_first else 1)
        packing = pack_with_ties(model, lp_full[model.blocks["y"]], lp_full[model.blocks["a"]],
                                 totals_lp if own else totals_above, deadline, seed + attempt, fill=own)
        attempt += 1
        if not packing.complete:
            # The LP's own cases but a few, and the room filled, may still keep the locks: the
            # level's plan where no try completes (national-30k in 10 s: the one try that fits
            # ends with 1-5 cases waiting; 1,735 -> 1,928 ties of at most 1,948 on one round).
            if own and not packing.many_waiting:
                plan, _ = _ties_plan(model, columns, packing.values, locks)
                if plan is not None and (short is None or objective @ plan > objective @ short):
                    short = plan
                    log.info("  ties packing: %d cases waiting on try %d; filled, %.0f", packing.waiting,
                             attempt, float(objective @ plan))
                    if objective @ plan >= enough:
                        return plan, False
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
    if short is not None and (breaking is None or objective @ short >= objective @ breaking):
        return short, False
    return breaking, breaking is not None


def _move_ties(
    model: PlacementModel, columns: np.ndarray, objective: np.ndarray, hint: np.ndarray,
    locks: list[tuple[np.ndarray, float]], deadline: float,
) -> np.ndarray:
    """``hint`` with tied cases preferred to their pool's other cases where the locks allow, then
    moved to their tie municipality or swapped there until ``deadline`` (:mod:`.ties`); no LP
    needed."""
    full_locks = [(expand(c, columns, model.n_vars), v) for c, v in locks]
    full = prefer_tied_cases(model, expand(hint, columns, model.n_vars), full_locks)
    improved = complete_hint(model, honour_more_ties(model, complete_hint(model, full), deadline=deadline))[columns]
    log.info("  ties honoured by moving and swapping cases: %.0f -> %.0f",
             float(objective @ hint), float(objective @ improved))
    return improved


def _search_ties_without_lp(
    model: PlacementModel, columns: np.ndarray, objective: np.ndarray, hint: np.ndarray,
    locks: list[tuple[np.ndarray, float]], gap: float, settings: Settings, deadline: float, terms: list[str],
    stop: StopFlag | None,
) -> tuple[pd.Series | None, np.ndarray]:
    """``hint`` (the plan above) with the ties moves (:func:`_move_ties`) and then the search
    that moves cases, its neighbourhoods drawn around the ties not honoured, until ``deadline``
    or ``stop``: the concrete plan and its vector over ``columns``. Where the moves' class slots
    break a service capacity the model does not count, there is no concrete plan to search
    from: None and the moved counts (the level's checks model the capacity, as after the
    moves without an LP; national-10k seed 3 in 10 s stopped with an error here)."""
    hint = _move_ties(model, columns, objective, hint, locks, deadline)
    plan = concrete_plan(model, columns, hint)
    if plan is None:
        return None, hint
    moved = _rehouse(model, columns, objective, None, plan, hint, locks, level_bound(model, columns, objective), gap,
                     settings, deadline, terms, stop)
    return moved if moved is not None else (plan, hint)


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
        backend, model, program, columns, objective, expand(lp_values, columns, model.n_vars),
        expand(hint, columns, model.n_vars), target=np.floor(bound + 1e-6), time_limit=seconds, locks=locks,
        seed=seed, stop=stop)
    start = float(objective @ hint)
    plan = counts = None
    better = found.values is not None and found.objective > start + 0.5
    if better:
        plan, counts = _ties_plan(model, columns, expand(found.values, columns, model.n_vars), locks)
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
    full_locks = [(expand(c, columns, model.n_vars), v) for c, v in locks]
    # The most urgent cases of each pool are chosen; tied cases take the places their units
    # keep at their tie municipalities, where the locks allow (national-30k: 1,835 -> 1,947).
    values = prefer_tied_cases(model, complete_hint(model, values), full_locks)
    found, broken = choose_cases(model, values)
    if len(broken):
        counts = complete_hint(model, values)[columns]
        return None, counts if all(c @ counts >= v - 1e-9 for c, v in locks) else None
    plan = values_of(model, found)[columns]
    return (plan, None) if all(c @ plan >= v - 1e-9 for c, v in locks) else (None, None)


def proven(objective: float | None, bound: float | None, gap: float) -> bool:
    return objective is not None and bound is not None and (
        bound - objective <= gap * max(abs(bound), abs(objective), 1e-9) + 1e-9
    )

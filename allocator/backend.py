"""Solving a built model with an OR-Tools MathOpt backend (HiGHS by default, or SCIP), and
CP-SAT's search for a plan at a target (:meth:`MathOptBackend.find_plan`).

The model proto is filled straight from numpy arrays (no per-variable Python objects), and the
result carries the solver's own primal and dual bounds, so every gap we report is proven by the
solver against the full model.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import sys
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import ortools
import scipy.sparse as sp
from ortools.math_opt import callback_pb2, model_parameters_pb2, model_pb2, result_pb2, solution_pb2
from ortools.math_opt.core.python import solver as core_solver
from ortools.math_opt.python import callback, init_arguments, parameters
from ortools.util.python import solve_interrupter
from pybind11_abseil.status import StatusCode, StatusNotOk

from .model import LinearProgram

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How often a solve waiting for the solver looks for a stop request, seconds.
STOP_POLL_SECONDS = 0.05
#: Calls made when the solver fails internally, before the call answers "no solution".
SOLVER_ERROR_ATTEMPTS = 2

#: Presolve time per nonzero allowed for, generously (national-30k, level 3: 0.23 s for 246k).
PRESOLVE_SECONDS_PER_NONZERO = 4e-6
#: LPs at least this large set the expected pace of LPs: a tiny one's time is mostly the call's
#: own. Above it, the pace only grows with size and from level to level (about 4 µs per nonzero
#: at 14k-32k nonzeros, 6-8 µs for level 1 at 24k-124k, 12-17 µs for level 3 at 60k-186k).
LP_PACE_MIN_NONZEROS = 20_000
#: Where every plan's value is a whole number, a bound less than this above the best plan
#: proves it optimal (a little under one, for the solver's tolerances).
INTEGRAL_GAP = 1.0 - 1e-6
#: HiGHS's presolve rule that MIPs over a whole model are solved without: with it, HiGHS proved
#: plans optimal that other plans beat (docs/model.md, "Proof"). Named as HiGHS's log names it; its bit in
#: ``presolve_rule_off`` differs between HiGHS versions, so it is read from that log.
UNSAFE_MIP_PRESOLVE_RULE = "Parallel rows and columns"
_RULE_LINE = re.compile(r"Rule\s+\d+\s+\(bit\s+(?P<bit>\d+)\):\s+(?P<name>.+?)\s*$")

SOLVER_TYPES = {"highs": parameters.SolverType.HIGHS, "scip": parameters.SolverType.GSCIP}

# A HiGHS MIP log row: "... BestBound BestSol Gap ..." with the time last.
_HIGHS_ROW = re.compile(
    r"^\s*[A-Za-z]?\s+\d+\s+\d+\s+\d+\s+[\d.]+%\s+(?P<bound>[-+\d.e]+|-?inf)\s+(?P<best>[-+\d.e]+|-?inf)\s+"
)
_HIGHS_VERSION = re.compile(r"Running HiGHS (\S+)")


@dataclass(frozen=True)
class Progress:
    """What a running solve has reached so far, for progress reports."""

    level: int
    elapsed: float
    objective: float | None
    bound: float | None

    @property
    def gap(self) -> float | None:
        return relative_gap(self.objective, self.bound)


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    if objective is None or bound is None or not np.isfinite(objective) or not np.isfinite(bound):
        return None
    return abs(bound - objective) / max(abs(bound), abs(objective), 1e-9)


@dataclass(frozen=True)
class Outcome:
    """The answer of one backend call."""

    status: str  # optimal | feasible | infeasible | no_solution
    values: np.ndarray | None
    objective: float | None
    bound: float | None
    seconds: float
    nodes: int
    detail: str
    #: LP solves only: the reduced cost of each variable (for a maximisation, a variable at its
    #: lower bound with reduced cost -r loses at least r per unit it rises).
    reduced_costs: np.ndarray | None = None
    #: LP solves only: each lock's dual value, what a unit more of its bound would cost the
    #: objective (0 where the lock does not bind).
    lock_duals: np.ndarray | None = None
    #: A concrete plan (free case_id -> municipality number) behind ``values``, when a search
    #: over cases found it; else the counts are turned into cases after the level.
    plan: pd.Series | None = None
    #: Where ``bound`` comes from, for a level's answer (:data:`.result.BOUND_SOURCES`); empty
    #: where not said.
    bound_from: str = ""

    @property
    def gap(self) -> float | None:
        if self.status == "optimal":
            return relative_gap(self.objective, self.bound) or 0.0
        return relative_gap(self.objective, self.bound)


class StopFlag:
    """Ask running solves to stop early; they keep the best plan found. The solver is
    interrupted where it listens (SCIP); HiGHS does not, and its running call is left behind
    (:meth:`MathOptBackend.solve`)."""

    def __init__(self, parent: StopFlag | None = None) -> None:
        self._event = threading.Event()
        self._interrupters: list[solve_interrupter.SolveInterrupter] = []
        self._lock = threading.Lock()
        self._parent = parent  # a stop of the parent stops this one too (read, not propagated)

    def stop(self) -> None:
        with self._lock:
            self._event.set()
            for interrupter in self._interrupters:
                interrupter.interrupt()

    @property
    def stopped(self) -> bool:
        return self._event.is_set() or (self._parent is not None and self._parent.stopped)

    def attach(self, interrupter: solve_interrupter.SolveInterrupter) -> None:
        with self._lock:
            self._interrupters.append(interrupter)
            if self._event.is_set():
                interrupter.interrupt()

    def detach(self, interrupter: solve_interrupter.SolveInterrupter) -> None:
        with self._lock:
            self._interrupters.remove(interrupter)


_QUIET_LOCK = threading.Lock()
_quiet_depth = 0
_saved_stdout: int | None = None


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Keep the solver library's stray prints (HiGHS writes some debug lines straight to the
    process's stdout) out of our output; our own logging goes to stderr. Safe for concurrent
    solves in threads: the first one in redirects, the last one out restores."""
    global _quiet_depth, _saved_stdout
    with _QUIET_LOCK:
        if _quiet_depth == 0:
            try:
                sys.stdout.flush()
                _saved_stdout = os.dup(1)
                with open(os.devnull, "w") as devnull:
                    os.dup2(devnull.fileno(), 1)
            except (OSError, ValueError):  # no real stdout (e.g. under some test runners)
                _saved_stdout = None
        _quiet_depth += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _saved_stdout is not None:
                os.dup2(_saved_stdout, 1)
                os.close(_saved_stdout)
                _saved_stdout = None


def solver_version(backend: str) -> str:
    return f"OR-Tools {ortools.__version__} / MathOpt {backend.upper()}"


#: CP-SAT's parameters for a search whose first plan at the target is the answer (the urgency
#: level with no level after it): its LP relaxation over every row (linearization level 2)
#: steers it to the target sooner, and one presolve pass is enough. national-2k's 32 seeds:
#: 3.7 s of searches instead of 4.8 s; where levels follow they proved lower plans
#: (docs/model.md, "How a level is solved").
CP_SAT_FIRST_PLAN_OPTIONS = {"linearization_level": 2, "max_presolve_iterations": 1}


@functools.cache
def highs_mip_options() -> dict[str, int | str]:
    """HiGHS options of a MIP over a whole model: ``presolve_rule_off`` with the bit of
    :data:`UNSAFE_MIP_PRESOLVE_RULE`, or, where this HiGHS does not name that rule in its log,
    no MIP presolve at all (slower, but no proof rests on the rule)."""
    bits = _highs_presolve_rule_bits()
    if UNSAFE_MIP_PRESOLVE_RULE in bits:
        return {"presolve_rule_off": bits[UNSAFE_MIP_PRESOLVE_RULE]}
    log.warning("HiGHS names no presolve rule %r; its MIPs are solved without presolve", UNSAFE_MIP_PRESOLVE_RULE)
    return {"presolve": "off"}


def _highs_presolve_rule_bits() -> dict[str, int]:
    """The bit of each presolve rule HiGHS can switch off, from its log of a tiny MIP solved
    with every bit set."""
    proto = model_pb2.ModelProto()
    proto.variables.ids.append(0)
    proto.variables.lower_bounds.append(0.0)
    proto.variables.upper_bounds.append(1.0)
    proto.variables.integers.append(True)
    proto.variables.names.append("")
    params = parameters.SolveParameters(enable_output=True).to_proto()
    params.highs.int_options["presolve_rule_off"] = (1 << 30) - 1
    params.highs.int_options["log_dev_level"] = 1
    lines: list[str] = []
    with _quiet_stdout():
        core_solver.solve(proto, parameters.SolverType.HIGHS.value,
                          init_arguments.StreamableSolverInitArguments().to_proto(), params,
                          model_parameters_pb2.ModelSolveParametersProto(), lines.extend,
                          callback.CallbackRegistration().to_proto(), None, None)
    found = (_RULE_LINE.search(line) for line in lines if "Cannot disallow" not in line)
    return {m.group("name"): int(m.group("bit")) for m in found if m}


class MathOptBackend:
    """One MathOpt solver; ``solve`` may be called once per objective level."""

    def __init__(self, name: str = "highs"):
        if name not in SOLVER_TYPES:
            raise ValueError(f"unknown backend {name!r}; choose from {sorted(SOLVER_TYPES)}")
        self.name = name
        #: The main solver's version (HiGHS's own, once its log names it).
        self.main_version = solver_version(name)
        #: Set once a plan of CP-SAT's (:meth:`find_plan`) was returned.
        self.used_cp_sat = False
        #: CP-SAT's own parameters (besides seed and gap) of the searches whose plans were used.
        self.cp_sat_options: dict[str, int] = {}
        #: Seconds per nonzero of the slowest large LP relaxation solved so far, or None.
        self.lp_pace: float | None = None

    @property
    def version(self) -> str:
        """The solvers whose plans a result may hold, with their versions."""
        return self.main_version + (" + CP-SAT" if self.used_cp_sat else "")

    def expected_lp_seconds(self, model: LinearProgram, locks: list[tuple[np.ndarray, float]] | None = None,
                            ) -> float | None:
        """Seconds the LP relaxation of ``model`` plus ``locks`` can be expected to take, at the
        pace of the slowest large LP this backend has solved (None before one). The levels'
        LPs only get slower per nonzero from level to level (national-30k: 2.7, 4.2, 9.4 s for
        about the same size), so this is an estimate from below."""
        if self.lp_pace is None:
            return None
        return self.lp_pace * _nonzeros(model, locks)

    def _proto(
        self,
        model: LinearProgram,
        objective: np.ndarray,
        locks: list[tuple[np.ndarray, float]],
        lower: np.ndarray,
        upper: np.ndarray,
        integer: np.ndarray,
    ) -> model_pb2.ModelProto:
        proto = model_pb2.ModelProto()
        n = model.n_vars
        proto.variables.ids.extend(range(n))
        proto.variables.lower_bounds.extend(lower.tolist())
        proto.variables.upper_bounds.extend(upper.tolist())
        proto.variables.integers.extend(integer.tolist())
        nz = np.flatnonzero(objective)
        proto.objective.maximize = True
        proto.objective.linear_coefficients.ids.extend(nz.tolist())
        proto.objective.linear_coefficients.values.extend(objective[nz].tolist())

        matrix, row_lower, row_upper = _with_locks(model, locks)
        matrix.sum_duplicates()
        matrix.sort_indices()
        rows = matrix.shape[0]
        proto.linear_constraints.ids.extend(range(rows))
        proto.linear_constraints.lower_bounds.extend(row_lower.tolist())
        proto.linear_constraints.upper_bounds.extend(row_upper.tolist())
        coo = matrix.tocoo()
        proto.linear_constraint_matrix.row_ids.extend(coo.row.tolist())
        proto.linear_constraint_matrix.column_ids.extend(coo.col.tolist())
        proto.linear_constraint_matrix.coefficients.extend(coo.data.tolist())
        return proto

    def solve(
        self,
        model: LinearProgram,
        objective: np.ndarray,
        *,
        locks: list[tuple[np.ndarray, float]] | None = None,
        time_limit: float,
        relative_gap: float,
        seed: int = 0,
        threads: int = 1,
        hint: np.ndarray | None = None,
        stop: StopFlag | None = None,
        on_log: Callable[[float | None, float | None], None] | None = None,
        upper: np.ndarray | None = None,
        lower: np.ndarray | None = None,
        relax: bool = False,
        absolute_gap: float | None = None,
        presolve: bool = True,
        on_line: Callable[[str], None] | None = None,
        simplex: bool = False,
        tiny: bool = False,
        paced: bool = True,
    ) -> Outcome:
        """Maximise ``objective`` over the model plus ``locks`` (rows ``c @ v >= b``).

        ``upper`` replaces the variables' upper bounds (to search a restricted neighbourhood);
        ``relax`` drops integrality (the LP relaxation, whose optimum bounds the model's).
        ``on_line`` receives every line of the solver's log. ``simplex`` solves an LP (``relax``)
        by HiGHS's dual simplex instead of its interior point method. ``tiny`` marks a MIP of a
        few dozen variables, solved thousands of times (the case-moving search's steps): HiGHS
        then skips its feasibility jump and symmetry detection, which took longer than the
        solve itself (a 42-variable step: 10 ms with them, 2.4 ms without; the same optimum). ``absolute_gap`` stops the
        search once the plan is this close to the solver's own bound (with a bound from outside
        that is no better than the solver's, a plan within ``absolute_gap`` of that bound always
        stops it). An LP not ``paced`` (solved beside another solve) does not count towards
        :meth:`expected_lp_seconds`.
        """
        if stop is not None and stop.stopped:
            # MathOpt's HiGHS does not take an interrupter: a solve once started runs to its time
            # limit. So none is started after a stop; every caller keeps the plan it has.
            return Outcome("no_solution", None, None, None, 0.0, 0, "stopped")
        nonzeros = _nonzeros(model, locks)
        if not relax and time_limit < PRESOLVE_SECONDS_PER_NONZERO * nonzeros:
            # HiGHS's MIP presolve does not look at the time limit either (national-30k-scores:
            # 0.47 s asked, 1.18 s taken): with less time than it may need, the search is not
            # started. Every caller keeps the plan it has.
            return Outcome("no_solution", None, None, None, 0.0, 0, "no time for the solver's presolve")
        integer = np.zeros_like(model.integer) if relax else model.integer
        integral = not relax and integral_objective(model.integer, objective)
        if integral:
            # HiGHS notes an integral objective but stops only at its own gap: the demo round's
            # ties level had 206 ties and a bound of 206.7, which proves them, at its root, and
            # ran on to its time limit, 27 s in all (2.7 s with this).
            absolute_gap = max(absolute_gap or 0.0, INTEGRAL_GAP)
        proto = self._proto(model, objective, locks or [], model.lower if lower is None else lower,
                            model.upper if upper is None else upper, integer)
        params = parameters.SolveParameters(
            time_limit=dt.timedelta(seconds=max(time_limit, 0.05)),
            relative_gap_tolerance=relative_gap,
            random_seed=seed,
            enable_output=on_log is not None or on_line is not None,
            absolute_gap_tolerance=absolute_gap,
        )
        if self.name == "highs":
            # HiGHS keeps one thread pool per process: changing its size between solves is an
            # error, so the pool keeps HiGHS's own default (its MIP search is mostly serial).
            if not presolve:
                params.highs.string_options["presolve"] = "off"
            if tiny:
                params.highs.bool_options["mip_heuristic_run_feasibility_jump"] = False
                params.highs.bool_options["mip_detect_symmetry"] = False
            if relax:
                # These LPs are highly degenerate: the interior point method with crossover (to a
                # vertex, which the rounding needs) is faster than simplex on the large ones, and
                # its vertex packs better (national-2k, 32 seeds, both LPs of level 1 by simplex:
                # 57.8 s in all against 46.7 s, more packings stalled).
                params.highs.string_options["solver"] = "simplex" if simplex else "ipm"
                if presolve and time_limit < PRESOLVE_SECONDS_PER_NONZERO * nonzeros:
                    # HiGHS does not look at its time limit during presolve, and the interior
                    # point method, started after the limit, then runs to the end (national-30k,
                    # level 3 with 0.2 s left: 6.6 s). Without presolve the limit holds; these
                    # LPs take as long either way (5.9 s against 6.6 s there).
                    params.highs.string_options["presolve"] = "off"
            elif upper is None and lower is None:
                # A MIP over the whole model, whose bound may prove a level. A neighbourhood
                # (bounds given) keeps every rule: only its plans are used, and they are checked;
                # without the rule, level 1's searches took 8% longer (national-2k, one seed 2x).
                for key, value in highs_mip_options().items():
                    if isinstance(value, int):
                        params.highs.int_options[key] = value
                    else:
                        params.highs.string_options[key] = value
        else:
            params.threads = threads
        model_params = _with_hint(hint)

        abandoned = threading.Event()  # set when a stop leaves the call behind: report nothing more

        def message(lines: list[str]) -> None:
            if abandoned.is_set():
                return
            for line in lines:
                if on_line is not None:
                    on_line(line)
                version = _HIGHS_VERSION.search(line)
                if version:
                    self.main_version = f"OR-Tools {ortools.__version__} / MathOpt HiGHS {version.group(1)}"
                row = _HIGHS_ROW.match(line)
                if row and on_log is not None:
                    on_log(_number(row.group("best")), _number(row.group("bound")))

        started = time.perf_counter()
        answer = _call(proto, SOLVER_TYPES[self.name], params, model_params,
                       message if on_log is not None or on_line is not None else None, stop, abandoned)
        if answer is None:
            return Outcome("no_solution", None, None, None, time.perf_counter() - started, 0, "stopped")
        result, error = answer
        if result is None:
            return Outcome("no_solution", None, None, None, time.perf_counter() - started, 0, f"solver error: {error}")
        outcome = _outcome(result, model.n_vars, time.perf_counter() - started,
                           range(model.matrix.shape[0], model.matrix.shape[0] + len(locks or [])))
        if integral and outcome.bound is not None:
            outcome = replace(outcome, bound=float(np.floor(outcome.bound + 1e-6)))
        if relax and paced and outcome.status == "optimal" and nonzeros >= LP_PACE_MIN_NONZEROS:
            self.lp_pace = max(self.lp_pace or 0.0, outcome.seconds / nonzeros)
        if outcome.status == "infeasible" and presolve and (hint is not None or locks):
            # A level with a known plan cannot be infeasible; HiGHS 1.12's MIP presolve has been
            # seen to say so on tiny models with a lock row. Ask again without presolve. A model
            # restricted around a plan that misses a lock may well be infeasible (the mend after
            # a repair that cost a level above): only a plan found then is worth a warning.
            again = self.solve(model, objective, locks=locks, time_limit=time_limit, relative_gap=relative_gap,
                               seed=seed, threads=threads, hint=hint, stop=stop, on_log=on_log, upper=upper,
                               lower=lower, relax=relax, absolute_gap=absolute_gap, presolve=False,
                               on_line=on_line, tiny=tiny)
            if again.values is not None:
                log.warning("the solver's presolve reported an infeasible model that has a plan; solved without it")
            return again
        return outcome

    def find_plan(
        self,
        model: LinearProgram,
        objective: np.ndarray,
        target: float,
        *,
        lower: np.ndarray,
        upper: np.ndarray,
        hint: np.ndarray | None,
        time_limit: float,
        relative_gap: float = 0.0,
        locks: list[tuple[np.ndarray, float]] | None = None,
        seed: int = 0,
        stop: StopFlag | None = None,
        first_plan: bool = False,
    ) -> Outcome:
        """Maximise ``objective`` over ``model`` plus ``locks`` within ``lower`` and ``upper``,
        every variable whole, by CP-SAT from ``hint``, and stop at the first plan whose value is
        at least ``target``, or once CP-SAT proves its plan within ``relative_gap`` of its own
        bound: the best plan found (``feasible``, its ``detail`` says whether it reached the
        target; no bound, as CP-SAT's holds only for the restricted model), or ``no_solution``.
        ``first_plan``: the first plan at the target is the answer, and CP-SAT runs with
        :data:`CP_SAT_FIRST_PLAN_OPTIONS`.

        CP-SAT runs one worker: with two, which plan comes first depends on timing, and a round
        solved again must give the same plan (a scenario's months are solved again with the same
        seed). On national-30k's repair one worker took 2.7 s, two 2.2-2.9 s.

        Where a packing leaves a few cases waiting, HiGHS's MIP over the municipalities around
        them finds a plan near the bound only after its root cuts: on national-30k, with levels
        to follow, it took 8-9 s to end outside a quarter of the gap; CP-SAT was within it in
        2.2-2.9 s. Every variable whole restricts the model, so its plans are the model's; the
        one returned is checked against every row.
        """
        started = time.perf_counter()
        if stop is not None and stop.stopped:
            return Outcome("no_solution", None, None, None, 0.0, 0, "stopped")
        restricted = _fixed_out(model, locks or [], lower, upper)
        if restricted is None:
            return Outcome("no_solution", None, None, None, time.perf_counter() - started, 0,
                           "the fixed counts break a row")
        free, fixed = restricted.free, restricted.fixed
        small = restricted.program
        constant = float(objective @ fixed)
        proto = self._proto(small, objective[free], [], small.lower, small.upper, np.ones(len(free), dtype=bool))
        params = parameters.SolveParameters(time_limit=dt.timedelta(seconds=max(time_limit, 0.05)),
                                            random_seed=seed, threads=1, relative_gap_tolerance=relative_gap)
        options = CP_SAT_FIRST_PLAN_OPTIONS if first_plan else {}
        for key, value in options.items():
            setattr(params.cp_sat, key, value)
        model_params = _with_hint(None if hint is None else np.rint(hint[free]))
        registration = callback_pb2.CallbackRegistrationProto(
            request_registration=[callback_pb2.CALLBACK_EVENT_MIP_SOLUTION])
        small_objective = objective[free]

        def at_target(data: callback_pb2.CallbackDataProto) -> callback_pb2.CallbackResultProto:
            vector = data.primal_solution_vector
            value = constant + float(small_objective[np.fromiter(vector.ids, dtype=np.int64)]
                                     @ np.fromiter(vector.values, dtype=float))
            return callback_pb2.CallbackResultProto(terminate=value >= target)

        answer = _call(proto, parameters.SolverType.CP_SAT, params, model_params, None, stop, threading.Event(),
                       registration, at_target)
        seconds = time.perf_counter() - started
        if answer is None:
            return Outcome("no_solution", None, None, None, seconds, 0, "stopped")
        result, error = answer
        if result is None:
            return Outcome("no_solution", None, None, None, seconds, 0, f"CP-SAT error: {error}")
        found = _outcome(result, len(free), seconds, range(0)).values
        if found is None:
            return Outcome("no_solution", None, None, None, seconds, 0, "CP-SAT: no plan")
        values = fixed.copy()
        values[free] = found
        if not _keeps_rows(model, locks or [], values, lower, upper):
            log.warning("CP-SAT's plan breaks a row of the model: not used")
            return Outcome("no_solution", None, None, None, seconds, 0, "CP-SAT's plan breaks a row")
        self.used_cp_sat = True
        self.cp_sat_options.update(options)
        value = float(objective @ values)
        return Outcome("feasible", values, value, None, seconds, 0,
                       "CP-SAT: a plan at the target" if value >= target else "CP-SAT: its best plan in time")


def _with_hint(hint: np.ndarray | None) -> model_parameters_pb2.ModelSolveParametersProto:
    """Model parameters carrying ``hint`` as a solution hint over every variable (HiGHS takes a
    hint only when it gives every variable: a partial one is ignored)."""
    model_params = model_parameters_pb2.ModelSolveParametersProto()
    if hint is not None:
        h = model_params.solution_hints.add()
        h.variable_values.ids.extend(range(len(hint)))
        h.variable_values.values.extend(hint.tolist())
    return model_params


def _call(
    proto: model_pb2.ModelProto,
    solver: parameters.SolverType,
    params: parameters.SolveParameters,
    model_params: model_parameters_pb2.ModelSolveParametersProto,
    message: Callable[[list[str]], None] | None,
    stop: StopFlag | None,
    abandoned: threading.Event,
    registration: callback_pb2.CallbackRegistrationProto | None = None,
    user_callback: Callable[[callback_pb2.CallbackDataProto], callback_pb2.CallbackResultProto] | None = None,
) -> tuple[result_pb2.SolveResultProto | None, str] | None:
    """One solver call, asked again after an internal failure: the result (None after repeated
    failures) and the last error, or None when ``stop`` left the call behind (``abandoned`` is
    then set, so that its messages are dropped). ``user_callback`` is called on the events of
    ``registration``."""
    interrupter = solve_interrupter.SolveInterrupter()
    # Only a call that can be stopped gets it: with one, SCIP (OR-Tools 9.15) writes
    # "SCIPcatchEvent does not support variable or row change events" on every call.
    listens = interrupter.pybind_interrupter if stop is not None else None

    def attempts() -> tuple[result_pb2.SolveResultProto | None, str]:
        error = ""
        for attempt in range(1, SOLVER_ERROR_ATTEMPTS + 1):
            try:
                return core_solver.solve(
                    proto,
                    solver.value,
                    init_arguments.StreamableSolverInitArguments().to_proto(),
                    params.to_proto(),
                    model_params,
                    message,
                    registration if registration is not None else callback.CallbackRegistration().to_proto(),
                    user_callback,
                    listens,
                ), ""
            except StatusNotOk as exc:
                # HiGHS has failed now and then with "HighsStatus: kError [INTERNAL]" while
                # another thread solved at once (the search that moves cases runs two steps
                # in parallel; seen once in CI). A solver's internal failure is no reason to
                # lose the round: ask again, then answer "no solution" (every caller copes).
                if exc.status.code() != StatusCode.INTERNAL:
                    raise
                log.warning("solver error on attempt %d of %d: %s", attempt, SOLVER_ERROR_ATTEMPTS, exc)
                error = str(exc)
        return None, error

    if stop is None:
        with _quiet_stdout():
            return attempts()
    stop.attach(interrupter)
    try:
        # Quiet while this caller waits, not while a call left behind runs out: our output after
        # a stop must reach stdout.
        with _quiet_stdout():
            answer = _until_stopped(attempts, stop)
    finally:
        stop.detach(interrupter)
    if answer is None:
        abandoned.set()
        log.info("solver call left to run out in the background: stopped")
    return answer


def _with_locks(model: LinearProgram, locks: list[tuple[np.ndarray, float]]
                ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """The rows of ``model`` and then each lock ``c @ v >= b``: matrix, lower and upper bounds."""
    if not locks:
        return model.matrix.tocsr(), model.row_lower, model.row_upper
    matrix = sp.vstack([model.matrix, sp.csr_matrix(np.vstack([c for c, _ in locks]))], format="csr")
    return (matrix, np.concatenate([model.row_lower, [b for _, b in locks]]),
            np.concatenate([model.row_upper, np.full(len(locks), np.inf)]))


@dataclass(frozen=True)
class _Restricted:
    """A program over the free variables of another, whose fixed ones are substituted out."""

    program: LinearProgram
    free: np.ndarray  # the free variables' indices in the whole program
    fixed: np.ndarray  # a vector of the whole program: the fixed variables' values, zero elsewhere


def _fixed_out(model: LinearProgram, locks: list[tuple[np.ndarray, float]], lower: np.ndarray,
               upper: np.ndarray, tolerance: float = 1e-6) -> _Restricted | None:
    """``model`` and its ``locks`` within ``lower``/``upper``, with every variable whose bounds
    meet taken out at its value: each row's bounds less what the fixed variables use, and rows
    left without a variable dropped. None where such a row is broken (no plan in the bounds).

    A search around a packing fixes most counts, which CP-SAT would load and presolve first
    (national-2k's searches leave 2,600-3,100 of 7,500-10,000 variables free; 13 searches of
    national-2k and -5k rounds, replayed, best of 3: 2.12-2.14 s in all against 2.35-2.46 s).
    The rows keep whole coefficients where they had them: the fixed values are whole, so the
    shift is exact."""
    matrix, row_lower, row_upper = _with_locks(model, locks)
    is_fixed = lower == upper
    fixed = np.where(is_fixed, lower, 0.0)
    free = np.flatnonzero(~is_fixed)
    used = matrix @ fixed
    part = matrix.tocsc()[:, free].tocsr()
    part.eliminate_zeros()
    kept = np.diff(part.indptr) > 0
    gone = ~kept
    if np.any(used[gone] < row_lower[gone] - tolerance) or np.any(used[gone] > row_upper[gone] + tolerance):
        return None
    program = LinearProgram(lower[free], upper[free], model.integer[free], part[kept],
                            row_lower[kept] - used[kept], row_upper[kept] - used[kept])
    return _Restricted(program, free, fixed)


def _keeps_rows(model: LinearProgram, locks: list[tuple[np.ndarray, float]], values: np.ndarray,
                lower: np.ndarray, upper: np.ndarray, tolerance: float = 1e-6) -> bool:
    """Do ``values`` keep every row of ``model``, each lock ``c @ v >= b``, and the bounds?"""
    activity = model.matrix @ values
    return bool(np.all(activity >= model.row_lower - tolerance) and np.all(activity <= model.row_upper + tolerance)
                and all(c @ values >= b - tolerance for c, b in locks)
                and np.all(values >= lower - tolerance) and np.all(values <= upper + tolerance))


def integral_objective(integer: np.ndarray, objective: np.ndarray) -> bool:
    """Is the objective a whole number on every plan (whole coefficients on the ``integer``
    variables only, as the ties term)?"""
    on_integer = objective[integer]
    return bool(not objective[~integer].any() and np.array_equal(on_integer, np.rint(on_integer)))


def _nonzeros(model: LinearProgram, locks: list[tuple[np.ndarray, float]] | None) -> int:
    return model.matrix.nnz + sum(int(np.count_nonzero(c)) for c, _ in locks or [])


def _until_stopped(call: Callable[[], T], stop: StopFlag) -> T | None:
    """``call()``'s answer, or None as soon as ``stop`` is set: MathOpt's HiGHS takes no
    interrupter (its solve runs to its own limit: a stop during national-2k's last level took
    up to 31 s), so the call runs in a thread of its own, and a stop leaves it behind. It ends at
    its time limit; in a worker process that exits after the round, sooner."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["answer"] = call()
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=run, name="solver-call", daemon=True)
    thread.start()
    while thread.is_alive() and not stop.stopped:
        thread.join(STOP_POLL_SECONDS)
    if thread.is_alive():
        return None
    if "error" in box:
        raise box["error"]
    return box["answer"]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _outcome(result: result_pb2.SolveResultProto, n_vars: int, seconds: float, lock_rows: range) -> Outcome:
    reason = result.termination.reason
    reasons = result_pb2.TerminationReasonProto
    values = None
    objective = None
    reduced = lock_duals = None
    for solution in result.solutions:
        dual = solution.dual_solution
        if len(dual.reduced_costs.ids):
            reduced = np.zeros(n_vars)
            reduced[np.fromiter(dual.reduced_costs.ids, dtype=np.int64)] = np.fromiter(
                dual.reduced_costs.values, dtype=float)
            rows = np.fromiter(dual.dual_values.ids, dtype=np.int64)
            duals = np.fromiter(dual.dual_values.values, dtype=float)
            at = np.isin(rows, lock_rows)
            lock_duals = np.zeros(len(lock_rows))
            lock_duals[rows[at] - lock_rows.start] = duals[at]
        primal = solution.primal_solution
        if primal.feasibility_status == solution_pb2.SOLUTION_STATUS_FEASIBLE:
            values = np.zeros(n_vars)
            ids = np.fromiter(primal.variable_values.ids, dtype=np.int64)
            values[ids] = np.fromiter(primal.variable_values.values, dtype=float)
            objective = primal.objective_value
            break
    bounds = result.termination.objective_bounds
    bound = bounds.dual_bound if np.isfinite(bounds.dual_bound) else None
    if reason == reasons.TERMINATION_REASON_OPTIMAL:
        status = "optimal"
    elif reason == reasons.TERMINATION_REASON_INFEASIBLE:
        status = "infeasible"
    elif values is not None:
        status = "feasible"
    else:
        status = "no_solution"
    if objective is not None and bound is not None and bound < objective:
        bound = objective  # solver tolerances: a bound never sits below the plan it proves
    return Outcome(
        status=status,
        values=values,
        objective=objective,
        bound=bound,
        seconds=seconds,
        nodes=int(result.solve_stats.node_count),
        detail=result.termination.detail,
        reduced_costs=reduced,
        lock_duals=lock_duals,
    )

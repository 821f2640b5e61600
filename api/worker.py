"""The solve worker: runs in its own process, claims a queued run, solves it and writes
progress and the result to the database itself, so the server stays thin and progress
survives it.

A reporter thread writes progress and a heartbeat every ``poll_interval`` seconds and reads the
run's ``stop_requested`` flag; when it is set (``DELETE /v1/plans/{id}``, or the server shutting
down) it calls :meth:`allocator.StopFlag.stop`, and the solve ends keeping the best plan found.
If the server process disappears the worker stops the same way.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from allocator import Progress, ProblemValidationError, StopFlag, solve

from . import service, store
from .db import make_engine, make_sessionmaker
from .models import PlanRow, ProblemRow, RunRow

log = logging.getLogger(__name__)


class Reporter:
    """Writes the latest progress and heartbeat; turns a stop request into ``StopFlag.stop``."""

    def __init__(self, sessions, run_id: int, levels: int, flag: StopFlag, poll_interval: float,
                 parent_pid: int):
        self.sessions = sessions
        self.run_id = run_id
        self.flag = flag
        self.poll_interval = poll_interval
        self.parent_pid = parent_pid
        self.started = time.perf_counter()
        self.latest: dict[str, Any] = {"phase": "building", "levels": levels}
        self.orphaned = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"reporter-{run_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def update(self, progress: Progress) -> None:
        """``on_progress`` callback of :func:`allocator.solve` (called from the solver's thread)."""
        with self._lock:
            self.latest.update(phase="solving", level=progress.level + 1, elapsed=progress.elapsed,
                               objective=progress.objective, bound=progress.bound, gap=progress.gap)

    def phase(self, name: str) -> None:
        with self._lock:
            self.latest["phase"] = name

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            data = dict(self.latest)
        data["elapsed"] = round(time.perf_counter() - self.started, 3)
        return service.jsonable(data)

    def _loop(self) -> None:
        while not self._done.wait(self.poll_interval):
            if os.getppid() != self.parent_pid and not self.orphaned:
                self.orphaned = True
                log.warning("run %s: the server process ended; stopping and keeping the best plan", self.run_id)
                self.flag.stop()
            try:
                with self.sessions() as session:
                    if store.write_progress(session, self.run_id, self.snapshot()) and not self.flag.stopped:
                        log.info("run %s: stop requested", self.run_id)
                        self.flag.stop()
            except Exception:  # a busy database must not kill the solve
                log.exception("run %s: could not write progress", self.run_id)

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)


def run_job(run_id: int, database_url: str, poll_interval: float = 0.5, log_level: str = "INFO") -> None:
    """Entry point of a worker process: solve run ``run_id`` and store its result."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    parent = os.getppid()
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    try:
        _run(run_id, sessions, poll_interval, parent)
    finally:
        engine.dispose()


def _run(run_id: int, sessions, poll_interval: float, parent: int) -> None:
    with sessions() as session:
        if not store.claim_run(session, run_id, os.getpid()):
            log.info("run %s is no longer queued; nothing to do", run_id)
            return
        run = session.get(RunRow, run_id)
        plan = session.get(PlanRow, run.plan_id)
        problem_row = session.get(ProblemRow, plan.problem_id)
        tables, settings = problem_row.tables, run.settings
        pins, exclusions = run.pins, run.exclusions
        warm = None
        if run.warm_start_run_id is not None:
            previous = session.get(RunRow, run.warm_start_run_id)
            if previous is not None and previous.result:
                warm = service.placements_frame(previous.result)[["case_id", "municipality_id"]]
    flag = StopFlag()
    levels = len(settings.get("objective", {}).get("priorities", []) or [])
    reporter = Reporter(sessions, run_id, levels, flag, poll_interval, parent)
    reporter.start()
    log.info("run %s of plan %s: solving (%d pins, %d exclusions, warm start: %s)", run_id, run.plan_id,
             len(pins), len(exclusions), warm is not None)
    try:
        problem = service.build(tables, settings, pins, exclusions)
        reporter.phase("solving")
        result = solve(problem, stop=flag, on_progress=reporter.update, warm_start=warm)
        stopped = flag.stopped
        reporter.phase("verifying")
        violations = service.verify(problem, result.plan)
        if violations:
            log.error("run %s: the verifier found %d violations", run_id, len(violations))
        payload = service.result_payload(result, violations)
    except ProblemValidationError as exc:
        reporter.close()
        with sessions() as session:
            store.fail_run(session, run_id, exc.report(limit=50))
        return
    except Exception as exc:
        reporter.close()
        log.exception("run %s failed", run_id)
        with sessions() as session:
            store.fail_run(session, run_id, f"{type(exc).__name__}: {exc}")
        return
    reporter.close()
    status = "stopped" if payload["status"] == "stopped" or stopped else "done"
    last = payload["summary"].get("levels") or [{}]
    final = reporter.snapshot() | {"phase": "finished", "level": len(last), "levels": len(last),
                                   "objective": last[-1].get("objective"), "bound": last[-1].get("bound"),
                                   "gap": payload["gap"]}
    with sessions() as session:
        if reporter.orphaned:
            session.execute(RunRow.__table__.update().where(RunRow.id == run_id)
                            .values(stop_reason="the server process ended during the solve"))
            session.commit()
        store.finish_run(session, run_id, status=status, result=payload, progress=final)
    log.info("run %s %s: %s, %s cases placed", run_id, status, payload["status"],
             payload["kpis"].get("cases_placed"))

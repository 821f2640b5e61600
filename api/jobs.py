"""Running solves in worker processes, a few at a time, and never losing one.

The :class:`JobRunner` keeps a queue of run ids and starts one process per run (see
:mod:`api.worker`) while fewer than ``max_workers`` run. Each is forked from a ``forkserver``
process that has imported the worker and the solver once: started fresh, a worker spent about
2 s importing them (pandas, OR-Tools) before its solve, more than a national-2k round's level 1
takes. It watches its processes: one that dies without finishing its run (a crash, out of
memory) gets the run marked failed with the exit code. On shutdown running solves are asked to
stop and get ``shutdown_grace`` seconds to store the best plan found; any still running after
that are terminated and marked failed. On startup (:meth:`JobRunner.recover`) runs left
``running`` by a server that died are marked failed, and runs still ``queued`` are queued again.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import multiprocessing.forkserver
import threading
import time

from sqlalchemy import select, update

from . import store
from .models import RunRow

log = logging.getLogger(__name__)


def worker_context() -> multiprocessing.context.BaseContext:
    """The ``forkserver`` context whose server imports the worker and the solver once (``spawn``
    where the platform has no fork server)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["api.worker"])
    return context


class JobRunner:
    """Starts worker processes for queued runs, at most ``max_workers`` at once."""

    def __init__(self, sessions, database_url: str, *, max_workers: int, poll_interval: float,
                 shutdown_grace: float, log_level: str = "INFO"):
        self.sessions = sessions
        self.database_url = database_url
        self.max_workers = max_workers
        self.poll_interval = poll_interval
        self.shutdown_grace = shutdown_grace
        self.log_level = log_level
        self._ctx = worker_context()
        self._queue: collections.deque[int] = collections.deque()
        self._running: dict[int, multiprocessing.process.BaseProcess] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)
        self._thread.start()

    def submit(self, run_id: int) -> None:
        """Queue a run (its row must already be committed with status ``queued``)."""
        with self._lock:
            if run_id not in self._queue and run_id not in self._running:
                self._queue.append(run_id)
        self._wake.set()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"running": len(self._running), "queued": len(self._queue), "max_workers": self.max_workers}

    def recover(self) -> None:
        """After a restart: fail runs a dead server left running; queue the queued ones again."""
        with self.sessions() as session:
            stale = session.scalars(select(RunRow.id).where(RunRow.status == "running")).all()
            queued = session.scalars(select(RunRow.id).where(RunRow.status == "queued").order_by(RunRow.id)).all()
        for run_id in stale:
            with self.sessions() as session:
                store.fail_run(session, run_id, "interrupted: the server stopped while this solve was running; "
                               "POST /v1/plans/{id}/resolve to solve it again", statuses=("running",))
        for run_id in queued:
            log.info("run %s was queued before the restart; queued again", run_id)
            self.submit(run_id)

    def shutdown(self) -> None:
        """Stop taking runs; ask running solves to stop and keep their best plan; fail the rest."""
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            running = dict(self._running)
            self._queue.clear()  # stay queued in the database; recover() queues them again
        if not running:
            return
        with self.sessions() as session:
            session.execute(update(RunRow).where(RunRow.id.in_(list(running)), RunRow.status == "running",
                                                 RunRow.stop_requested.is_(False))
                            .values(stop_requested=True, stop_reason="the server shut down"))
            session.commit()
        deadline = time.monotonic() + self.shutdown_grace
        for run_id, process in running.items():
            process.join(timeout=max(deadline - time.monotonic(), 0.0))
            if process.is_alive():
                log.warning("run %s did not stop within %.0fs; terminating its worker", run_id, self.shutdown_grace)
                process.terminate()
                process.join(timeout=5)
                if process.is_alive():
                    process.kill()
                    process.join(timeout=5)
            self._settle(run_id, process, "the server shut down before the solve could store a plan")

    # -- the loop ----------------------------------------------------------------------------
    def _loop(self) -> None:
        if self._ctx.get_start_method() == "forkserver":
            try:  # the fork server imports the worker now, not when the first run waits for it
                multiprocessing.forkserver.ensure_running()
            except Exception:  # the first run starts it again, and fails there if it must
                log.exception("could not start the fork server")
        while not self._closing.is_set():
            try:
                self._reap()
                self._launch()
            except Exception:  # keep dispatching whatever happens to one run
                log.exception("job runner error")
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _reap(self) -> None:
        with self._lock:
            finished = [(rid, p) for rid, p in self._running.items() if not p.is_alive()]
            for rid, _ in finished:
                del self._running[rid]
        for run_id, process in finished:
            process.join()
            self._settle(run_id, process, None)
            self._wake.set()

    def _settle(self, run_id: int, process, reason: str | None) -> None:
        """A worker ended: if its run is still active, it ended without storing anything."""
        code = process.exitcode
        why = reason or f"the worker process ended with exit code {code} before storing a plan"
        with self.sessions() as session:
            if store.fail_run(session, run_id, why):
                log.error("run %s: %s", run_id, why)

    def _launch(self) -> None:
        while True:
            with self._lock:
                if self._closing.is_set() or not self._queue or len(self._running) >= self.max_workers:
                    return
                run_id = self._queue.popleft()
            with self.sessions() as session:
                status = session.scalar(select(RunRow.status).where(RunRow.id == run_id))
            if status != "queued":
                continue
            from .worker import run_job

            process = self._ctx.Process(
                target=run_job, args=(run_id, self.database_url, self.poll_interval, self.log_level),
                name=f"solve-{run_id}", daemon=True,
            )
            process.start()
            log.info("run %s: worker process %s started", run_id, process.pid)
            with self._lock:
                self._running[run_id] = process

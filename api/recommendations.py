"""Computing recommendations in a separate process (they re-solve the round a few times).

:func:`compute` is what the process pool runs; :class:`RecommendPool` owns the pool.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .jobs import worker_context

log = logging.getLogger(__name__)


def compute(payload: dict[str, Any]) -> dict[str, Any]:
    """Recommendations for one case of a stored run (runs in a worker process)."""
    from allocator.recommend import recommend

    from . import service

    problem = service.build(payload["tables"], payload["settings"], payload["pins"], payload["exclusions"])
    case_id = payload["case_id"]
    if case_id not in problem.cases.index:
        return {"error": "unknown-case"}
    plan = service.placements_frame(payload["result"])
    return service.jsonable(recommend(problem, plan, case_id, limit=payload["limit"],
                                      time_limit=payload["time_limit"]))


class RecommendPool:
    """A lazily started process pool, forked like the solve workers (:func:`.jobs.worker_context`);
    a broken pool is replaced on the next call."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def pool(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=worker_context())
            return self._pool

    def discard(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["BrokenProcessPool", "RecommendPool", "compute"]

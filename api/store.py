"""Database operations shared by the server and the worker processes: the audit log and the
life of a run (claim, progress, finish, fail). Every state change of a run is a conditional
update, so a run is finished once, by whoever gets there first, and never silently."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .models import ACTIVE, AuditRow, PlanRow, RunRow, now

log = logging.getLogger(__name__)

SYSTEM = "system"


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes; everything stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def audit(session: Session, *, actor: str, role: str, action: str, plan_id: str | None = None,
          problem_id: str | None = None, version: int | None = None,
          detail: dict[str, Any] | None = None) -> None:
    """Add an audit row to the session's transaction (committed with the change it records)."""
    session.add(AuditRow(actor=actor, role=role, action=action, plan_id=plan_id, problem_id=problem_id,
                         version=version, detail=detail or {}))
    log.info("audit %s by %s: plan=%s problem=%s version=%s", action, actor, plan_id, problem_id, version)


def bump_plan(session: Session, plan_id: str) -> int | None:
    """Increase a plan's version (a run finished: its result changed); returns the new version."""
    session.execute(update(PlanRow).where(PlanRow.id == plan_id)
                    .values(version=PlanRow.version + 1, updated_at=now()))
    return session.scalar(select(PlanRow.version).where(PlanRow.id == plan_id))


def claim_run(session: Session, run_id: int, pid: int) -> bool:
    """Mark a queued run as running by this worker; False if it is no longer queued."""
    moment = now()
    done = session.execute(
        update(RunRow).where(RunRow.id == run_id, RunRow.status == "queued", RunRow.stop_requested.is_(False))
        .values(status="running", started_at=moment, heartbeat_at=moment, worker_pid=pid,
                progress={"phase": "building", "elapsed": 0.0})
    ).rowcount
    session.commit()
    return done == 1


def write_progress(session: Session, run_id: int, progress: dict[str, Any]) -> bool:
    """Store progress and a heartbeat; returns whether a stop was requested."""
    session.execute(update(RunRow).where(RunRow.id == run_id, RunRow.status == "running")
                    .values(progress=progress, heartbeat_at=now()))
    session.commit()
    return bool(session.scalar(select(RunRow.stop_requested).where(RunRow.id == run_id)))


def finish_run(session: Session, run_id: int, *, status: str, result: dict[str, Any],
               progress: dict[str, Any]) -> bool:
    """Store the result of a running run (``done`` or ``stopped``); False if it was no longer running."""
    run = session.get(RunRow, run_id)
    if run is None:
        return False
    done = session.execute(
        update(RunRow).where(RunRow.id == run_id, RunRow.status == "running")
        .values(status=status, result=result, result_status=result.get("status"), kpis=result.get("kpis"),
                progress=progress, finished_at=now(), heartbeat_at=now())
    ).rowcount
    if done != 1:
        session.rollback()
        log.warning("run %s was no longer running; its result is dropped", run_id)
        return False
    version = bump_plan(session, run.plan_id)
    audit(session, actor=SYSTEM, role=SYSTEM, action=f"solve-{status}", plan_id=run.plan_id, version=version,
          detail={"run": run.number, "result_status": result.get("status"),
                  "cases_placed": result.get("kpis", {}).get("cases_placed"),
                  "stop_reason": run.stop_reason})
    session.commit()
    return True


def fail_run(session: Session, run_id: int, error: str, *, statuses: Iterable[str] = ACTIVE,
             status: str = "failed") -> bool:
    """Mark a run failed (or cancelled) with a reason, if it is still in one of ``statuses``."""
    run = session.get(RunRow, run_id)
    if run is None:
        return False
    done = session.execute(
        update(RunRow).where(RunRow.id == run_id, RunRow.status.in_(list(statuses)))
        .values(status=status, error=error, finished_at=now())
    ).rowcount
    if done != 1:
        session.rollback()
        return False
    version = bump_plan(session, run.plan_id)
    audit(session, actor=SYSTEM, role=SYSTEM, action=f"solve-{status}", plan_id=run.plan_id, version=version,
          detail={"run": run.number, "error": error})
    session.commit()
    log.warning("run %s of plan %s %s: %s", run_id, run.plan_id, status, error)
    return True

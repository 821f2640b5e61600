"""Tables: problems (raw tables as JSON), plans (editable state and version), runs (solve
jobs with progress and result), responses of municipalities, audit log and cached
recommendations."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base

#: Run statuses. ``queued`` and ``running`` are active; the others are final.
ACTIVE = ("queued", "running")
FINAL = ("done", "stopped", "failed", "cancelled")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class ProblemRow(Base):
    """A validated round as uploaded: its raw text tables and full settings."""

    __tablename__ = "problems"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("prb"))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    created_by: Mapped[str] = mapped_column(String(200))
    digest: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    tables: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)  # file -> {"columns": [...], "rows": [[...]]}
    counts: Mapped[dict[str, int]] = mapped_column(JSON)
    files: Mapped[list[str]] = mapped_column(JSON, default=list)


class PlanRow(Base):
    """A proposal being worked on: settings, pins, exclusions and the version edits carry."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("pln"))
    problem_id: Mapped[str] = mapped_column(ForeignKey("problems.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    pins: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    exclusions: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    current_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class RunRow(Base):
    """One solve of a plan: a job a worker process claims, reports progress on and finishes."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), index=True, default="queued")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    pins: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    exclusions: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    warm_start_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, deferred=True)
    result_status: Mapped[str | None] = mapped_column(String(20), nullable=True)  # optimal|feasible|stopped
    kpis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ResponseRow(Base):
    """A municipality's answer to a proposed case."""

    __tablename__ = "responses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    run_id: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[str] = mapped_column(String(200))
    municipality_id: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    dwelling_id: Mapped[str] = mapped_column(String(200), default="")
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class AuditRow(Base):
    """Who changed what, when. Details name cases by id only."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(60))
    plan_id: Mapped[str | None] = mapped_column(String(40), index=True, nullable=True)
    problem_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RecommendationRow(Base):
    """Recommendations computed for one case of one run (they depend only on the run)."""

    __tablename__ = "recommendations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Integer, index=True)
    case_id: Mapped[str] = mapped_column(String(200))
    params: Mapped[str] = mapped_column(String(200))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)

"""Request and response bodies of the HTTP API, separate from the domain objects."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scalar = str | int | float | bool | None


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors ------------------------------------------------------------------------------------

class ErrorItem(BaseModel):
    """One problem with a request, shaped like the CLI's input issue.

    ``file`` names the input file (``cases.csv``, ``settings.toml``) or the part of the request
    (``body``, ``query``, ``path``, ``header``); ``row`` is the row as a spreadsheet shows it
    (the header is row 1, so the first item of a JSON list is row 2); ``column`` the column or
    field; ``rule`` a stable machine name; ``message`` the sentence for people.
    """

    file: str | None = None
    row: int | None = None
    column: str | None = None
    rule: str
    message: str


class ErrorBody(BaseModel):
    detail: list[ErrorItem]


# -- problems ----------------------------------------------------------------------------------

class TableIn(_In):
    """A table as column names and rows of values."""

    columns: list[str]
    rows: list[list[Scalar]]


class ProblemIn(_In):
    """A problem folder as JSON.

    Each entry of ``files`` is one CSV file of the folder (``municipalities.csv``,
    ``cases.csv``, ``persons.csv`` and optionally ``dwellings.csv``, ``scores.csv``,
    ``exclusions.csv``, ``pins.csv``), given as a list of row objects, as the CSV text, or as
    ``{"columns": [...], "rows": [[...]]}``. ``settings`` is the content of ``settings.toml``
    (or give ``files["settings.toml"]`` as TOML text).
    """

    name: str = Field("", max_length=200)
    files: dict[str, list[dict[str, Scalar]] | str | TableIn]
    settings: dict[str, Any] | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "tiny round",
        "files": {
            "municipalities.csv": [{"municipality_id": "0301", "name": "Oslo", "resolution_persons": 3}],
            "cases.csv": [{"case_id": "C1", "residence_date": "2025-10-01", "category": "single"}],
            "persons.csv": [{"person_id": "P1", "case_id": "C1", "age": 30}],
        },
        "settings": {"as_of": "2026-01-15", "solver": {"time_limit": 10}},
    }]})


class ProblemOut(_Out):
    id: str
    name: str
    created_at: dt.datetime
    created_by: str
    digest: str = Field(description="SHA-256 of the input tables and settings")
    counts: dict[str, int] = Field(description="municipalities, cases, persons, dwellings, ...")
    files: list[str]
    settings: dict[str, Any]


class ProblemList(BaseModel):
    items: list[ProblemOut]
    total: int


# -- plans -------------------------------------------------------------------------------------

class PlanCreate(_In):
    """Start solving a problem. ``settings`` overrides parts of the problem's settings, e.g.
    ``{"solver": {"time_limit": 30, "seed": 1}}`` or ``{"objective": {"priorities": [["scores"]]}}``."""

    problem_id: str
    name: str = Field("", max_length=200)
    settings: dict[str, Any] = Field(default_factory=dict)


class ResolveIn(_In):
    """Re-solve around the plan's pins and exclusions; ``settings`` overrides as in PlanCreate."""

    settings: dict[str, Any] = Field(default_factory=dict)


class Pin(_In):
    case_id: str
    municipality_id: str
    dwelling_id: str = ""


class Exclusion(_In):
    case_id: str
    municipality_id: str
    reason: str = ""


class PinsIn(_In):
    pins: list[Pin]


class ExclusionsIn(_In):
    exclusions: list[Exclusion]


class ResponseIn(_In):
    """A municipality's answer to a proposed case.

    ``municipality_id`` defaults to the municipality the plan proposed and must match it;
    ``dwelling_id`` (accepted only) defaults to the proposed dwelling.
    """

    case_id: str
    decision: Literal["accepted", "declined"]
    municipality_id: str | None = None
    reason: str = Field("", max_length=2000)
    dwelling_id: str | None = None


class ResponsesIn(_In):
    responses: list[ResponseIn] = Field(min_length=1)


class ProgressOut(BaseModel):
    phase: str = Field(description="queued, building, solving or finished")
    level: int | None = Field(None, description="priority level being solved (1-based)")
    levels: int | None = None
    elapsed: float | None = Field(None, description="seconds since the solve started")
    objective: float | None = Field(None, description="best objective of the current level so far")
    bound: float | None = Field(None, description="proven bound of the current level")
    gap: float | None = Field(None, description="relative gap between objective and bound")


class RunOut(_Out):
    number: int
    status: Literal["queued", "running", "done", "stopped", "failed", "cancelled"]
    created_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    stop_requested: bool = False
    stop_reason: str | None = None
    error: str | None = None
    warm_start_from_run: int | None = None
    pins: int = 0
    exclusions: int = 0
    progress: ProgressOut | None = None


class Placement(BaseModel):
    case_id: str
    municipality_id: str
    dwelling_id: str
    pinned: bool


class Unplaced(BaseModel):
    case_id: str
    rule: str
    reason: str


class Verification(BaseModel):
    ok: bool
    violations: list[str]


class PlanResult(BaseModel):
    status: Literal["optimal", "feasible", "stopped"]
    gap: float | None
    objective: list[float | None]
    bound: list[float | None]
    kpis: dict[str, float | int]
    summary: dict[str, Any] = Field(description="summary.json: levels, terms, KPIs, model size, "
                                    "times and what produced it (input_digest, settings, seed, solver)")
    verification: Verification = Field(description="the independent verifier on this plan")
    placements: list[Placement]
    unplaced: list[Unplaced]
    municipalities: list[dict[str, Any]]


class ResponseOut(_Out):
    id: int
    run_number: int | None = None
    case_id: str
    municipality_id: str
    decision: str
    reason: str
    dwelling_id: str
    actor: str
    at: dt.datetime


class PlanOut(BaseModel):
    id: str
    problem_id: str
    name: str
    version: int = Field(description="sent as the ETag; edits must send it back in If-Match")
    status: str = Field(description="status of the latest run")
    result_status: str | None = Field(None, description="optimal, feasible or stopped, once a plan exists")
    created_at: dt.datetime
    created_by: str
    updated_at: dt.datetime
    settings: dict[str, Any]
    pins: list[Pin]
    exclusions: list[Exclusion]
    run: RunOut | None
    runs: list[RunOut] = Field(description="every run of this plan, oldest first")
    result: PlanResult | None = Field(None, description="the latest plan found (of the latest run "
                                      "that produced one)")
    result_run: int | None = Field(None, description="the run number the result comes from")


class PlanSummary(BaseModel):
    id: str
    problem_id: str
    name: str
    version: int
    status: str
    result_status: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    kpis: dict[str, float | int] | None = None


class PlanList(BaseModel):
    items: list[PlanSummary]
    total: int


class ResponsesOut(BaseModel):
    version: int
    recorded: list[ResponseOut]
    pins_added: int
    exclusions_added: int
    pins_removed: int


class AuditEntry(_Out):
    id: int
    at: dt.datetime
    actor: str
    role: str
    action: str
    plan_id: str | None
    problem_id: str | None
    version: int | None
    detail: dict[str, Any]


class AuditList(BaseModel):
    items: list[AuditEntry]


# -- explanations and recommendations ------------------------------------------------------------

class Explanation(BaseModel):
    """Why the plan does what it does with one case."""

    plan_id: str
    run: int
    case_id: str
    status: Literal["placed", "pinned", "unplaced"]
    municipality_id: str | None = None
    municipality_name: str | None = None
    dwelling_id: str | None = None
    case: dict[str, Any] = Field(description="size, adults, children, minors, category, wait, urgency")
    urgency: dict[str, Any] = Field(description="value, wait_days, long_waiting, rank among all cases")
    tie: dict[str, Any] | None = None
    score: dict[str, Any] | None = None
    housing: dict[str, Any] | None = None
    municipality: dict[str, Any] | None = None
    terms: dict[str, float] | None = Field(None, description="this case's share of each objective term")
    levels: list[dict[str, Any]] | None = Field(None, description="this case's share of each priority level")
    rule: str | None = Field(None, description="for an unplaced case: the rule that blocks it")
    reason: str | None = None
    text: str


class Candidate(BaseModel):
    municipality_id: str
    name: str
    method: str = Field(description="move: fits in what the plan leaves; displace: less urgent cases "
                        "there make room; resolve: re-optimised with the case pinned there")
    change: list[float] = Field(description="change of each priority level's objective versus the current plan")
    terms_change: dict[str, float]
    levels: list[float]
    dwelling_id: str
    displaced: list[str] = Field(description="cases that lose their place in this plan")
    moved: list[str] = Field(description="other cases placed elsewhere than in the current plan")
    proven: bool = Field(description="the re-solve proved its plan optimal (within the gap)")


class Recommendations(BaseModel):
    plan_id: str
    run: int
    case_id: str
    status: str
    current_municipality_id: str | None
    priorities: list[list[str]]
    base_levels: list[float]
    candidates: list[Candidate]
    considered: int = Field(description="municipalities where the case may go at all")
    resolved: int = Field(description="candidates re-optimised with the case pinned there")
    seconds: float
    method: str


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    jobs: dict[str, int]
    version: str

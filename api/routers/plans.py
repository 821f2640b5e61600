"""``/v1/plans``: start solves, follow them, stop them, and the proposal loop around them.

A plan is a proposal being worked on. Its *version* (the ETag) changes with every change: an
edit (pins, exclusions, responses, re-solve, stop) and every run that finishes. Edits must send
the version they are based on in ``If-Match``; a stale one gets 409 and changes nothing. The
check and the write are one conditional ``UPDATE``, so two edits racing from the same version
never both succeed.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .. import service, store
from ..deps import CoordinatorDep, IfMatchDep, OptionalIfMatchDep, SessionDep, User, UserDep, etag
from ..errors import ApiError, issue, not_found
from ..models import ACTIVE, AuditRow, PlanRow, ProblemRow, ResponseRow, RunRow, now
from ..responses import errors
from ..schemas import (
    AuditEntry,
    AuditList,
    ExclusionsIn,
    PinsIn,
    PlanCreate,
    PlanList,
    PlanOut,
    PlanSummary,
    ResolveIn,
    ResponseOut,
    ResponsesIn,
    ResponsesOut,
    RunOut,
)
from ..tables import load_tables

log = logging.getLogger(__name__)

#: Reads of a plan and its runs, at most, for a response whose version held while it was read.
CONSISTENT_READS = 3
router = APIRouter(prefix="/v1/plans", tags=["plans"])

RESULT_STATUSES = ("done", "stopped")


# -- reading -----------------------------------------------------------------------------------

def load_plan(session: Session, plan_id: str) -> PlanRow:
    plan = session.get(PlanRow, plan_id)
    if plan is None:
        raise not_found("plan", plan_id)
    return plan


def load_problem(session: Session, problem_id: str) -> ProblemRow:
    row = session.get(ProblemRow, problem_id)
    if row is None:
        raise not_found("problem", problem_id)
    return row


def runs_of(session: Session, plan_id: str) -> list[RunRow]:
    return list(session.scalars(select(RunRow).where(RunRow.plan_id == plan_id).order_by(RunRow.number)).all())


def result_run(session: Session, plan_id: str) -> RunRow | None:
    """The latest run of the plan that stored a plan (done or stopped)."""
    return session.scalars(select(RunRow).where(RunRow.plan_id == plan_id, RunRow.status.in_(RESULT_STATUSES))
                           .order_by(RunRow.number.desc()).limit(1)).first()


def run_out(run: RunRow, numbers: dict[int, int]) -> RunOut:
    progress = run.progress
    if run.status == "queued":
        progress = {"phase": "queued"}
    return RunOut(
        number=run.number, status=run.status, created_by=run.created_by, created_at=store.as_utc(run.created_at),
        started_at=store.as_utc(run.started_at), finished_at=store.as_utc(run.finished_at),
        stop_requested=run.stop_requested, stop_reason=run.stop_reason, error=run.error,
        warm_start_from_run=numbers.get(run.warm_start_run_id) if run.warm_start_run_id else None,
        pins=len(run.pins or []), exclusions=len(run.exclusions or []), progress=progress,
    )


def plan_out(session: Session, plan: PlanRow, *, with_result: bool = True) -> PlanOut:
    runs = runs_of(session, plan.id)
    numbers = {r.id: r.number for r in runs}
    current = next((r for r in runs if r.id == plan.current_run_id), runs[-1] if runs else None)
    done = next((r for r in reversed(runs) if r.status in RESULT_STATUSES), None)
    result = done.result if (done is not None and with_result) else None
    return PlanOut(
        id=plan.id, problem_id=plan.problem_id, name=plan.name, version=plan.version,
        status=current.status if current else "none",
        result_status=done.result_status if done is not None else None,
        created_at=store.as_utc(plan.created_at), created_by=plan.created_by,
        updated_at=store.as_utc(plan.updated_at), settings=plan.settings,
        pins=plan.pins or [], exclusions=plan.exclusions or [],
        run=run_out(current, numbers) if current else None,
        runs=[run_out(r, numbers) for r in runs],
        result=result, result_run=done.number if done is not None else None,
    )


def _summary(session: Session, plan: PlanRow, run: RunRow | None) -> PlanSummary:
    done = result_run(session, plan.id)
    return PlanSummary(id=plan.id, problem_id=plan.problem_id, name=plan.name, version=plan.version,
                       status=run.status if run else "none",
                       result_status=done.result_status if done is not None else None,
                       created_at=store.as_utc(plan.created_at), updated_at=store.as_utc(plan.updated_at),
                       kpis=done.kpis if done is not None else None)


# -- writing -----------------------------------------------------------------------------------

def compare_and_set(session: Session, plan: PlanRow, versions: list[int] | None, **values: Any) -> int:
    """Write ``values`` and the next version if the plan is still at one of ``versions``.

    Raises
    ------
    ApiError
        409 when the plan changed since (nothing is written).
    """
    condition = [PlanRow.id == plan.id]
    if versions is not None:
        condition.append(PlanRow.version.in_(versions))
    done = session.execute(update(PlanRow).where(*condition)
                           .values(version=PlanRow.version + 1, updated_at=now(), **values)).rowcount
    if done != 1:
        session.rollback()
        current = session.scalar(select(PlanRow.version).where(PlanRow.id == plan.id))
        raise ApiError(409, [issue("stale-version", f"the plan is at version {current}, not "
                                   f"{', '.join(map(str, versions or []))}; GET it again and redo the change",
                                   file="header", column="If-Match")],
                       headers={"ETag": etag(current)} if current is not None else None)
    return session.scalar(select(PlanRow.version).where(PlanRow.id == plan.id))


def _check_version(plan: PlanRow, versions: list[int] | None) -> None:
    """Fail early (before expensive validation) when the edit is already stale."""
    if versions is not None and plan.version not in versions:
        raise ApiError(409, [issue("stale-version", f"the plan is at version {plan.version}, not "
                                   f"{', '.join(map(str, versions))}; GET it again and redo the change",
                                   file="header", column="If-Match")], headers={"ETag": etag(plan.version)})


def _validate(session: Session, plan: PlanRow, *, settings: dict[str, Any] | None = None,
              pins: list[dict[str, str]] | None = None, exclusions: list[dict[str, str]] | None = None):
    """Build the plan's problem with new settings, pins or exclusions; 422 with every issue."""
    problem = load_problem(session, plan.problem_id)
    return service.build(problem.tables, settings if settings is not None else plan.settings,
                         pins if pins is not None else plan.pins,
                         exclusions if exclusions is not None else plan.exclusions)


def _queue_run(session: Session, plan: PlanRow, user: User, settings: dict[str, Any],
               number: int, warm_start: RunRow | None) -> RunRow:
    run = RunRow(plan_id=plan.id, number=number, status="queued", settings=settings, pins=plan.pins or [],
                 exclusions=plan.exclusions or [], created_by=user.name,
                 warm_start_run_id=warm_start.id if warm_start is not None else None)
    session.add(run)
    session.flush()
    return run


def _finish_write(response: Response, session: Session, plan: PlanRow) -> PlanOut:
    session.refresh(plan)
    response.headers["ETag"] = etag(plan.version)
    response.headers["Location"] = f"/v1/plans/{plan.id}"
    return plan_out(session, plan)


# -- endpoints ---------------------------------------------------------------------------------

@router.post("", status_code=202, response_model=PlanOut, responses=errors(401, 403, 422),
             summary="Start solving a problem")
def create_plan(body: PlanCreate, request: Request, response: Response, user: CoordinatorDep,
                session: SessionDep) -> PlanOut:
    """Create a plan and queue its first solve; answers at once (202) with the plan, its id and
    version (ETag). The solve runs in a worker process; follow it with ``GET /v1/plans/{id}``."""
    config = request.app.state.config
    problem = session.get(ProblemRow, body.problem_id)
    if problem is None:
        raise ApiError.one(422, "unknown-problem", f"no problem '{body.problem_id}'", file="body",
                           column="problem_id")
    settings = service.plan_settings(problem.settings, body.settings, config.max_time_limit)
    pins, exclusions = service.initial_pins_and_exclusions(problem.tables)
    settings_data = service.settings_json(settings)
    service.build(problem.tables, settings, pins, exclusions)
    plan = PlanRow(problem_id=problem.id, name=body.name, version=1, settings=settings_data, pins=pins,
                   exclusions=exclusions, created_by=user.name)
    session.add(plan)
    session.flush()
    run = _queue_run(session, plan, user, settings_data, 1, None)
    plan.current_run_id = run.id
    store.audit(session, actor=user.name, role=user.role, action="plan-created", plan_id=plan.id,
                problem_id=problem.id, version=1,
                detail={"run": 1, "overrides": body.settings, "pins": len(pins), "exclusions": len(exclusions)})
    session.commit()
    request.app.state.runner.submit(run.id)
    return _finish_write(response, session, plan)


@router.get("", response_model=PlanList, responses=errors(401, 422), summary="List plans")
def list_plans(user: UserDep, session: SessionDep,
               problem_id: str | None = None,
               status: Annotated[str | None, Query(description="status of the latest run")] = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 50,
               offset: Annotated[int, Query(ge=0)] = 0) -> PlanList:
    query = select(PlanRow, RunRow).outerjoin(RunRow, RunRow.id == PlanRow.current_run_id)
    if problem_id is not None:
        query = query.where(PlanRow.problem_id == problem_id)
    if status is not None:
        query = query.where(RunRow.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(PlanRow.created_at.desc(), PlanRow.id).limit(limit).offset(offset)).all()
    return PlanList(items=[_summary(session, plan, run) for plan, run in rows], total=total)


@router.get("/{plan_id}", response_model=PlanOut, responses=errors(401, 404),
            summary="A plan: status, progress, and when done the placements, unplaced, KPIs and provenance")
def get_plan(plan_id: str, response: Response, user: UserDep, session: SessionDep,
             result: Annotated[bool, Query(description="include the latest result (placements, "
                                                        "unplaced, municipalities)")] = True) -> PlanOut:
    plan = load_plan(session, plan_id)
    out = plan_out(session, plan, with_result=result)
    for _ in range(CONSISTENT_READS):
        # The plan and its runs are read by separate statements: a solve that finished in
        # between would pair the new status with the old version, and an edit sent with that
        # ETag would get 409 (seen once in CI). Read again until the version held throughout.
        if session.scalar(select(PlanRow.version).where(PlanRow.id == plan.id)) == plan.version:
            break
        session.refresh(plan)
        out = plan_out(session, plan, with_result=result)
    response.headers["ETag"] = etag(out.version)
    return out


@router.delete("/{plan_id}", status_code=202, response_model=PlanOut, responses=errors(400, 401, 403, 404, 409),
               summary="Stop the running solve early, keeping the best plan found")
def stop_plan(plan_id: str, request: Request, response: Response, user: CoordinatorDep, session: SessionDep,
              versions: OptionalIfMatchDep = None) -> PlanOut:
    """A running solve is asked to stop; it stores the best plan found so far (status
    ``stopped``) within about a second. A queued solve is cancelled. ``If-Match`` is optional
    here; when sent it must be current."""
    plan = load_plan(session, plan_id)
    _check_version(plan, versions)
    run = session.get(RunRow, plan.current_run_id) if plan.current_run_id else None
    if run is None or run.status not in ACTIVE:
        raise ApiError.one(409, "not-running", f"plan '{plan_id}' has no solve running "
                           f"(latest run: {run.status if run else 'none'})")
    if run.status == "queued":
        done = session.execute(update(RunRow).where(RunRow.id == run.id, RunRow.status == "queued")
                               .values(status="cancelled", finished_at=now(),
                                       error=f"cancelled by {user.name} before it started")).rowcount
        action = "run-cancelled"
    else:
        done = 0
    if not done:
        done = session.execute(update(RunRow).where(RunRow.id == run.id, RunRow.status == "running")
                               .values(stop_requested=True, stop_reason=f"stopped by {user.name}")).rowcount
        action = "stop-requested"
    if not done:
        session.rollback()
        raise ApiError.one(409, "not-running", f"the solve of plan '{plan_id}' has just finished")
    version = compare_and_set(session, plan, versions)
    store.audit(session, actor=user.name, role=user.role, action=action, plan_id=plan.id, version=version,
                detail={"run": run.number})
    session.commit()
    return _finish_write(response, session, plan)


@router.put("/{plan_id}/pins", response_model=PlanOut, responses=errors(400, 401, 403, 404, 409, 422, 428),
            summary="Replace the plan's pins (used by the next re-solve)")
def put_pins(plan_id: str, body: PinsIn, request: Request, response: Response, user: CoordinatorDep,
             session: SessionDep, versions: IfMatchDep) -> PlanOut:
    """Pins are placements that every later solve keeps. They are validated as ``pins.csv``
    would be (row 2 is the first pin). Needs ``If-Match``."""
    plan = load_plan(session, plan_id)
    _check_version(plan, versions)
    pins = [p.model_dump() for p in body.pins]
    _validate(session, plan, pins=pins)
    before = {p["case_id"] for p in plan.pins or []}
    after = {p["case_id"] for p in pins}
    version = compare_and_set(session, plan, versions, pins=pins)
    store.audit(session, actor=user.name, role=user.role, action="pins-replaced", plan_id=plan.id, version=version,
                detail={"count": len(pins), "added": sorted(after - before), "removed": sorted(before - after)})
    session.commit()
    return _finish_write(response, session, plan)


@router.put("/{plan_id}/exclusions", response_model=PlanOut,
            responses=errors(400, 401, 403, 404, 409, 422, 428),
            summary="Replace the plan's exclusions (used by the next re-solve)")
def put_exclusions(plan_id: str, body: ExclusionsIn, request: Request, response: Response, user: CoordinatorDep,
                   session: SessionDep, versions: IfMatchDep) -> PlanOut:
    """Exclusions are (case, municipality) pairs no later solve uses. Validated as
    ``exclusions.csv`` would be. Needs ``If-Match``."""
    plan = load_plan(session, plan_id)
    _check_version(plan, versions)
    exclusions = [e.model_dump() for e in body.exclusions]
    _validate(session, plan, exclusions=exclusions)
    key = lambda e: f"{e['case_id']}@{e['municipality_id']}"  # noqa: E731
    before = {key(e) for e in plan.exclusions or []}
    after = {key(e) for e in exclusions}
    version = compare_and_set(session, plan, versions, exclusions=exclusions)
    store.audit(session, actor=user.name, role=user.role, action="exclusions-replaced", plan_id=plan.id,
                version=version,
                detail={"count": len(exclusions), "added": sorted(after - before), "removed": sorted(before - after)})
    session.commit()
    return _finish_write(response, session, plan)


@router.post("/{plan_id}/resolve", status_code=202, response_model=PlanOut,
             responses=errors(400, 401, 403, 404, 409, 422, 428),
             summary="Re-optimise around the pins and exclusions, warm-started from the last plan")
def resolve_plan(plan_id: str, request: Request, response: Response, user: CoordinatorDep, session: SessionDep,
                 versions: IfMatchDep, body: ResolveIn | None = None) -> PlanOut:
    """Queue a new run of the plan with its current pins and exclusions; the last plan found is
    the solver's starting point. ``settings`` may override settings for this and later runs.
    409 while a solve is running. Needs ``If-Match``."""
    config = request.app.state.config
    plan = load_plan(session, plan_id)
    _check_version(plan, versions)
    current = session.get(RunRow, plan.current_run_id) if plan.current_run_id else None
    if current is not None and current.status in ACTIVE:
        raise ApiError.one(409, "solve-running", f"run {current.number} is {current.status}; stop it "
                           "(DELETE) or wait for it before re-solving")
    overrides = body.settings if body is not None else {}
    settings = service.plan_settings(plan.settings, overrides, config.max_time_limit)
    settings_data = service.settings_json(settings)
    _validate(session, plan, settings=settings_data)
    warm = result_run(session, plan.id)
    number = (session.scalar(select(func.max(RunRow.number)).where(RunRow.plan_id == plan.id)) or 0) + 1
    run = _queue_run(session, plan, user, settings_data, number, warm)
    version = compare_and_set(session, plan, versions, current_run_id=run.id, settings=settings_data)
    store.audit(session, actor=user.name, role=user.role, action="resolve-queued", plan_id=plan.id, version=version,
                detail={"run": number, "warm_start_run": warm.number if warm else None, "overrides": overrides,
                        "pins": len(plan.pins or []), "exclusions": len(plan.exclusions or [])})
    session.commit()
    request.app.state.runner.submit(run.id)
    return _finish_write(response, session, plan)


@router.post("/{plan_id}/responses", response_model=ResponsesOut,
             responses=errors(400, 401, 403, 404, 409, 422, 428),
             summary="Record municipalities' answers to proposed cases")
def post_responses(plan_id: str, body: ResponsesIn, request: Request, response: Response, user: CoordinatorDep,
                   session: SessionDep, versions: IfMatchDep) -> ResponsesOut:
    """Each answer is about a case the latest result proposes to a municipality. ``accepted``
    pins the case there (with the proposed dwelling unless another is given), so it counts
    against the resolution in every later solve; ``declined`` excludes the pair, so the next
    re-solve (``POST /resolve``) proposes the case elsewhere. Needs ``If-Match``; all answers
    are checked first and either all are recorded or none (422 lists every problem)."""
    plan = load_plan(session, plan_id)
    _check_version(plan, versions)
    source = result_run(session, plan.id)
    if source is None:
        raise ApiError.one(409, "no-proposal", f"plan '{plan_id}' has no result yet to answer")
    proposed = {p["case_id"]: p for p in (source.result or {}).get("placements", [])}
    problem = load_problem(session, plan.problem_id)
    cases = load_tables({"cases.csv": problem.tables["cases.csv"]})["cases.csv"]
    known = set(cases["case_id"].astype(str)) if "case_id" in cases.columns else set()

    pins = {p["case_id"]: dict(p) for p in plan.pins or []}
    exclusions = [dict(e) for e in plan.exclusions or []]
    excluded = {(e["case_id"], e["municipality_id"]) for e in exclusions}
    problems, seen, records = [], set(), []
    added_pins = added_exclusions = removed_pins = 0
    for i, answer in enumerate(body.responses):
        row = i + 2
        where = {"file": "responses", "row": row}
        if answer.case_id in seen:
            problems.append(issue("duplicate", f"case '{answer.case_id}' is answered twice", column="case_id", **where))
            continue
        seen.add(answer.case_id)
        if answer.case_id not in known:
            problems.append(issue("unknown-case", f"no case '{answer.case_id}' in the problem", column="case_id",
                                  **where))
            continue
        proposal = proposed.get(answer.case_id)
        if proposal is None:
            problems.append(issue("not-proposed", f"case '{answer.case_id}' is not proposed to any municipality "
                                  f"in run {source.number}", column="case_id", **where))
            continue
        muni = answer.municipality_id or proposal["municipality_id"]
        if muni != proposal["municipality_id"]:
            problems.append(issue("not-proposed", f"case '{answer.case_id}' is proposed to "
                                  f"'{proposal['municipality_id']}', not '{muni}'", column="municipality_id",
                                  **where))
            continue
        if answer.decision == "accepted":
            dwelling = answer.dwelling_id if answer.dwelling_id is not None else (proposal.get("dwelling_id") or "")
            if pins.get(answer.case_id) != {"case_id": answer.case_id, "municipality_id": muni, "dwelling_id": dwelling}:
                added_pins += 1
            pins[answer.case_id] = {"case_id": answer.case_id, "municipality_id": muni, "dwelling_id": dwelling}
        else:
            if answer.dwelling_id:
                problems.append(issue("dwelling-on-decline", "a declined answer takes no dwelling",
                                      column="dwelling_id", **where))
                continue
            if pins.get(answer.case_id, {}).get("municipality_id") == muni:
                del pins[answer.case_id]
                removed_pins += 1
            if (answer.case_id, muni) not in excluded:
                exclusions.append({"case_id": answer.case_id, "municipality_id": muni,
                                   "reason": f"declined: {answer.reason}" if answer.reason else "declined"})
                excluded.add((answer.case_id, muni))
                added_exclusions += 1
            dwelling = ""
        records.append(ResponseRow(plan_id=plan.id, run_id=source.id, case_id=answer.case_id, municipality_id=muni,
                                   decision=answer.decision, reason=answer.reason, dwelling_id=dwelling,
                                   actor=user.name))
    if problems:
        raise ApiError(422, problems)
    new_pins = list(pins.values())
    _validate(session, plan, pins=new_pins, exclusions=exclusions)
    version = compare_and_set(session, plan, versions, pins=new_pins, exclusions=exclusions)
    session.add_all(records)
    accepted = sorted(r.case_id for r in records if r.decision == "accepted")
    declined = sorted(f"{r.case_id}@{r.municipality_id}" for r in records if r.decision == "declined")
    store.audit(session, actor=user.name, role=user.role, action="responses-recorded", plan_id=plan.id,
                version=version, detail={"run": source.number, "accepted": accepted, "declined": declined})
    session.commit()
    response.headers["ETag"] = etag(version)
    return ResponsesOut(version=version, recorded=[_response_out(r, {source.id: source.number}) for r in records],
                        pins_added=added_pins, exclusions_added=added_exclusions, pins_removed=removed_pins)


def _response_out(row: ResponseRow, numbers: dict[int, int]) -> ResponseOut:
    return ResponseOut(id=row.id, run_number=numbers.get(row.run_id), case_id=row.case_id,
                       municipality_id=row.municipality_id, decision=row.decision, reason=row.reason,
                       dwelling_id=row.dwelling_id, actor=row.actor, at=store.as_utc(row.at))


@router.get("/{plan_id}/responses", response_model=list[ResponseOut], responses=errors(401, 404),
            summary="The municipalities' answers recorded on this plan")
def list_responses(plan_id: str, user: UserDep, session: SessionDep) -> list[ResponseOut]:
    load_plan(session, plan_id)
    numbers = {r.id: r.number for r in runs_of(session, plan_id)}
    rows = session.scalars(select(ResponseRow).where(ResponseRow.plan_id == plan_id).order_by(ResponseRow.id)).all()
    return [_response_out(r, numbers) for r in rows]


@router.get("/{plan_id}/audit", response_model=AuditList, responses=errors(401, 404),
            summary="Every change to this plan: who, when, what")
def plan_audit(plan_id: str, user: UserDep, session: SessionDep) -> AuditList:
    load_plan(session, plan_id)
    rows = session.scalars(select(AuditRow).where(AuditRow.plan_id == plan_id).order_by(AuditRow.id)).all()
    return AuditList(items=[AuditEntry(id=r.id, at=store.as_utc(r.at), actor=r.actor, role=r.role, action=r.action,
                                       plan_id=r.plan_id, problem_id=r.problem_id, version=r.version,
                                       detail=r.detail or {}) for r in rows])

"""``/v1/problems``: upload a round (JSON or a zip of the CSVs), validated like the CLI does."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select

from allocator import InputIssue, ProblemValidationError, build_problem
from allocator.reading import settings_from_mapping
from allocator.settings import Settings

from .. import service, store
from ..deps import ConfigDep, CoordinatorDep, SessionDep, UserDep
from ..errors import ApiError, not_found
from ..models import ProblemRow
from ..responses import errors
from ..schemas import ProblemList, ProblemOut
from ..tables import SETTINGS_FILE, json_to_frame, settings_from_toml, store_tables, tables_from_zip

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/problems", tags=["problems"])

_ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The problem folder: as JSON (`ProblemIn`), as a zip of its CSV files and "
                       "settings.toml (`application/zip`), or the zip as the `file` field of a form.",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ProblemIn"}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"},
                               "name": {"type": "string"}}}},
        },
    }
}


class _LooseProblem(BaseModel):
    """ProblemIn with the files unchecked: :func:`json_to_frame` reports their issues per row."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("", max_length=200)
    files: dict[str, Any]
    settings: dict[str, Any] | None = None


def problem_out(row: ProblemRow) -> ProblemOut:
    return ProblemOut(id=row.id, name=row.name, created_at=store.as_utc(row.created_at), created_by=row.created_by,
                      digest=row.digest, counts=row.counts, files=row.files, settings=row.settings)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError.one(413, "too-large", f"the body is larger than {limit} bytes", file="body")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError.one(413, "too-large", f"the body is larger than {limit} bytes", file="body")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(body: bytes) -> tuple[str, dict[str, Any], dict[str, Any] | None, list[InputIssue]]:
    """Name, tables and settings of a JSON upload, with every issue found."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError.one(422, "json_invalid", f"the body is not valid JSON: {exc}", file="body")
    try:
        upload = _LooseProblem.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, [{"file": "body", "row": None, "column": ".".join(str(p) for p in e["loc"]) or None,
                              "rule": e["type"], "message": e["msg"]} for e in exc.errors()])
    issues: list[InputIssue] = []
    tables = {}
    settings = upload.settings
    for name, value in upload.files.items():
        if name == SETTINGS_FILE:
            if not isinstance(value, str):
                issues.append(InputIssue(name, None, None, "bad-settings", "settings.toml must be TOML text"))
            elif settings is not None:
                issues.append(InputIssue(name, None, None, "duplicate-settings",
                                         "give settings either as 'settings' or as files['settings.toml']"))
            else:
                settings = settings_from_toml(value, issues)
            continue
        frame = json_to_frame(name, value, issues)
        if frame is not None:
            tables[name] = frame
    return upload.name, tables, settings, issues


def _validate(tables: dict[str, Any], settings_data: dict[str, Any] | None, issues: list[InputIssue]):
    """Build the problem, collecting every issue (tables, settings, rules) into one error."""
    try:
        settings = settings_from_mapping(settings_data or {})
    except ProblemValidationError as exc:  # go on with defaults to report the tables' issues too
        issues = issues + exc.issues
        settings = Settings()
    try:
        problem = build_problem(tables, settings)
    except ProblemValidationError as exc:
        unreadable = {i.file for i in issues}  # a file given but unreadable is not also "missing"
        found = [i for i in exc.issues if not (i.rule == "missing-file" and i.file in unreadable)]
        raise ProblemValidationError(issues + found) from None
    except Exception as exc:  # every bad input must be a 4xx, even one the validator misses
        log.exception("build_problem failed on an upload")
        raise ProblemValidationError(issues + [InputIssue("problem", None, None, "invalid-input",
                                                          f"the input could not be read: {exc}")]) from None
    if issues:
        raise ProblemValidationError(issues)
    return problem


def _create(session, user, name: str, tables, settings_data, issues) -> ProblemRow:
    problem = _validate(tables, settings_data, issues)
    counts = {k: int(v) for k, v in problem.describe().items()}
    row = ProblemRow(name=name, created_by=user.name, digest=problem.digest,
                     settings=service.settings_json(problem.settings),
                     tables=store_tables(problem.raw_tables()), counts=counts,
                     files=sorted(problem.raw_tables()))
    session.add(row)
    session.flush()
    store.audit(session, actor=user.name, role=user.role, action="problem-created", problem_id=row.id,
                detail={"digest": problem.digest, **counts})
    session.commit()
    log.info("problem %s created: %s", row.id, problem.describe())
    return row


@router.post(
    "", status_code=201, response_model=ProblemOut, openapi_extra=_UPLOAD_BODY,
    responses=errors(401, 403, 413, 415, 422),
    summary="Upload and validate a problem",
)
async def create_problem(request: Request, response: Response, user: CoordinatorDep, config: ConfigDep,
                         session: SessionDep) -> ProblemOut:
    """Validate a round and store it. Every input error is listed at once (422), each with its
    file, row (as a spreadsheet shows it), column and rule, exactly as ``allocator propose``
    reports them."""
    limit = int(config.max_upload_mb * 1024 * 1024)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/json", ""):
        body = await _read_body(request, limit)
        name, tables, settings, issues = await run_in_threadpool(_parse_json, body)
    elif content_type in _ZIP_TYPES:
        body = await _read_body(request, limit)
        name = request.query_params.get("name", "")
        tables, settings, issues = {}, None, []
        tables, settings = await run_in_threadpool(tables_from_zip, body, limit * 10, issues)
    elif content_type == "multipart/form-data":
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ApiError.one(413, "too-large", f"the body is larger than {limit} bytes", file="body")
        try:
            form = await request.form(max_part_size=limit)
        except Exception as exc:  # malformed multipart
            raise ApiError.one(422, "bad-form", f"the form could not be read: {exc}", file="body")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError.one(422, "missing-file", "the form needs a 'file' field with the zip", file="body",
                               column="file")
        data = await upload.read()
        name = str(form.get("name") or "")
        issues = []
        tables, settings = await run_in_threadpool(tables_from_zip, data, limit * 10, issues)
    else:
        raise ApiError.one(415, "unsupported-media-type",
                           f"Content-Type {content_type!r} is not accepted; send application/json, "
                           "application/zip or multipart/form-data", file="header", column="Content-Type")
    row = await run_in_threadpool(_create, session, user, name, tables, settings, issues)
    response.headers["Location"] = f"/v1/problems/{row.id}"
    return problem_out(row)


@router.get("", response_model=ProblemList, responses=errors(401, 422), summary="List problems")
def list_problems(user: UserDep, session: SessionDep,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  offset: Annotated[int, Query(ge=0)] = 0) -> ProblemList:
    total = session.scalar(select(func.count()).select_from(ProblemRow)) or 0
    rows = session.scalars(select(ProblemRow).order_by(ProblemRow.created_at.desc(), ProblemRow.id)
                           .limit(limit).offset(offset)).all()
    return ProblemList(items=[problem_out(r) for r in rows], total=total)


@router.get("/{problem_id}", response_model=ProblemOut, responses=errors(401, 404),
            summary="A problem: counts, settings, digest")
def get_problem(problem_id: str, user: UserDep, session: SessionDep) -> ProblemOut:
    row = session.get(ProblemRow, problem_id)
    if row is None:
        raise not_found("problem", problem_id)
    return problem_out(row)

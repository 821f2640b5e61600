"""``GET /health``: is the service up, can it reach its database, how busy are the workers."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ..schemas import Health

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("settlement-allocator")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "database unreachable"}},
            summary="Liveness and readiness; no API key needed")
def health(request: Request):
    database = "ok"
    try:
        with request.app.state.sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # report, do not raise: this is the health check
        log.error("health: database unreachable: %s", exc)
        database = "unreachable"
    body = Health(status="ok" if database == "ok" else "degraded", database=database,
                  jobs=request.app.state.runner.counts(), version=_version())
    if database != "ok":
        return JSONResponse(body.model_dump(), status_code=503)
    return body

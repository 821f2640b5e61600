"""Every error the service returns has one shape: ``{"detail": [issue, ...]}`` where an issue is
``{file, row, column, rule, message}`` (the CLI's input issue). Request errors are 4xx with
detail, never 500.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from allocator import InputIssue, ProblemValidationError

log = logging.getLogger(__name__)


def issue(rule: str, message: str, *, file: str | None = None, row: int | None = None,
          column: str | None = None) -> dict[str, Any]:
    return {"file": file, "row": row, "column": column, "rule": rule, "message": message}


class ApiError(Exception):
    """An error answered with ``status`` and a list of issues."""

    def __init__(self, status: int, issues: list[dict[str, Any]] | list[InputIssue],
                 headers: dict[str, str] | None = None):
        self.status = status
        self.issues = [i.to_dict() if isinstance(i, InputIssue) else i for i in issues]
        self.headers = headers
        super().__init__("; ".join(str(i.get("message")) for i in self.issues))

    @classmethod
    def one(cls, status: int, rule: str, message: str, **where: Any) -> "ApiError":
        return cls(status, [issue(rule, message, **where)])


def not_found(what: str, ident: str) -> ApiError:
    return ApiError.one(404, "not-found", f"{what} '{ident}' not found")


def _body(issues: list[dict[str, Any]]) -> dict[str, Any]:
    return {"detail": issues}


_STATUS_RULES = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
                 405: "method-not-allowed", 406: "not-acceptable", 409: "conflict",
                 413: "too-large", 415: "unsupported-media-type", 422: "invalid", 428: "precondition-required"}


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same structured body."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.issues), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(ProblemValidationError)
    async def _validation(_request: Request, exc: ProblemValidationError) -> JSONResponse:
        return JSONResponse(_body([i.to_dict() for i in exc.issues]), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            where = loc[0] if loc else "request"
            column = ".".join(loc[1:]) or None
            issues.append(issue(err.get("type", "invalid"), str(err.get("msg", "invalid value")),
                                file=where, column=column))
        return JSONResponse(_body(issues), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, list):
            issues = exc.detail
        else:
            rule = _STATUS_RULES.get(exc.status_code, "error")
            issues = [issue(rule, str(exc.detail))]
        return JSONResponse(_body(issues), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.exception("internal error %s on %s %s", ref, request.method, request.url.path)
        return JSONResponse(_body([issue("internal-error", f"internal error (reference {ref}); "
                                         "the server log has the details")]), status_code=500)

"""OpenAPI descriptions of the error responses, all with the :class:`~api.schemas.ErrorBody` shape."""

from __future__ import annotations

from typing import Any

from .schemas import ErrorBody

_DESCRIPTIONS = {
    400: "Malformed header (e.g. an If-Match that is not a version)",
    401: "No API key, or an unknown one",
    403: "The key is a viewer's; changes need a coordinator",
    404: "No such problem, plan or case",
    409: "Conflict: the If-Match version is stale (someone changed the plan), or the plan's state "
         "does not allow this (a solve is running, no result yet)",
    413: "The upload is larger than ALLOCATOR_MAX_UPLOAD_MB",
    415: "Unsupported Content-Type",
    422: "Invalid input: every issue at once, each with file, row, column, rule and message",
    428: "If-Match is required on edits",
    503: "The service cannot do this now (e.g. its database is unavailable)",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the listed error codes with the common error body."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}

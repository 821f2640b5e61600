"""Typed dependencies: settings, a database session, the caller with their role, If-Match."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from .config import ApiConfig
from .errors import ApiError, issue

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="an API key from ALLOCATOR_API_KEYS")
bearer = HTTPBearer(auto_error=False, description="the API key as a bearer token")


@dataclass(frozen=True)
class User:
    """The caller: the key's name (written to the audit log) and role."""

    name: str
    role: str

    @property
    def can_write(self) -> bool:
        return self.role == "coordinator"


def get_config(request: Request) -> ApiConfig:
    return request.app.state.config


def get_session(request: Request) -> Iterator[Session]:
    session: Session = request.app.state.sessions()
    try:
        yield session
    finally:
        session.close()


def current_user(
    request: Request,
    key: Annotated[str | None, Depends(api_key_header)],
    token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The caller named by ``X-API-Key`` or ``Authorization: Bearer``; 401 without a known key."""
    given = key or (token.credentials if token is not None else None)
    challenge = {"WWW-Authenticate": 'Bearer realm="allocator", ApiKey header="X-API-Key"'}
    if not given:
        raise ApiError(401, [issue("missing-api-key", "send an API key in X-API-Key or "
                                   "Authorization: Bearer", file="header", column="X-API-Key")],
                       headers=challenge)
    config: ApiConfig = request.app.state.config
    match = None
    for candidate in config.keys.values():
        if hmac.compare_digest(candidate.key.encode(), given.encode()):
            match = candidate
    if match is None:
        raise ApiError(401, [issue("unknown-api-key", "the API key is not known", file="header",
                                   column="X-API-Key")], headers=challenge)
    return User(name=match.name, role=match.role)


def coordinator(user: Annotated[User, Depends(current_user)]) -> User:
    """The caller, who must be allowed to write (role coordinator); 403 for a viewer."""
    if not user.can_write:
        raise ApiError.one(403, "read-only", f"'{user.name}' is a viewer; changes need a coordinator key")
    return user


def parse_if_match(value: str | None) -> list[int] | None:
    """Versions named by an If-Match header (``"3"``, ``W/"3"``, ``3``, or a list of them)."""
    if value is None:
        return None
    versions = []
    for tag in value.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tag = tag.strip('"')
        if not tag.isdigit():
            raise ApiError.one(400, "bad-if-match", "If-Match must carry the plan's version as its ETag, "
                               'e.g. If-Match: "3"', file="header", column="If-Match")
        versions.append(int(tag))
    return versions


def if_match_required(if_match: Annotated[str | None, Header()] = None) -> list[int]:
    """The versions an edit is based on; 428 when the header is missing."""
    versions = parse_if_match(if_match)
    if versions is None:
        raise ApiError.one(428, "if-match-required", "edits to a plan must send its version in If-Match "
                           "(the ETag of GET /v1/plans/{id})", file="header", column="If-Match")
    return versions


def if_match_optional(if_match: Annotated[str | None, Header()] = None) -> list[int] | None:
    return parse_if_match(if_match)


def etag(version: int) -> str:
    return f'"{version}"'


SessionDep = Annotated[Session, Depends(get_session)]
ConfigDep = Annotated[ApiConfig, Depends(get_config)]
UserDep = Annotated[User, Depends(current_user)]
CoordinatorDep = Annotated[User, Depends(coordinator)]
IfMatchDep = Annotated[list[int], Depends(if_match_required)]
OptionalIfMatchDep = Annotated[list[int] | None, Depends(if_match_optional)]

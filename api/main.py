"""The application factory: ``create_app()`` wires settings, database, job runner and routers.

``uvicorn --factory api.main:create_app`` serves it; ``allocator serve`` does the same. Run one
server process per database: it owns the job queue (the solves themselves run in their own
processes, up to ``ALLOCATOR_MAX_WORKERS`` at once).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .config import ApiConfig
from .db import init_db, make_engine, make_sessionmaker
from .errors import install_error_handlers
from .jobs import JobRunner
from .recommendations import RecommendPool
from .routers import cases, health, plans, problems
from .schemas import ProblemIn
from .service import ProblemCache

log = logging.getLogger(__name__)

DESCRIPTION = """
The settlement allocator over HTTP: upload a round (`/v1/problems`), solve it in the background
(`/v1/plans`), follow progress, stop early, pin and exclude, record municipalities' answers and
re-solve, and ask why a case is where it is and where else it could go.

**Auth**: send an API key in `X-API-Key` (or `Authorization: Bearer`). Coordinators read and
write, viewers read. **Versions**: every plan has a version, sent as its `ETag`; edits send it
back in `If-Match` and get 409 when it is stale. **Errors** always have the body
`{"detail": [{"file", "row", "column", "rule", "message"}, ...]}`. See `docs/api.md`.
"""


def create_app(config: ApiConfig | None = None) -> FastAPI:
    """Build the application (settings from the environment unless given)."""
    config = config or ApiConfig()
    engine = make_engine(config.sqlalchemy_url)
    sessions = make_sessionmaker(engine)
    runner = JobRunner(sessions, config.sqlalchemy_url, max_workers=config.max_workers,
                       poll_interval=config.poll_interval, shutdown_grace=config.shutdown_grace,
                       log_level=config.log_level)
    recommend_pool = RecommendPool(config.recommend_workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        init_db(engine)
        if not config.keys:
            log.warning("no API keys configured (ALLOCATOR_API_KEYS): every request but /health gets 401")
        runner.start()
        runner.recover()
        log.info("allocator service ready: %s workers", config.max_workers)
        try:
            yield
        finally:
            runner.shutdown()
            recommend_pool.shutdown()
            engine.dispose()
            log.info("allocator service stopped")

    app = FastAPI(title="Settlement allocator", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.config = config
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.runner = runner
    app.state.recommend_pool = recommend_pool
    app.state.problem_cache = ProblemCache()
    install_error_handlers(app)
    for module in (health, problems, plans, cases):
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema plus ``ProblemIn``, which the upload route parses by hand."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = ProblemIn.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in problem_schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components["ProblemIn"] = problem_schema
        # FastAPI's default 422 body is not what this service sends: point every one at ErrorBody.
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                default = operation.get("responses", {}).get("422")
                if default and "HTTPValidationError" in str(default):
                    operation["responses"]["422"] = {
                        "description": "Invalid input: every issue at once",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                    }
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema

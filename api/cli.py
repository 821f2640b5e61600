"""``allocator serve``: run the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .config import ApiConfig

    config = ApiConfig()
    logging.basicConfig(level=config.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    log.info("serving on http://%s:%s (database %s)", args.host, args.port,
             config.sqlalchemy_url.split("@")[-1])
    uvicorn.run("api.main:create_app", factory=True, host=args.host, port=args.port,
                log_level=config.log_level.lower(), workers=1)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand to the ``allocator`` command line."""
    p = sub.add_parser("serve", help="run the HTTP service (settings from the environment, see docs/api.md)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.set_defaults(run=_serve)

"""`gateway serve`: run the HTTP service under uvicorn."""

from __future__ import annotations

import argparse
import os

import uvicorn

from gateway.auth.setup import check_identity_provider
from gateway.cli import runtime


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `serve` subcommand."""
    parser = commands.add_parser("serve", help="run the gateway HTTP service")
    parser.add_argument("--host", help="bind address (GATEWAY_HOST)")
    parser.add_argument("--port", type=int, help="port (GATEWAY_PORT)")
    parser.add_argument("--workers", type=int, help="worker processes (GATEWAY_WORKERS)")
    parser.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    """Prepare the database, then hand over to uvicorn with the app factory."""
    for name, value in (("GATEWAY_HOST", args.host), ("GATEWAY_PORT", args.port),
                        ("GATEWAY_WORKERS", args.workers)):
        if value is not None:
            os.environ[name] = str(value)
    config = runtime.settings()
    check_identity_provider(config)
    prepared = runtime.prepare_database(config)
    try:
        uvicorn.run(
            "gateway.app:app_from_environment",
            factory=True,
            host=config.server.host,
            port=config.server.port,
            workers=config.server.workers,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=30,
            server_header=False,
        )
    finally:
        if prepared.embedded is not None:
            prepared.embedded.stop()
    return 0

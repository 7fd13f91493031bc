"""`gateway serve`: run the HTTP service under uvicorn."""

from __future__ import annotations

import argparse
import os
import signal
from typing import Any

import uvicorn

from gateway.auth.setup import check_identity_provider
from gateway.cli import runtime
from gateway.settings import Settings


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
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, _stopped_as_asked)
        uvicorn.run("gateway.app:app_from_environment", factory=True, **uvicorn_options(config))
    finally:
        if prepared.embedded is not None:
            prepared.embedded.stop()
    return 0


def _stopped_as_asked(signum: int, frame: object) -> None:
    """Exit 0 once a stop signal has been honoured.

    uvicorn handles SIGTERM/SIGINT itself while it serves (graceful shutdown), then
    raises the signal again for the handler that was there before: this one. Without
    it SIGTERM would kill the process before the embedded database is released.
    """
    raise SystemExit(0)


def uvicorn_options(config: Settings) -> dict[str, Any]:
    """The server's own bounds (docs/operations.md, "Limits").

    h11 rather than httptools: only h11 bounds the request line and headers
    (`h11_max_incomplete_event_size`); httptools buffers headers of any size.
    On SIGTERM/SIGINT uvicorn stops accepting, lets requests in flight finish for up to
    the shutdown timeout, then runs the app's shutdown (which closes the pool).
    """
    server = config.server
    return {
        "host": server.host,
        "port": server.port,
        "workers": server.workers,
        "http": "h11",
        "h11_max_incomplete_event_size": server.max_header_bytes,
        "limit_concurrency": server.max_connections,
        "timeout_graceful_shutdown": server.shutdown_timeout_s,
        "log_config": None,
        "access_log": False,
        "server_header": False,
    }

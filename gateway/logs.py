"""structlog configuration: JSON lines (console renderer on a TTY), context from contextvars.

Middleware binds `request_id` and `subject` per request; every line carries them.
Nothing secret is logged: no tokens, no document text.
"""

from __future__ import annotations

import logging
import sys

import structlog

from gateway.settings import ServerSettings


def configure_logging(settings: ServerSettings) -> None:
    """Configure structlog and route stdlib logging through the same renderer."""
    use_console = settings.log_format == "console" or (
        settings.log_format == "auto" and sys.stderr.isatty()
    )
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    level = getattr(logging, settings.log_level.upper())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processor=renderer)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.WARNING))
    for noisy in ("uvicorn.access", "httpx", "pgserver", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

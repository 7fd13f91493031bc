"""Every error becomes an RFC 9457 problem-details response, here and nowhere else."""

from __future__ import annotations

from typing import Any

import psycopg
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from gateway.errors import AuthenticationError, GatewayError, PermissionDeniedError

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = structlog.get_logger("gateway.errors")


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    """Build an application/problem+json response carrying the request id."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        body["request_id"] = request_id
        # Errors raised by middleware are answered outside the request-id middleware.
        headers = {**(headers or {}), "X-Request-ID": str(request_id)}
    body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def gateway_error_handler(_: Request, exc: GatewayError) -> Response[dict[str, Any]]:
    """Translate a domain error; 401/403 carry RFC 6750 challenges."""
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationError):
        challenge = 'Bearer realm="gateway"'
        if exc.token_presented:
            challenge += ', error="invalid_token"'
        headers["WWW-Authenticate"] = challenge
    elif isinstance(exc, PermissionDeniedError):
        headers["WWW-Authenticate"] = 'Bearer realm="gateway", error="insufficient_scope"'
    elif exc.status_code == 503:
        headers["Retry-After"] = "1"
    extra = {k: v for k, v in exc.extra.items() if isinstance(v, str | int | float | bool | list)}
    return problem(exc.status_code, exc.title, exc.detail, headers=headers or None, **extra)


def validation_handler(_: Request, exc: ValidationException) -> Response[dict[str, Any]]:
    """Malformed bodies are 400; well-formed bodies that break a constraint are 422."""
    errors = exc.extra if isinstance(exc.extra, list) else []
    malformed = "malformed" in str(exc.detail).lower() or "decode" in str(exc.detail).lower()
    status = 400 if malformed else 422
    title = "Malformed request" if malformed else "Request validation failed"
    safe = [
        {"message": str(e.get("message", "")), "key": str(e.get("key", "")),
         "source": str(e.get("source", ""))}
        for e in errors if isinstance(e, dict)
    ]
    return problem(status, title, str(exc.detail), errors=safe)


def http_exception_handler(_: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    """Framework errors (404 route, 405, 413 body) keep their status, in problem form."""
    headers = dict(exc.headers or {})
    return problem(exc.status_code, str(exc.detail), headers=headers or None)


def database_error_handler(_: Request, exc: Exception) -> Response[dict[str, Any]]:
    """The database is unreachable, restarting, or the pool is exhausted: retryable 503."""
    if isinstance(exc, DBAPIError) and not isinstance(exc.orig, psycopg.OperationalError):
        log.error("database_error", error=type(exc.orig).__name__)
        return problem(500, "Internal error", "The request failed unexpectedly.")
    log.warning("database_unavailable", error=type(exc).__name__)
    return problem(503, "Service unavailable", "The database is temporarily unavailable.",
                   headers={"Retry-After": "1"})


def unexpected_error_handler(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    """Anything unplanned: log it with its traceback, answer 500 without one."""
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return problem(500, "Internal error", "The request failed unexpectedly.")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    GatewayError: gateway_error_handler,
    ValidationException: validation_handler,
    HTTPException: http_exception_handler,
    DBAPIError: database_error_handler,
    PoolTimeoutError: database_error_handler,
    psycopg.OperationalError: database_error_handler,
    Exception: unexpected_error_handler,
}

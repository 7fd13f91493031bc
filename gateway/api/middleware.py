"""Per-request plumbing: request id, one canonical log line, metrics, header and concurrency bounds.

Pure ASGI so it wraps everything, including authentication failures. Litestar builds a
middleware stack per route handler, so the concurrency slots are one semaphore shared by
every instance (made by the composition root): the bound is per worker, not per route.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import msgspec
import structlog
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from gateway.metrics import Metrics

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = structlog.get_logger("gateway.access")


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _VALID_REQUEST_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


def _route_label(scope: Scope) -> str:
    handler = scope.get("route_handler")
    paths = getattr(handler, "paths", None)
    return sorted(paths)[0] if paths else "unmatched"


class RequestContextMiddleware:
    """Binds request_id, returns it as X-Request-ID, logs and measures each request."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, slots: asyncio.Semaphore,
                 max_header_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.slots = slots
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        if sum(len(k) + len(v) for k, v in scope["headers"]) > self.max_header_bytes:
            await send_problem(send_with_id, 431, "Request header fields too large",
                               f"Headers may hold at most {self.max_header_bytes} bytes.")
            self._finish(scope, 431, 0.0)
            return
        if self.slots.locked():  # refuse at once: waiting for a slot would be a queue
            self.metrics.rejected_overload.inc()
            await send_unavailable(send_with_id, "Too many concurrent requests; retry shortly.")
            self._finish(scope, 503, 0.0)
            return
        started = time.perf_counter()
        async with self.slots:
            self.metrics.in_flight.inc()
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                # Raised by a middleware inside this one (authentication): Litestar's outer
                # exception handler answers it after we return, so count its status here.
                status["code"] = int(getattr(exc, "status_code", 500))
                raise
            finally:
                self.metrics.in_flight.dec()
                self._finish(scope, status["code"], time.perf_counter() - started)

    def _finish(self, scope: Scope, status: int, elapsed: float) -> None:
        route = _route_label(scope)
        method = scope.get("method", "")
        self.metrics.requests.labels(route, method, str(status)).inc()
        self.metrics.request_latency.labels(route, method).observe(elapsed)
        log.info(
            "request", method=method, path=scope.get("path"), status=status,
            duration_ms=round(elapsed * 1000, 2),
        )


async def send_unavailable(send: Send, detail: str) -> None:
    """Answer 503 + Retry-After as a problem document, straight on the ASGI channel."""
    await send_problem(send, 503, "Service unavailable", detail, [(b"retry-after", b"1")])


async def send_problem(send: Send, status: int, title: str, detail: str,
                       headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer with an RFC 9457 problem document from ASGI middleware (outside Litestar)."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        body["request_id"] = request_id
    encoded = msgspec.json.encode(body)
    start: HTTPResponseStartEvent = {
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(encoded)).encode()), *(headers or [])],
    }
    await send(start)
    await send({"type": "http.response.body", "body": encoded, "more_body": False})

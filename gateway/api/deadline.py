"""A deadline on every request: no answer within it means 503 + Retry-After, on time.

The database, the LLM and the IdP each have their own timeouts, but some hangs are out
of their reach: a pooled connection whose peer went silent (a network blackhole) waits
on a socket that never becomes readable, and cancelling a query there makes psycopg
spend up to ten more seconds trying to cancel it on the server. So the 503 is sent by a
timer, not by the request's own task: the client is answered at the deadline, then the
request's task is cancelled and unwinds at its own pace (still holding its concurrency
slot, so the work in flight stays bounded). Anything the app sends afterwards is dropped.

The deadline covers the time until the response starts. A streamed answer that has
started is bounded by the LLM's per-read timeout instead: cutting a stream midway
would only hide its end from the client. A route may name a longer class of deadline
with `opt={"deadline": "ingest"}`: embedding a large document on a CPU takes minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.middleware import send_unavailable
from gateway.metrics import Metrics

log = structlog.get_logger("gateway.access")


class _Progress:
    """One request's state as the deadline sees it (all touched from one event loop)."""

    __slots__ = ("expired", "expiry", "in_app", "started")

    def __init__(self) -> None:
        self.started = False  # the app has sent its response start
        self.expired = False  # the deadline fired first: the app's messages are dropped
        self.in_app = True  # the request's task is still inside the app
        self.expiry: asyncio.Task[None] | None = None


class RequestDeadlineMiddleware:
    """Answers 503 when a request has not started its response within its route's deadline."""

    def __init__(self, app: ASGIApp, *, timeouts: Mapping[str, float], metrics: Metrics) -> None:
        self.app = app
        self.timeouts = timeouts  # by deadline class; "request" is the default class
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - ASGI servers always run requests in tasks
            raise RuntimeError("requests must run in an asyncio task")
        progress = _Progress()

        async def guarded_send(message: Message) -> None:
            if progress.expired:
                return
            if message["type"] == "http.response.start":
                progress.started = True
                timer.cancel()
            await send(message)

        opt = getattr(scope.get("route_handler"), "opt", None) or {}
        timeout_s = self.timeouts.get(opt.get("deadline", "request"), self.timeouts["request"])
        timer = asyncio.get_running_loop().call_later(
            timeout_s, self._expire, task, progress, send, timeout_s
        )
        try:
            await self.app(scope, receive, guarded_send)
        except asyncio.CancelledError:
            # Swallow only the deadline's own cancellation; a shutdown's goes on up.
            if not progress.expired or task.uncancel() > 0:
                raise
        finally:
            timer.cancel()
            progress.in_app = False
        if progress.expiry is not None:  # the app returned just as the deadline fired
            await asyncio.shield(progress.expiry)

    def _expire(self, task: asyncio.Task[Any], progress: _Progress, send: Send,
                timeout_s: float) -> None:
        if progress.started:
            return
        progress.expired = True
        progress.expiry = asyncio.get_running_loop().create_task(
            self._answer_then_cancel(task, progress, send, timeout_s)
        )

    async def _answer_then_cancel(self, task: asyncio.Task[Any], progress: _Progress,
                                  send: Send, timeout_s: float) -> None:
        self.metrics.deadline_exceeded.inc()
        log.warning("request_deadline_exceeded", timeout_s=timeout_s)
        try:
            await send_unavailable(send, "The request did not complete in time; retry shortly.")
        except Exception as exc:  # the client may be gone; the work must be stopped regardless
            log.info("deadline_answer_not_sent", error=type(exc).__name__)
        finally:
            if progress.in_app:
                task.cancel()

"""Audit requests that were denied or failed after authentication (SPEC §9).

A failure after retrieval (the LLM timed out, say) appends an event that points at the
retrieval's event: events are never updated.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from gateway.audit.service import AuditLog
from gateway.domain import AuditEvent, Principal
from gateway.errors import AuditUnavailableError, GatewayError, PermissionDeniedError
from gateway.metrics import Metrics

log = structlog.get_logger("gateway.audit")
_AUDITED_STATUSES = frozenset({400, 403, 404, 409, 413, 415, 422, 429, 502, 503, 504})


def _status_of(exc: Exception) -> int:
    return int(getattr(exc, "status_code", 500))


class FailureAuditor:
    """Writes best-effort audit events for failed requests (never raises)."""

    def __init__(self, audit: AuditLog, metrics: Metrics | None = None) -> None:
        self._audit = audit
        self._metrics = metrics

    async def request_failed(self, exc: Exception, scope: Any) -> None:
        """`after_exception` hook: record denied/failed requests of authenticated callers."""
        principal = scope.get("user")
        status = _status_of(exc)
        if not isinstance(principal, Principal) or isinstance(exc, AuditUnavailableError):
            return
        if status not in _AUDITED_STATUSES:
            return
        handler = scope.get("route_handler")
        opt = getattr(handler, "opt", {}) or {}
        action = opt.get("audit_action") or f"{scope.get('method', '')} {scope.get('path', '')}"
        if self._metrics is not None and isinstance(exc, PermissionDeniedError):
            # Refused for lacking a gateway role; a document's access policy counts its own
            # refusals where it decides them (DocumentReader), so nothing is counted twice.
            self._metrics.policy_denials.labels(opt.get("audit_action") or "other").inc()
        detail: dict[str, Any] = {"http_status": status, "error": type(exc).__name__}
        if isinstance(exc, GatewayError) and "audit_id" in exc.extra:
            detail["retrieval_event"] = exc.extra["audit_id"]
        await self._write(principal, action, "denied" if status in (403, 404) else "failed", detail)

    async def stream_failed(self, retrieval_event: uuid.UUID, exc: GatewayError, *,
                            principal: Principal | None = None) -> None:
        """Record a generation failure that happened after the stream had started."""
        if principal is None:
            return
        detail = {"http_status": exc.status_code, "error": type(exc).__name__,
                  "retrieval_event": str(retrieval_event)}
        await self._write(principal, "query", "failed", detail)

    async def _write(self, principal: Principal, action: str, status: str,
                     detail: dict[str, Any]) -> None:
        request_id = str(structlog.contextvars.get_contextvars().get("request_id", ""))
        try:
            await self._audit.record(AuditEvent(request_id=request_id, action=action,
                                                principal=principal, status=status, detail=detail))
        except AuditUnavailableError:
            log.error("failure_audit_lost", action=action, status=status)

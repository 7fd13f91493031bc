"""Record audit events: committed in their own transaction, before anything is generated.

If the write fails for any reason the caller gets AuditUnavailableError (503) and must
not go on to generate: an answer without its audit record is never given (SPEC §9).
"""

from __future__ import annotations

import hashlib
import time
import uuid

import structlog
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.audit_models import AuditEventRow, AuditSourceRow
from gateway.domain import AuditEvent
from gateway.errors import AuditUnavailableError
from gateway.metrics import Metrics
from gateway.settings import AuditSettings

log = structlog.get_logger("gateway.audit")


def query_digest(query: str) -> str:
    """SHA-256 of the query text, hex."""
    return hashlib.sha256(query.encode("utf-8")).hexdigest()


class AuditLog:
    """Append-only writer of audit events (the runtime role can only INSERT and SELECT)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: AuditSettings,
                 metrics: Metrics) -> None:
        self._sessions = sessions
        self._settings = settings
        self._metrics = metrics

    async def record(self, event: AuditEvent) -> uuid.UUID:
        """Insert the event and its sources in one committed transaction; return its id."""
        started = time.perf_counter()
        event_id = uuid.uuid4()
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(insert(AuditEventRow).values(self._event_row(event_id, event)))
                if event.sources:
                    await session.execute(
                        insert(AuditSourceRow),
                        [self._source_row(event_id, s) for s in event.sources],
                    )
        except Exception as exc:
            self._metrics.audit_failures.inc()
            log.error("audit_write_failed", action=event.action, error=type(exc).__name__)
            raise AuditUnavailableError("The audit record could not be written.") from exc
        self._metrics.audit_latency.observe(time.perf_counter() - started)
        return event_id

    def _event_row(self, event_id: uuid.UUID, event: AuditEvent) -> dict[str, object]:
        p = event.principal
        store = self._settings.store_query
        return {
            "id": event_id,
            "request_id": event.request_id,
            "action": event.action,
            "status": event.status,
            "subject": p.subject,
            "issuer": p.issuer,
            "tenant": p.tenant,
            "groups": list(p.groups),
            "roles": list(p.roles),
            "clearance": p.clearance,
            "attributes": {k: list(v) for k, v in p.attributes.items()},
            "query": event.query if store else None,
            "query_sha256": query_digest(event.query) if event.query is not None else None,
            "detail": dict(event.detail),
        }

    @staticmethod
    def _source_row(event_id: uuid.UUID, source: object) -> dict[str, object]:
        row = {k: getattr(source, k) for k in (
            "rank", "document_id", "external_id", "document_version", "chunk_id",
            "content_sha256", "score", "granted_by", "policy_name", "policy_version")}
        return {"event_id": event_id, **row}

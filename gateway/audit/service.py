"""Record audit events: chained and committed in their own transaction, before anything is generated.

If the write fails for any reason the caller gets AuditUnavailableError (503) and must
not go on to generate: an answer without its audit record is never given (SPEC §9).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from gateway.audit.canonical import normalize_json
from gateway.audit.chain import Appended, PreparedEvent, append_committed, checkpoint_due, checkpoint_if_due
from gateway.audit.checkpoints import log_checkpoint
from gateway.audit.signing import AuditSigner
from gateway.audit.store import bind_tenant
from gateway.domain import AuditEvent, AuditSource
from gateway.errors import AuditUnavailableError
from gateway.metrics import Metrics
from gateway.settings import AuditSettings

log = structlog.get_logger("gateway.audit")


def query_digest(query: str) -> str:
    """SHA-256 of the query text, hex."""
    return hashlib.sha256(query.encode("utf-8")).hexdigest()


def _source_row(tenant: str, source: AuditSource) -> dict[str, Any]:
    return {
        "rank": source.rank, "document_id": source.document_id, "external_id": source.external_id,
        "document_version": source.document_version, "chunk_id": source.chunk_id,
        "content_sha256": source.content_sha256, "score": float(source.score),
        "granted_by": source.granted_by, "policy_name": source.policy_name,
        "policy_version": source.policy_version, "tenant": tenant,
    }


def prepare_event(event: AuditEvent, *, store_query: bool, event_id: uuid.UUID) -> PreparedEvent:
    """The columns of `event` (query kept or only hashed, per GATEWAY_AUDIT_STORE_QUERY)."""
    p = event.principal
    row = {
        "id": event_id,
        "tenant": p.tenant,
        "request_id": event.request_id,
        "action": event.action,
        "status": event.status,
        "subject": p.subject,
        "issuer": p.issuer,
        "groups": list(p.groups),
        "roles": list(p.roles),
        "clearance": p.clearance,
        "attributes": normalize_json({k: list(v) for k, v in p.attributes.items()}),
        "query": event.query if store_query else None,
        "query_sha256": query_digest(event.query) if event.query is not None else None,
        "detail": normalize_json(dict(event.detail)),
    }
    return PreparedEvent(row=row, sources=tuple(_source_row(p.tenant, s) for s in event.sources))


class AuditLog:
    """Append-only writer of the hash-chained audit trail (the runtime role can only INSERT and SELECT)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: AuditSettings,
                 metrics: Metrics, signer: AuditSigner | None = None) -> None:
        """`signer` signs the periodic checkpoints; the composition root always passes one.

        Without it (tests of other stages that build an AuditLog by hand) events are
        still chained, but no periodic checkpoint is written, and a warning says so.
        """
        self._sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]
        self._settings = settings
        self._metrics = metrics
        self._signer = signer
        if signer is None:
            log.warning("audit_checkpoints_disabled", reason="no audit signing key given")

    async def record(self, event: AuditEvent, *, connection: AsyncConnection | None = None) -> uuid.UUID:
        """Chain the event and its sources in one committed statement; return its id.

        `connection`: a connection the caller holds, outside any transaction (the query
        pipeline's, once its retrieval committed), used for the append instead of a
        second one from the pool.
        """
        started = time.perf_counter()
        event_id = uuid.uuid4()
        try:
            prepared = prepare_event(event, store_query=self._settings.store_query, event_id=event_id)
            if connection is not None:
                appended = await append_committed(connection, prepared)
            else:
                async with self._engine.connect() as own:
                    appended = await append_committed(own, prepared)
        except Exception as exc:
            self._metrics.audit_failures.inc()
            log.error("audit_write_failed", action=event.action, error=type(exc).__name__)
            raise AuditUnavailableError("The audit record could not be written.") from exc
        self._metrics.audit_chain_lock.observe(appended.held_s)
        self._metrics.audit_latency.observe(time.perf_counter() - started)
        # Only the events that close an interval open a second transaction (the rest answer sooner).
        if self._signer is not None and checkpoint_due(appended.seq, self._settings.checkpoint_every):
            await self._checkpoint(self._signer, prepared.tenant, appended)
        return event_id

    async def _checkpoint(self, signer: AuditSigner, tenant: str, appended: Appended) -> None:
        """A periodic checkpoint, after the commit; a failure is logged, the event stands."""
        try:
            async with self._sessions() as session, session.begin():
                await bind_tenant(session, tenant)
                checkpoint = await checkpoint_if_due(session, signer, tenant, appended,
                                                     self._settings.checkpoint_every)
        except Exception as exc:
            log.error("audit_checkpoint_failed", seq=appended.seq, error=type(exc).__name__)
            return
        if checkpoint is not None:
            log_checkpoint(checkpoint)

"""Reading one document: the same two locks as search (predicate + bound principal), audited.

A document the caller may not see is indistinguishable from one that does not exist
(404, never 403), so a read cannot be used to probe for existence.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.service import AuditLog
from gateway.db.access import bind_principal, document_access_predicate
from gateway.db.models import Document
from gateway.domain import AuditEvent, Principal
from gateway.errors import NotFoundError
from gateway.metrics import Metrics
from policies.model import ClassificationLevels


@dataclass(frozen=True)
class DocumentView:
    """A permitted document as its reader receives it."""

    id: uuid.UUID
    external_id: str
    title: str
    text: str
    content_type: str
    source_uri: str | None
    metadata: dict[str, Any]
    version: int
    classification: str
    tenant: str
    content_sha256: str
    updated_at: datetime


class DocumentReader:
    """Reads documents under the caller's access and audits every attempt."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], levels: ClassificationLevels,
                 audit: AuditLog, metrics: Metrics,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._sessions = sessions
        self._levels = levels
        self._audit = audit
        self._metrics = metrics
        self._clock = clock

    async def read(self, principal: Principal, document_id: uuid.UUID, request_id: str) -> DocumentView:
        """Return the document if the caller's access admits it (audited); 404 otherwise."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            await bind_principal(session, principal, self._levels, now)
            row = (await session.execute(
                select(Document).where(Document.id == document_id,
                                       document_access_predicate(principal, now, self._levels))
            )).scalar_one_or_none()
        if row is None:  # audited as denied by the failure auditor, like every refused request
            self._metrics.policy_denials.labels("document.read").inc()
            raise NotFoundError("No such document.")
        await self._audit.record(AuditEvent(
            request_id=request_id, action="document.read", principal=principal, status="ok",
            detail={"document_id": str(document_id), "version": row.version,
                    "external_id": row.external_id},
        ))
        return DocumentView(
            id=row.id, external_id=row.external_id, title=row.title, text=row.body,
            content_type=row.content_type, source_uri=row.source_uri, metadata=row.metadata_,
            version=row.version, classification=self._levels.names[row.classification],
            tenant=row.tenant, content_sha256=row.content_sha256, updated_at=row.updated_at,
        )

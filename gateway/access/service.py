"""What the access services share: the writer transaction, change audits, the request id.

A change is audited *before* its transaction commits: the audit record is committed in
its own transaction first, so a change is never visible without its audit event. If the
audit write fails, the change is rolled back and the caller gets 503.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.service import AuditLog
from gateway.db.access import bind_writer
from gateway.domain import AuditEvent
from policies.model import ClassificationLevels
from policies.principal import Principal


def current_request_id() -> str:
    """The request id bound by the HTTP middleware (or the CLI); a fresh one otherwise."""
    bound = structlog.contextvars.get_contextvars().get("request_id")
    return str(bound) if bound else uuid.uuid4().hex


class AccessAdministration:
    """Base of the access services: sessions, levels and the audit log."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], levels: ClassificationLevels,
                 audit: AuditLog) -> None:
        self.sessions = sessions
        self.levels = levels
        self.audit = audit

    @asynccontextmanager
    async def writer(self, tenant: str) -> AsyncIterator[AsyncSession]:
        """A transaction allowed to read and write `tenant`'s content and policies, nothing else."""
        async with self.sessions() as session, session.begin():
            await bind_writer(session, tenant)
            yield session

    async def bind_tenant(self, session: AsyncSession, tenant: str) -> None:
        """Re-bind an open transaction as the writer of another tenant (policy files may span tenants)."""
        await bind_writer(session, tenant)

    async def audit_change(self, session: AsyncSession, principal: Principal, action: str,
                           detail: Mapping[str, Any]) -> uuid.UUID:
        """Flush the pending change (so it is known to succeed) and commit its audit event."""
        await session.flush()
        event = AuditEvent(request_id=current_request_id(), action=action, principal=principal,
                           status="ok", detail=dict(detail))
        return await self.audit.record(event)

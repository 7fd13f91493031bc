"""What auditors may do with the trail - always inside their own tenant - and operator helpers.

Exports and reports hand out queries and who-saw-what, so each is itself recorded as an
audit event (`audit.export`, `audit.report`) and committed before the first byte goes
out, exactly as the query path does before generating (SPEC §9).
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from gateway.audit.checkpoints import Checkpoint, log_checkpoint, sign_checkpoint
from gateway.audit.export import check_format, render
from gateway.audit.reports import document_report, subject_report
from gateway.audit.service import AuditLog
from gateway.audit.signing import AuditSigner
from gateway.audit.store import AuditStore, EventQuery
from gateway.audit.verify import verify_tenant
from gateway.domain import AuditEvent, Principal
from gateway.errors import ConflictError, InvalidInputError, PermissionDeniedError, UnavailableError

CLI_ISSUER = "urn:gateway:cli"


@dataclass(frozen=True)
class ExportFilters:
    """The query string of `GET /v1/audit/events`."""

    since: datetime | None = None
    until: datetime | None = None
    subject: str | None = None
    document_id: uuid.UUID | None = None
    action: str | None = None
    tenant: str | None = None

    def detail(self) -> dict[str, Any]:
        """The filters as the audit event of the export records them."""
        return {k: (None if v is None else str(v)) for k, v in self.__dict__.items()}


def _text(value: str | None, name: str) -> str | None:
    """PostgreSQL text cannot hold NUL: refuse it as bad input rather than fail in the database."""
    if value is not None and "\x00" in value:
        raise InvalidInputError(f"{name} must not contain NUL characters")
    return value


def as_utc(value: datetime | None) -> datetime | None:
    """ISO 8601 times without an offset are taken as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def operator_principal(tenant: str) -> Principal:
    """Who an operator command acts as, in the audit trail."""
    return Principal(subject=f"operator:{getpass.getuser()}", tenant=tenant, issuer=CLI_ISSUER)


@contextmanager
def store_errors() -> Iterator[None]:
    """Database failures while reading the trail are 503, not 500."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise UnavailableError("The audit store is unavailable.") from exc


async def checkpoint_now(store: AuditStore, signer: AuditSigner, tenant: str,
                         kind: str = "manual") -> Checkpoint:
    """Sign and store a checkpoint of the chain's current head."""
    head = await store.head(tenant)
    if head is None:
        raise ConflictError(f"the audit chain of tenant {tenant!r} has no events yet")
    checkpoint = sign_checkpoint(signer, tenant=tenant, seq=head[0], kind=kind, head_hash=head[1],
                                 ts=datetime.now(UTC))
    await store.add_checkpoint(checkpoint)
    log_checkpoint(checkpoint)
    return checkpoint


class AuditTrail:
    """Auditor operations; the tenant is always the caller's own."""

    def __init__(self, store: AuditStore, audit_log: AuditLog, signer: AuditSigner) -> None:
        self._store = store
        self._audit = audit_log
        self._signer = signer

    @staticmethod
    def tenant_for(principal: Principal, requested: str | None = None) -> str:
        """The caller's tenant; asking for another one is refused."""
        if requested is not None and requested != principal.tenant:
            raise PermissionDeniedError("Auditors may only read their own tenant's audit trail.")
        return principal.tenant

    async def _record(self, principal: Principal, request_id: str, action: str,
                      detail: dict[str, Any]) -> None:
        await self._audit.record(AuditEvent(request_id=request_id, action=action, principal=principal,
                                            status="ok", detail=detail))

    async def export(self, principal: Principal, filters: ExportFilters, fmt: str,
                     request_id: str) -> AsyncIterator[bytes]:
        """Record the export, then return its byte stream (JSON Lines or CSV)."""
        check_format(fmt)
        since, until = as_utc(filters.since), as_utc(filters.until)
        if since is not None and until is not None and since >= until:
            raise InvalidInputError("since must be before until")
        query = EventQuery(self.tenant_for(principal, _text(filters.tenant, "tenant")), since=since,
                           until=until, subject=_text(filters.subject, "subject"),
                           document_id=filters.document_id, action=_text(filters.action, "action"))
        with store_errors():
            span = await self._store.seq_range(query)
        await self._record(principal, request_id, "audit.export",
                           {**filters.detail(), "format": fmt, "through_seq": span.through})
        return render(self._store.events(query, span), fmt)

    async def verify(self, principal: Principal, since: datetime | None) -> dict[str, Any]:
        """Verify the caller's tenant's chain."""
        tenant = self.tenant_for(principal)
        with store_errors():
            chain = await verify_tenant(self._store, tenant, self._signer.jwk, since=as_utc(since))
        return chain.as_dict()

    async def subject_report(self, principal: Principal, subject: str,
                             request_id: str) -> AsyncIterator[bytes]:
        """Record, then stream, the report on one subject."""
        tenant = self.tenant_for(principal)
        _text(subject, "subject")
        with store_errors():
            stream = await subject_report(self._store, tenant, subject)
        await self._record(principal, request_id, "audit.report", {"subject": subject})
        return stream

    async def document_report(self, principal: Principal, document_id: uuid.UUID,
                              request_id: str) -> AsyncIterator[bytes]:
        """Record, then stream, the report on one document."""
        tenant = self.tenant_for(principal)
        with store_errors():
            stream = await document_report(self._store, tenant, document_id)
        await self._record(principal, request_id, "audit.report", {"document_id": str(document_id)})
        return stream

    async def checkpoints(self, principal: Principal) -> dict[str, Any]:
        """The public key and every signed checkpoint of the caller's tenant."""
        tenant = self.tenant_for(principal)
        with store_errors():
            checkpoints = await self._store.checkpoints(tenant)
        return {"tenant": tenant, "public_key": self._signer.jwk,
                "checkpoints": [c.as_dict() for c in checkpoints]}

    async def checkpoint(self, principal: Principal) -> dict[str, Any]:
        """Sign the caller's tenant's chain head now."""
        with store_errors():
            checkpoint = await checkpoint_now(self._store, self._signer, self.tenant_for(principal))
        return checkpoint.as_dict()

"""Change one document's access: the document row and all its chunks, in one transaction.

No re-embedding and no cache: the next query's access predicate (and row-level
security) read the new columns. The change is audited with the access before and after.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from gateway.access.service import AccessAdministration
from gateway.db.access import access_column_values, chunk_column_values
from gateway.db.models import Chunk, Document
from gateway.db.policy_models import AccessPolicy
from gateway.errors import InvalidInputError, NotFoundError
from policies.model import AccessBlockError, DocumentAccess, parse_access
from policies.principal import Principal


@dataclass(frozen=True)
class DocumentAccessChange:
    """A document after its access changed, and how many chunks now carry the new access."""

    id: uuid.UUID
    external_id: str
    title: str
    version: int
    access: Mapping[str, Any]
    chunks: int
    updated_at: datetime


class DocumentAccessService(AccessAdministration):
    """`PUT /v1/documents/{id}/access`: administrators change a document's access block."""

    def parse(self, body: Any, tenant: str) -> DocumentAccess:
        """Validate an access block for a document of `tenant` (422 naming the field)."""
        try:
            access = parse_access(body, self.levels)
        except AccessBlockError as exc:
            raise InvalidInputError(str(exc), field=exc.field) from None
        if access.tenant not in (None, tenant):
            raise InvalidInputError("tenant: a document's access can only be set within your tenant",
                                    field="tenant")
        return access

    async def set_access(self, principal: Principal, document_id: uuid.UUID,
                         body: Any) -> DocumentAccessChange:
        """Replace the document's access (404 if it is not in the caller's tenant)."""
        tenant = principal.tenant
        access = self.parse(body, tenant)
        values = access_column_values(access, self.levels, tenant=tenant)
        async with self.writer(tenant) as session:
            before = (await session.execute(
                select(Document.access).where(Document.id == document_id).with_for_update()
            )).scalar_one_or_none()
            if before is None:
                raise NotFoundError("No such document.")
            if access.policy is not None:
                exists = (await session.execute(select(func.count()).select_from(AccessPolicy).where(
                    AccessPolicy.tenant == tenant, AccessPolicy.name == access.policy))).scalar_one()
                if not exists:
                    raise InvalidInputError(f"policy: no policy named {access.policy!r}", field="policy")
            row = (await session.execute(
                update(Document).where(Document.id == document_id)
                .values(**values, updated_at=func.now())
                .returning(Document.external_id, Document.title, Document.version, Document.updated_at)
            )).one()
            chunks = len((await session.execute(
                update(Chunk).where(Chunk.document_id == document_id)
                .values(**chunk_column_values(values)).returning(Chunk.id)
            )).all())
            if dict(before) != values["access"]:
                await self.audit_change(session, principal, "document.access", {
                    "document_id": str(document_id), "external_id": row.external_id,
                    "before": before, "after": values["access"], "chunks": chunks})
        return DocumentAccessChange(document_id, row.external_id, row.title, row.version,
                                    values["access"], chunks, row.updated_at)

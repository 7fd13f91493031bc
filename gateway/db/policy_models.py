"""Named access policies and their version history (SPEC §6).

`access_policies` holds each policy's current version with its rule in the same
columns as documents and chunks, so the access predicate checks a document's named
policy with the same clause it uses for the document's own rule. Every change appends
a row to `access_policy_versions`, so old versions stay readable after edits and deletes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, Integer, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base
from gateway.db.models import AccessColumns, Document


class AccessPolicy(AccessColumns, Base):
    """The current version of a named policy, unique by (tenant, name)."""

    __tablename__ = "access_policies"
    __table_args__ = (UniqueConstraint("tenant", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    name: Mapped[str] = mapped_column(Text, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    body: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    created_by: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_by: Mapped[str] = mapped_column(Text, nullable=False)


class AccessPolicyVersion(Base):
    """One version of a named policy as it was written; a delete is a version without a body."""

    __tablename__ = "access_policy_versions"

    tenant: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(Text, nullable=False)
    body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    changed_by: Mapped[str] = mapped_column(Text, nullable=False)


# Finding the documents that still reference a policy (a delete is refused while any do).
Index("ix_documents_tenant_policy_name", Document.tenant, Document.policy_name,
      postgresql_where=text("policy_name IS NOT NULL"))

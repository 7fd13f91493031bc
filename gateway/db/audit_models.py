"""Audit tables: hash-chained events per tenant, their sources, and signed checkpoints.

Append-only: triggers, grants and row-level security live in the migration
(`2026_11_26_0003_audit_trail.py`); these models describe the columns for queries and
for the schema-drift test.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class AuditChainRow(Base):
    """One row per tenant whose chain has started: lets operator tools list the chains."""

    __tablename__ = "audit_chains"

    tenant: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class AuditEventRow(Base):
    """Who did what with which content, and how it ended; link `seq` of its tenant's chain."""

    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("tenant", "seq"),
        CheckConstraint("seq > 0", name="seq_positive"),
        CheckConstraint(
            "hash ~ '^[0-9a-f]{64}$' AND prev_hash ~ '^[0-9a-f]{64}$'", name="hashes_hex"
        ),
        Index("ix_audit_events_tenant_ts", "tenant", "ts"),
        Index("ix_audit_events_tenant_subject_seq", "tenant", "subject", "seq"),
        Index("ix_audit_events_hash", "hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant: Mapped[str] = mapped_column(Text, nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    request_id: Mapped[str] = mapped_column(Text, nullable=False)
    action: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    issuer: Mapped[str] = mapped_column(Text, nullable=False)
    groups: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    roles: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    clearance: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    query: Mapped[str | None] = mapped_column(Text)
    query_sha256: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    prev_hash: Mapped[str] = mapped_column(Text, nullable=False)
    hash: Mapped[str] = mapped_column(Text, nullable=False)


class AuditSourceRow(Base):
    """One retrieved chunk of an audited request, with the grant that admitted it."""

    __tablename__ = "audit_sources"
    __table_args__ = (Index("ix_audit_sources_tenant_document_id", "tenant", "document_id"),)

    event_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("audit_events.id"), primary_key=True
    )
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(Text, nullable=False)
    document_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    external_id: Mapped[str] = mapped_column(Text, nullable=False)
    document_version: Mapped[int] = mapped_column(Integer, nullable=False)
    chunk_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    content_sha256: Mapped[str] = mapped_column(Text, nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    granted_by: Mapped[str | None] = mapped_column(Text)
    policy_name: Mapped[str | None] = mapped_column(Text)
    policy_version: Mapped[int | None] = mapped_column(Integer)


class AuditCheckpointRow(Base):
    """A signed statement "the chain of `tenant` had head `hash` at `seq`" (periodic, manual, prune)."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (
        CheckConstraint("kind IN ('periodic', 'manual', 'prune')", name="kind"),
    )

    tenant: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, primary_key=True)
    hash: Mapped[str] = mapped_column(Text, nullable=False)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    key_id: Mapped[str] = mapped_column(Text, nullable=False)
    signature: Mapped[str] = mapped_column(Text, nullable=False)

"""The schema as SQLAlchemy models. Migrations create it; a test checks they agree.

Access attributes live on documents (as synced from the source system) and are
denormalised onto every chunk so the access predicate is one indexed WHERE clause
beside the vector ORDER BY (SPEC §4).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base

EMBEDDING_DIMENSION = 384


class AccessColumns:
    """The access attributes shared by documents, chunks and named policies."""

    tenant: Mapped[str] = mapped_column(Text, nullable=False)
    allow: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    deny: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    classification: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    conditions: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Document(AccessColumns, Base):
    """One source document, its current version and its own access block."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("tenant", "external_id"),)

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    external_id: Mapped[str] = mapped_column(Text, nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    source_uri: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(Text, nullable=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    body: Mapped[str] = mapped_column(Text, nullable=False)
    content_sha256: Mapped[str] = mapped_column(Text, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    access: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    policy_name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class Chunk(AccessColumns, Base):
    """A passage of a document with its embedding and its document's access, copied."""

    __tablename__ = "chunks"
    __table_args__ = (
        Index(
            "ix_chunks_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            # ef_construction 128 (migration 0004): at 64, recall@10 stopped at 0.975 on 1M
            # chunks whatever ef_search was (docs/benchmarks.md).
            postgresql_with={"m": 16, "ef_construction": 128},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        # Serves the row-level-security scan term of migration 0004 (see gateway.retrieval).
        Index("ix_chunks_access_scan", func.array_append(text("allow"), text("'*'::text")),
              postgresql_using="gin"),
        Index("ix_chunks_tenant_classification", "tenant", "classification"),
        Index("ix_chunks_document_id", "document_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    document_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
    )
    document_version: Mapped[int] = mapped_column(Integer, nullable=False)
    ordinal: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    content_sha256: Mapped[str] = mapped_column(Text, nullable=False)
    char_start: Mapped[int] = mapped_column(Integer, nullable=False)
    char_end: Mapped[int] = mapped_column(Integer, nullable=False)
    heading_path: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default="{}"
    )
    policy_name: Mapped[str | None] = mapped_column(Text)
    embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIMENSION), nullable=False)

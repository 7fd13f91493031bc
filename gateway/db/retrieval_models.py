"""What the retrieval planner reads besides `chunks`, kept by triggers on `chunks`.

- `chunk_access_counts` (migration 0004): per-principal chunk counts that size a
  permitted set cheaply, as signed deltas folded periodically.
- `chunk_postings` (migration 0005): each chunk's vector under each of its allow
  entries, the candidates an exact search scores.
- `principal_indexes` (migration 0006): which principal strings have an HNSW index of
  their own over their postings (written by `gateway index create-principal`).
The application never writes the first two itself; the runtime role may only read
`chunk_postings` (migration 0007).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    SmallInteger,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base
from gateway.db.models import EMBEDDING_DIMENSION


class ChunkAccessCount(Base):
    """A (signed) number of chunks of `tenant` at `classification` whose allow or deny names `principal`."""

    __tablename__ = "chunk_access_counts"
    __table_args__ = (
        CheckConstraint("effect IN ('allow', 'deny')", name="effect"),
        Index("ix_chunk_access_counts_lookup", "tenant", "principal", "classification"),
        Index("ix_chunk_access_counts_pending", "tenant", postgresql_where=text("NOT compacted")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    tenant: Mapped[str] = mapped_column(Text, nullable=False)
    effect: Mapped[str] = mapped_column(Text, nullable=False)
    principal: Mapped[str] = mapped_column(Text, nullable=False)
    classification: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    chunks: Mapped[int] = mapped_column(BigInteger, nullable=False)
    compacted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())


class ChunkPosting(Base):
    """A chunk's vector under one of its allow entries (`key`: tenant, chr(31), the entry).

    Candidates for exact search, grouped by key (migration 0005); kept by a trigger on
    `chunks` with its owner's rights, never written by the application (migration 0007).
    """

    __tablename__ = "chunk_postings"
    __table_args__ = (Index("ix_chunk_postings_chunk_id", "chunk_id"),)

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    chunk_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant: Mapped[str] = mapped_column(Text, nullable=False)
    classification: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIMENSION), nullable=False)


class PrincipalIndex(Base):
    """A partial HNSW index on the postings of one principal string of `tenant` (migration 0006)."""

    __tablename__ = "principal_indexes"

    tenant: Mapped[str] = mapped_column(Text, primary_key=True)
    principal: Mapped[str] = mapped_column(Text, primary_key=True)
    index_name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                 server_default=func.now())

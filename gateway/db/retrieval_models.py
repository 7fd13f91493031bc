"""Per-principal chunk counts that let the retrieval planner size a permitted set cheaply.

Maintained by statement-level triggers on `chunks` (migration 0004) as signed deltas
that are folded periodically; the application never writes this table itself.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Identity, Index, SmallInteger, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


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

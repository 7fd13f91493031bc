"""The one retrieval statement: access predicate AND vector order, LIMIT k, inside SQL.

The predicate is a required keyword argument: an unfiltered search cannot be written.
Two plans exist for the same statement shape:
- `ann`: HNSW with pgvector's iterative index scan (`relaxed_order`, re-sorted by the
  materialised CTE), which keeps scanning until k rows pass the filter or
  `max_scan_tuples` is reached;
- `exact`: the vector ORDER BY is made non-indexable, so PostgreSQL reaches permitted
  rows through the access-column indexes and computes distances only for them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import Chunk, Document
from gateway.db.policy_models import AccessPolicy
from gateway.domain import Principal, RetrievedChunk
from gateway.metrics import Metrics
from gateway.settings import RetrievalSettings

_PLAN_SETTINGS = ("hnsw.iterative_scan", "hnsw.ef_search", "hnsw.max_scan_tuples")


def granted_by(principal: Principal, allow: Sequence[str]) -> str | None:
    """The most specific of the caller's principal strings that the chunk's allow list names."""
    allowed = set(allow)
    return next((p for p in principal.principal_strings if p in allowed), None)


class ChunkRepository:
    """Runs filtered vector searches in the caller's (principal-bound) transaction."""

    def __init__(self, settings: RetrievalSettings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics

    async def search(
        self,
        session: AsyncSession,
        vector: Sequence[float],
        *,
        principal: Principal,
        predicate: ColumnElement[bool],
        limit: int,
        exact: bool,
    ) -> list[RetrievedChunk]:
        """Return up to `limit` permitted chunks nearest to `vector`, best first."""
        plan = "exact" if exact else "ann"
        if not exact:
            await self._tune_index_scan(session, limit)
        started = time.perf_counter()
        rows = (await session.execute(self._statement(vector, predicate, limit, exact))).all()
        self._metrics.retrieval_latency.labels(plan).observe(time.perf_counter() - started)
        return [self._chunk(row, principal) for row in rows]

    async def count_permitted(self, session: AsyncSession, *, predicate: ColumnElement[bool]) -> int:
        """How many chunks the predicate admits (used when ANN came back short)."""
        return int((await session.execute(select(func.count()).where(predicate))).scalar_one())

    async def _tune_index_scan(self, session: AsyncSession, limit: int) -> None:
        values = ("relaxed_order", str(max(self._settings.ef_search, limit)),
                  str(self._settings.max_scan_tuples))
        for name, value in zip(_PLAN_SETTINGS, values, strict=True):
            await session.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})

    @staticmethod
    def _statement(vector: Sequence[float], predicate: ColumnElement[bool], limit: int,
                   exact: bool) -> Select[Any]:
        distance = Chunk.embedding.cosine_distance(list(vector))
        order = distance + 0 if exact else distance  # `+ 0` hides the expression from HNSW
        hits = (
            select(
                Chunk.id, Chunk.document_id, Chunk.document_version, Chunk.text,
                Chunk.char_start, Chunk.char_end, Chunk.heading_path, Chunk.content_sha256,
                Chunk.allow, Chunk.policy_name, Chunk.tenant, distance.label("distance"),
            )
            .where(predicate)
            .order_by(order)
            .limit(limit)
            .cte("hits")
            .prefix_with("MATERIALIZED")
        )
        return (
            select(hits, Document.external_id, Document.title, Document.source_uri,
                   AccessPolicy.version.label("policy_version"))
            .join(Document, Document.id == hits.c.document_id)
            .outerjoin(AccessPolicy, and_(AccessPolicy.tenant == hits.c.tenant,
                                          AccessPolicy.name == hits.c.policy_name))
            .order_by(hits.c.distance, hits.c.id)
        )

    @staticmethod
    def _chunk(row: Any, principal: Principal) -> RetrievedChunk:
        return RetrievedChunk(
            chunk_id=row.id, document_id=row.document_id, external_id=row.external_id,
            document_version=row.document_version, title=row.title, text=row.text,
            score=round(1.0 - float(row.distance), 6), source_uri=row.source_uri,
            char_start=row.char_start, char_end=row.char_end,
            heading_path=tuple(row.heading_path), content_sha256=row.content_sha256,
            granted_by=granted_by(principal, row.allow), policy_name=row.policy_name,
            policy_version=row.policy_version,
        )

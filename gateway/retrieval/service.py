"""Retrieval that is complete at every selectivity: ANN first, exact when it comes back short.

(The cardinality-based planner that picks exact up front for small permitted sets lives
in `gateway.retrieval.planner` once measured; this service guarantees completeness.)
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.domain import Principal, Retrieval
from gateway.retrieval.repository import ChunkRepository


class Retriever:
    """Returns min(k, permitted) chunks: `complete` is False only when fewer than k exist."""

    def __init__(self, repository: ChunkRepository) -> None:
        self._repository = repository

    async def retrieve(
        self,
        session: AsyncSession,
        vector: Sequence[float],
        *,
        principal: Principal,
        predicate: ColumnElement[bool],
        k: int,
    ) -> Retrieval:
        """Search with the index; if short, count permitted rows and fall back to exact."""
        chunks = await self._repository.search(
            session, vector, principal=principal, predicate=predicate, limit=k, exact=False
        )
        if len(chunks) == k:
            return Retrieval(tuple(chunks), complete=True, plan="ann", candidates=None)
        permitted = await self._repository.count_permitted(session, predicate=predicate)
        if permitted <= len(chunks):
            return Retrieval(tuple(chunks), complete=False, plan="ann", candidates=permitted)
        exact = await self._repository.search(
            session, vector, principal=principal, predicate=predicate, limit=k, exact=True
        )
        return Retrieval(tuple(exact), complete=len(exact) == k, plan="ann+exact",
                         candidates=permitted)

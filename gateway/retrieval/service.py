"""Retrieval that is complete at every selectivity, planned by the size of the permitted set.

The planner (`gateway.retrieval.planner`) picks exact or HNSW search; this service keeps
the guarantee whatever the estimate said: results = min(k, permitted). An HNSW scan that
comes back with fewer than k rows (the permitted rows lie far from the query, or the
scan budget ran out) is redone exactly, which returns every permitted row up to k.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.domain import Principal, Retrieval
from gateway.retrieval.planner import RetrievalPlanner
from gateway.retrieval.plans import AnnPlan, ExactPlan
from gateway.retrieval.repository import ChunkRepository


class Retriever:
    """Returns min(k, permitted) chunks: `complete` is False only when fewer than k exist."""

    def __init__(self, repository: ChunkRepository, planner: RetrievalPlanner) -> None:
        self._repository = repository
        self._planner = planner

    async def retrieve(
        self,
        session: AsyncSession,
        vector: Sequence[float],
        *,
        principal: Principal,
        predicate: ColumnElement[bool],
        k: int,
    ) -> Retrieval:
        """Estimate, plan, search (exactly again if HNSW came back short); report what it took."""
        estimate = await self._planner.estimate(session, principal)
        plan = self._planner.choose(estimate, k)
        found = await self._repository.search(
            session, vector, principal=principal, predicate=predicate, limit=k, plan=plan
        )
        steps, examined = plan.name, found.examined
        if isinstance(plan, AnnPlan) and len(found.chunks) < k:
            found = await self._repository.search(
                session, vector, principal=principal, predicate=predicate, limit=k, plan=ExactPlan()
            )
            steps, examined = "ann+exact", examined + found.examined
        return Retrieval(tuple(found.chunks), complete=len(found.chunks) == k, plan=steps,
                         candidates=examined, estimate=estimate.permitted)

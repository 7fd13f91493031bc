"""Retrieval that is complete at every selectivity, planned by the size of the permitted set.

The planner (`gateway.retrieval.planner`) picks exact or HNSW search; this service keeps
the guarantee whatever the estimate said: results = min(k, permitted). A search that
comes back with fewer than k rows is redone exactly over every posting, which returns
every permitted row up to k: an HNSW scan (the permitted rows lie far from the query, or
the scan budget ran out) or an exact search bounded to its nearest postings (too many of
them rejected on `chunks`: deny lists, validity, conditions, policies).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.domain import Principal, Retrieval
from gateway.retrieval.planner import RetrievalPlanner
from gateway.retrieval.plans import ExactPlan
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
        plan = self._planner.choose(estimate, k, len(principal.principal_strings))
        found = await self._repository.search(
            session, vector, principal=principal, predicate=predicate, limit=k, plan=plan
        )
        steps, examined = plan.name, found.examined
        if len(found.chunks) < k and plan != ExactPlan():
            found = await self._repository.search(
                session, vector, principal=principal, predicate=predicate, limit=k, plan=ExactPlan()
            )
            steps, examined = f"{plan.name}+exact", examined + found.examined
        return Retrieval(tuple(found.chunks), complete=len(found.chunks) == k, plan=steps,
                         candidates=examined, estimate=estimate.permitted)

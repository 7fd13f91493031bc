"""Retrieval that is complete at every selectivity, planned by the size of the permitted set.

The service binds the caller's transaction (row-level security) and searches in it.
The planner (`gateway.retrieval.planner`) picks exact or HNSW search; this service keeps
the guarantee whatever the estimate said: results = min(k, permitted). A search that
comes back with fewer than k rows is redone exactly over every posting, which returns
every permitted row up to k: an HNSW scan (the permitted rows lie far from the query, or
the scan budget ran out) or an exact search bounded to its nearest postings (too many of
them rejected on `chunks`: deny lists, validity, conditions, policies).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.db.access import bind_principal
from gateway.db.engine import Executor
from gateway.domain import Principal, Retrieval
from gateway.retrieval.planner import RetrievalPlanner
from gateway.retrieval.plans import ExactPlan
from gateway.retrieval.repository import ChunkRepository, search_settings


class Retriever:
    """Returns min(k, permitted) chunks: `complete` is False only when fewer than k exist."""

    def __init__(self, repository: ChunkRepository, planner: RetrievalPlanner) -> None:
        self._repository = repository
        self._planner = planner

    async def retrieve(
        self,
        executor: Executor,
        vector: Sequence[float],
        *,
        principal: Principal,
        now: datetime,
        k: int,
    ) -> Retrieval:
        """Bind the transaction to `principal`, plan, search (exactly again if short); report.

        With the caller's estimate cached (the usual case) the plan is chosen first and its
        search settings are sent with the binding: one round trip instead of two.
        """
        levels = self._planner.levels
        keys = len(principal.principal_strings)
        estimate = self._planner.cached(principal)
        if estimate is not None:
            plan = self._planner.choose(estimate, k, keys)
            await bind_principal(executor, principal, levels, now, search_settings(plan, k))
            settings_bound = True
        else:  # the lookup reads chunk_access_counts under row-level security: bind first
            await bind_principal(executor, principal, levels, now)
            estimate = await self._planner.estimate(executor, principal)
            plan = self._planner.choose(estimate, k, keys)
            settings_bound = False
        found = await self._repository.search(
            executor, vector, principal=principal, now=now, levels=levels, limit=k, plan=plan,
            settings_bound=settings_bound,
        )
        steps, examined = plan.name, found.examined
        if len(found.chunks) < k and plan != ExactPlan():
            settings_bound = search_settings(ExactPlan(), k) == search_settings(plan, k)
            found = await self._repository.search(
                executor, vector, principal=principal, now=now, levels=levels, limit=k, plan=ExactPlan(),
                settings_bound=settings_bound,
            )
            steps, examined = f"{plan.name}+exact", examined + found.examined
        return Retrieval(tuple(found.chunks), complete=len(found.chunks) == k, plan=steps,
                         candidates=examined, estimate=estimate.permitted)

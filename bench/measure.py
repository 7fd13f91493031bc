"""Run one query through one mode, exactly as production runs retrieval, and time it.

Every mode uses the same path: the runtime role (row-level security on), a transaction
bound to the principal, the repository's statement with the access predicate.
They differ only in the plan:
- `hnsw`: plain HNSW post-filter (iterative scan off, pgvector's ef_search 40);
- `iterative`: pgvector iterative scan with its defaults (relaxed order, ef_search 40,
  max_scan_tuples 20000);
- `exact`: exact k-NN over the permitted rows;
- `planner`: the gateway's Retriever (estimate, plan, fallbacks).
Every mode binds the principal with its plan's index settings in one statement, as the
Retriever does once it knows the principal's estimate. Two times per query: `total`,
around the whole retrieval transaction from the client (begin, bind, search, commit:
what production pays), and `db`, the sum of the statements'
round trips (sent to answer received) of the retrieval itself, the binding statement
left out: the estimate (when not cached), the settings (when not bound) and the
search(es) for the planner, the search for the baselines. The searches run on the
driver connection (`ChunkRepository.fetch`), the other statements through SQLAlchemy;
`StatementClock` times both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from psycopg import AsyncConnection
from sqlalchemy import TextClause, event
from sqlalchemy.engine import ExecutionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.access import BINDING_SQL, bind_principal
from gateway.metrics import Metrics
from gateway.retrieval.planner import RetrievalPlanner
from gateway.retrieval.plans import AnnPlan, ExactPlan, Plan
from gateway.retrieval.repository import ChunkRepository, search_settings
from gateway.retrieval.service import Retriever
from gateway.settings import RetrievalSettings
from policies.model import ClassificationLevels
from policies.principal import Principal

BASELINES: dict[str, Plan] = {
    "hnsw": AnnPlan(ef_search=40, max_scan_tuples=20_000, iterative="off"),
    "iterative": AnnPlan(ef_search=40, max_scan_tuples=20_000, iterative="relaxed_order"),
    "exact": ExactPlan(),
}
MODES = ("hnsw", "iterative", "exact", "planner")


@dataclass
class Outcome:
    """What one mode did for one cell: per query ids, seconds, plan and rows examined."""

    ids: list[np.ndarray] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    db_seconds: list[float] = field(default_factory=list)
    plans: list[str] = field(default_factory=list)
    examined: list[int] = field(default_factory=list)


class Runner:
    """Runs queries for a principal through a mode."""

    def __init__(self, engine: AsyncEngine, settings: RetrievalSettings,
                 levels: ClassificationLevels) -> None:
        self.engine = engine
        self.levels = levels
        self.clock = StatementClock(engine)
        self.repository = ClockedRepository(Metrics(), self.clock)
        self.planner = RetrievalPlanner(settings, levels)
        self.retriever = Retriever(self.repository, self.planner)

    async def run(self, mode: str, principal: Principal, queries: np.ndarray, k: int) -> Outcome:
        """Run every query once, in order, one transaction each."""
        outcome = Outcome()
        for vector in queries:
            await self._measure(outcome, mode, principal, vector, k)
        return outcome

    async def run_interleaved(self, modes: Sequence[str], principal: Principal, queries: np.ndarray,
                              k: int) -> dict[str, Outcome]:
        """Every query through each of `modes`, interleaved query by query.

        The order of the modes rotates from one query to the next, so a slow spell of the
        machine, or pages one mode brings in for a query, fall on every mode alike.
        """
        outcomes = {mode: Outcome() for mode in modes}
        for i, vector in enumerate(queries):
            turn = i % len(modes)
            for mode in [*modes[turn:], *modes[:turn]]:
                await self._measure(outcomes[mode], mode, principal, vector, k)
        return outcomes

    async def _measure(self, outcome: Outcome, mode: str, principal: Principal, vector: np.ndarray,
                       k: int) -> None:
        started = time.perf_counter()
        ids, plan, examined = await self.query(mode, principal, vector.tolist(), k)
        outcome.seconds.append(time.perf_counter() - started)
        outcome.db_seconds.append(self.clock.total)
        outcome.ids.append(np.asarray(ids, dtype=np.int64))
        outcome.plans.append(plan)
        outcome.examined.append(examined)

    async def query(self, mode: str, principal: Principal, vector: Sequence[float],
                    k: int) -> tuple[list[int], str, int]:
        """One retrieval transaction; returns chunk ids, plan label, rows examined."""
        async with self.engine.connect() as connection, connection.begin():
            now = datetime.now(UTC)
            if mode == "planner":
                with self.clock.running():
                    retrieval = await self.retriever.retrieve(
                        connection, vector, principal=principal, now=now, k=k)
                return ([c.chunk_id for c in retrieval.chunks], retrieval.plan,
                        retrieval.candidates or 0)
            plan = BASELINES[mode]
            await bind_principal(connection, principal, self.levels, now, search_settings(plan, k))
            with self.clock.running():
                found = await self.repository.search(connection, vector, principal=principal, now=now,
                                                     levels=self.levels, limit=k, plan=plan,
                                                     settings_bound=True)
            return [c.chunk_id for c in found.chunks], plan.name, found.examined


class StatementClock:
    """Sums the time between sending each statement and receiving its result, while running.

    The principal's binding statement is not counted, in any mode.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.total = 0.0
        self._on = False
        self._sent = 0.0
        self._binding = False
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    @contextmanager
    def running(self) -> Iterator[None]:
        """Count the statements executed inside this block (and only those)."""
        self.total, self._on = 0.0, True
        try:
            yield
        finally:
            self._on = False

    def count(self, seconds: float) -> None:
        """Add a statement timed elsewhere (a search on the driver connection), while running."""
        if self._on:
            self.total += seconds

    def _before(self, conn: object, cursor: object, statement: str, parameters: object,
                context: ExecutionContext, executemany: bool) -> None:
        self._sent = time.perf_counter()
        self._binding = is_binding(context)

    def _after(self, *args: object) -> None:
        if self._on and not self._binding:
            self.total += time.perf_counter() - self._sent


class ClockedRepository(ChunkRepository):
    """The production repository, each search's round trip added to a `StatementClock`."""

    def __init__(self, metrics: Metrics, clock: StatementClock) -> None:
        super().__init__(metrics)
        self._clock = clock

    async def fetch(self, driver: AsyncConnection[Any], sql: str, parameters: dict[str, Any]) -> list[Any]:
        """`ChunkRepository.fetch`, timed from sending the statement to its last row."""
        started = time.perf_counter()
        try:
            return await super().fetch(driver, sql, parameters)
        finally:
            self._clock.count(time.perf_counter() - started)


def is_binding(context: ExecutionContext) -> bool:
    """Whether the statement being run binds the principal (`gateway.db.access`)."""
    compiled = getattr(context, "compiled", None)
    statement = getattr(compiled, "statement", None)
    return isinstance(statement, TextClause) and statement.text.startswith(BINDING_SQL)


def recall(found: Sequence[np.ndarray], truth: Sequence[np.ndarray], k: int) -> float:
    """Mean recall@k against the exact answer; an empty truth is matched by an empty result."""
    scores = []
    for got, want in zip(found, truth, strict=True):
        if want.size == 0:
            scores.append(1.0 if got.size == 0 else 0.0)
        else:
            scores.append(np.intersect1d(got[:k], want).size / min(k, want.size))
    return float(np.mean(scores))


def complete_share(found: Sequence[np.ndarray], permitted: int, k: int) -> float:
    """Share of queries that returned min(k, permitted) rows."""
    return float(np.mean([got.size == min(k, permitted) for got in found]))


def percentiles(seconds: Sequence[float]) -> tuple[float, float, float]:
    """p50, p95, p99 in milliseconds."""
    p50, p95, p99 = np.percentile(np.asarray(seconds) * 1000.0, [50, 95, 99])
    return float(p50), float(p95), float(p99)

"""Retrieval test helpers: a synthetic corpus in a test database, and the reference answer.

The corpus is the benchmark's (bench/corpus.py), loaded the benchmark's way (COPY as the
superuser, migrations' triggers firing). Expected permitted counts come from the
reference evaluator (`policies.evaluate.decide`) over the stored access blocks, so they
are independent of the SQL under test.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg

from bench.corpus_load import load
from gateway.db.access import bind_principal
from gateway.db.embedded import DatabaseUrls, EmbeddedDatabase
from gateway.db.engine import create_engine, session_factory
from gateway.domain import Retrieval
from gateway.metrics import Metrics
from gateway.retrieval.planner import RetrievalPlanner
from gateway.retrieval.repository import ChunkRepository
from gateway.retrieval.service import Retriever
from gateway.settings import DatabaseSettings, RetrievalSettings
from policies.evaluate import decide
from policies.model import ClassificationLevels, parse_access
from policies.principal import Principal
from tests.support.database import clone_database, drop_database

LEVELS = ClassificationLevels()


def load_corpus(superuser_url: str, chunks: int, seed: int = 7) -> None:
    """Fill the database with the benchmark corpus of `chunks` chunks."""
    load(superuser_url, chunks, seed, log=False)


def corpus_database(pg_server: EmbeddedDatabase, chunks: int) -> Iterator[DatabaseUrls]:
    """A clone of the migrated template holding the corpus, dropped afterwards (for fixtures)."""
    urls = clone_database(pg_server.superuser_url, "gateway_template")
    load_corpus(urls.superuser, chunks)
    yield urls
    drop_database(pg_server.superuser_url, urls)


def permitted_chunk_ids(superuser_url: str, principal: Principal, now: datetime) -> set[int]:
    """Every chunk id the reference evaluator admits for `principal` at `now`."""
    with psycopg.connect(superuser_url) as conn:
        documents = conn.execute("SELECT id, tenant, access FROM documents").fetchall()
        admitted = [doc_id for doc_id, tenant, access in documents
                    if decide(principal, parse_access(access, LEVELS), now=now, levels=LEVELS,
                              tenant=tenant).allowed]
        rows = conn.execute("SELECT id FROM chunks WHERE document_id = ANY(%s)", (admitted,)).fetchall()
    return {row[0] for row in rows}


class Search:
    """Runs the production retrieval path (runtime role, RLS, predicate) against one database."""

    def __init__(self, runtime_url: str, settings: RetrievalSettings | None = None) -> None:
        self.engine = create_engine(runtime_url, DatabaseSettings())
        self.sessions = session_factory(self.engine)
        self.repository = ChunkRepository(Metrics())
        self.planner = RetrievalPlanner(settings or RetrievalSettings(), LEVELS)
        self.retriever = Retriever(self.repository, self.planner)

    @asynccontextmanager
    async def bound(self, principal: Principal, now: datetime) -> Any:
        """A session in a transaction bound to `principal`."""
        async with self.sessions() as session, session.begin():
            await bind_principal(session, principal, LEVELS, now)
            yield session

    async def retrieve(self, principal: Principal, vector: Sequence[float], k: int,
                       now: datetime) -> Retrieval:
        """One retrieval as the pipeline runs it (the retriever binds the transaction)."""
        async with self.sessions() as session, session.begin():
            return await self.retriever.retrieve(session, vector, principal=principal, now=now, k=k)

    async def close(self) -> None:
        """Dispose of the engine."""
        await self.engine.dispose()


def chunk_ids(retrieval: Retrieval) -> list[int]:
    """The ids of a retrieval's chunks, in rank order."""
    return [c.chunk_id for c in retrieval.chunks]

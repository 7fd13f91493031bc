"""The audit event of a search records how retrieval was done: plan, rows examined, estimate."""

import psycopg
import pytest
from sqlalchemy import event

from bench.corpus import Geometry
from gateway.audit.service import AuditLog
from gateway.db.engine import create_engine, session_factory
from gateway.generation.extractive import ExtractiveGenerator
from gateway.metrics import Metrics
from gateway.pipeline import QueryPipeline, make_question
from gateway.retrieval.planner import RetrievalPlanner
from gateway.retrieval.repository import ChunkRepository
from gateway.retrieval.service import Retriever
from policies.principal import Principal
from tests.support.retrieval import LEVELS, load_corpus

pytestmark = pytest.mark.integration


class FixedEncoder:
    """Every query embeds to the same vector (the embedder is not under test)."""

    dimension = 384

    def __init__(self, vector):
        self.vector = [float(x) for x in vector]

    def embed_query(self, text):
        return self.vector

    def embed_documents(self, texts):
        return [self.vector for _ in texts]


def make_pipeline(settings, engine):
    encoder = FixedEncoder(Geometry(7).queries(1, seed=5)[0])
    sessions = session_factory(engine)
    metrics = Metrics()
    return QueryPipeline(
        settings=settings, engine=engine, encoder=encoder,
        retriever=Retriever(ChunkRepository(metrics), RetrievalPlanner(settings.retrieval, LEVELS)),
        audit=AuditLog(sessions, settings.audit, metrics), generator=ExtractiveGenerator(encoder),
        metrics=metrics,
    )


def reader(groups):
    return Principal(subject="reader", tenant="acme", groups=groups, clearance="restricted",
                     attributes={"region": ("EU",)})


@pytest.mark.parametrize(("groups", "plan"), [(("sel-1pct",), "exact"), (("staff",), "ann")])
async def test_search_audit_detail_names_the_plan_and_the_rows_examined(settings, db_urls, groups, plan):
    load_corpus(db_urls.superuser, 2000)
    engine = create_engine(db_urls.runtime, settings.database)
    pipeline = make_pipeline(settings, engine)
    principal = reader(groups)
    try:
        retrieved = await pipeline.retrieve(principal, make_question("q", 10, "req-1", "search", settings))
    finally:
        await engine.dispose()
    with psycopg.connect(db_urls.superuser) as conn:
        (detail,) = conn.execute("SELECT detail FROM audit_events WHERE id = %s",
                                 (retrieved.audit_id,)).fetchone()
    assert detail["plan"] == plan == retrieved.retrieval.plan
    assert detail["complete"] is True
    assert 10 <= detail["candidates"] < 2000
    assert detail["estimate"] == retrieved.retrieval.estimate > 0


async def test_retrieval_and_its_audit_event_share_one_pooled_connection(settings, db_urls):
    load_corpus(db_urls.superuser, 2000)
    engine = create_engine(db_urls.runtime, settings.database)
    pipeline = make_pipeline(settings, engine)
    checkouts = []
    event.listen(engine.sync_engine, "checkout", lambda *args: checkouts.append(args[0]))
    try:
        for i in range(3):
            retrieved = await pipeline.retrieve(reader(("sel-1pct",)),
                                                make_question("q", 10, f"req-{i}", "search", settings))
    finally:
        await engine.dispose()
    assert len(checkouts) == 3
    with psycopg.connect(db_urls.superuser) as conn:
        (sources,) = conn.execute("SELECT count(*) FROM audit_sources WHERE event_id = %s",
                                  (retrieved.audit_id,)).fetchone()
    assert sources == len(retrieved.retrieval.chunks) == 10

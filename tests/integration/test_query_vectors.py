"""Query vectors travel in pgvector's binary format and arrive exactly; long statements are cached."""

from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from pgvector import Vector
from psycopg import _queries
from psycopg.adapt import PyFormat
from psycopg.pq import Format
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect

from bench.corpus import Geometry
from gateway.db.access import bind_principal
from gateway.db.engine import create_engine, session_factory
from gateway.db.vectors import BinaryVector
from gateway.metrics import Metrics
from gateway.retrieval.plans import AnnPlan, ExactPlan, KeyedPlan
from gateway.retrieval.repository import ChunkRepository, search_statement
from policies.principal import Principal
from tests.support.retrieval import LEVELS, load_corpus

pytestmark = pytest.mark.integration

READER = Principal(subject="reader", tenant="acme", groups=("sel-1pct",), clearance="restricted",
                   attributes={"region": ("EU",)})


async def test_runtime_connections_send_vectors_in_binary(settings, db_urls):
    engine = create_engine(db_urls.runtime, settings.database)
    try:
        async with engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            dumper = raw.adapters.get_dumper(Vector, PyFormat.AUTO)
            (oid,) = (await connection.exec_driver_sql("SELECT 'vector'::regtype::oid")).one()
    finally:
        await engine.dispose()
    assert dumper.format == Format.BINARY
    assert dumper.oid == oid


async def test_search_scores_equal_the_servers_distances_to_the_text_literal(settings, db_urls):
    load_corpus(db_urls.superuser, 2000)
    vector = Geometry(7).queries(1, seed=11)[0].astype(np.float32)
    engine = create_engine(db_urls.runtime, settings.database)
    now = datetime.now(UTC)
    try:
        async with session_factory(engine)() as session, session.begin():
            await bind_principal(session, READER, LEVELS, now)
            found = await ChunkRepository(Metrics()).search(
                session, vector.tolist(), principal=READER, now=now, levels=LEVELS, limit=10,
                plan=ExactPlan())
    finally:
        await engine.dispose()
    literal = "[" + ",".join(repr(float(x)) for x in vector) + "]"
    with psycopg.connect(db_urls.superuser) as conn:
        expected = dict(conn.execute(
            "SELECT id, round((1 - (embedding <=> %s::vector))::numeric, 6) FROM chunks WHERE id = ANY(%s)",
            (literal, [c.chunk_id for c in found.chunks])).fetchall())
    assert len(found.chunks) == 10
    assert {c.chunk_id: c.score for c in found.chunks} == {k: float(v) for k, v in expected.items()}


def test_a_query_vector_of_the_wrong_dimension_is_refused():
    process = BinaryVector(384).bind_processor(psycopg_dialect.dialect())
    assert process([0.5] * 384).to_numpy().dtype == np.float32
    with pytest.raises(ValueError, match="384 dimensions"):
        process([0.5] * 383)


@pytest.mark.parametrize("plan", [ExactPlan(), ExactPlan(depth=40), AnnPlan(ef_search=64, max_scan_tuples=1000),
                                  KeyedPlan(("group:a", "group:b"), ef_search=64, max_scan_tuples=1000,
                                            depth=20, rest_depth=40)])
def test_psycopg_caches_the_conversion_of_every_search_statement(plan):
    wide = Principal(subject="reader", tenant="acme", groups=("a", "b"),
                     attributes={"region": ("EU",), "dept": ("R&D",), "site": ("X",)})
    sql = str(search_statement(plan, wide).compile(dialect=psycopg_dialect.dialect()))
    assert len(sql) > 4096  # longer than psycopg's own limit...
    assert len(sql) <= _queries.MAX_CACHED_STATEMENT_LENGTH  # ...which the gateway raises

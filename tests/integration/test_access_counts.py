"""chunk_access_counts follows every write to chunks (triggers, as the bound writer) and is
readable by a reader only for its own principal strings."""

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import delete, func, insert, select, update

from gateway.db.access import access_column_values, bind_principal, bind_writer, chunk_column_values
from gateway.db.engine import create_engine, session_factory
from gateway.db.models import Chunk, Document
from gateway.db.retrieval_models import ChunkAccessCount
from gateway.settings import DatabaseSettings
from policies.model import ClassificationLevels, parse_access
from policies.principal import Principal

pytestmark = pytest.mark.integration

LEVELS = ClassificationLevels()


def _net(superuser_url):
    """Net chunk count per (tenant, effect, principal, classification), zeros dropped."""
    with psycopg.connect(superuser_url) as conn:
        rows = conn.execute(
            "SELECT tenant, effect, principal, classification, sum(chunks) FROM chunk_access_counts"
            " GROUP BY 1, 2, 3, 4 HAVING sum(chunks) <> 0").fetchall()
    return {tuple(r[:4]): int(r[4]) for r in rows}


async def _write_document(session, access, chunks):
    values = access_column_values(parse_access(access, LEVELS), LEVELS, tenant="acme")
    doc_id = uuid.uuid4()
    await session.execute(insert(Document).values(
        id=doc_id, external_id=str(doc_id), title="t", content_type="text/plain", body="b",
        content_sha256="0" * 64, **values))
    await session.execute(insert(Chunk), [
        {**chunk_column_values(values), "document_id": doc_id, "document_version": 1, "ordinal": i,
         "text": "x", "content_sha256": "0" * 64, "char_start": 0, "char_end": 1,
         "embedding": [0.05] * 384}
        for i in range(chunks)])
    return doc_id


@pytest.fixture
async def sessions(db_urls):
    engine = create_engine(db_urls.runtime, DatabaseSettings())
    yield session_factory(engine)
    await engine.dispose()


async def test_counts_follow_insert_access_change_and_delete(db_urls, sessions):
    async with sessions() as session, session.begin():
        await bind_writer(session, "acme")
        doc = await _write_document(session, {"allow": ["group:a", "group:b"], "deny": ["group:c"],
                                              "classification": "internal"}, chunks=3)
    assert _net(db_urls.superuser) == {("acme", "allow", "group:a", 1): 3, ("acme", "allow", "group:b", 1): 3,
                                       ("acme", "deny", "group:c", 1): 3}
    async with sessions() as session, session.begin():
        await bind_writer(session, "acme")
        await session.execute(update(Chunk).where(Chunk.document_id == doc)
                              .values(allow=["group:d"], deny=[], classification=3))
    assert _net(db_urls.superuser) == {("acme", "allow", "group:d", 3): 3}
    async with sessions() as session, session.begin():
        await bind_writer(session, "acme")
        await session.execute(delete(Document).where(Document.id == doc))  # chunks cascade
    assert _net(db_urls.superuser) == {}


async def test_many_small_writes_are_folded_and_keep_their_sums(db_urls, sessions):
    for _ in range(80):
        async with sessions() as session, session.begin():
            await bind_writer(session, "acme")
            await _write_document(session, {"allow": ["group:a"]}, chunks=2)
    with psycopg.connect(db_urls.superuser) as conn:
        rows, pending = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT compacted) FROM chunk_access_counts").fetchone()
    assert _net(db_urls.superuser) == {("acme", "allow", "group:a", 1): 160}
    assert rows <= 65 and pending <= 64  # folded, not one row per write


async def test_reader_sees_only_the_counts_of_its_own_principal_strings(db_urls, sessions):
    async with sessions() as session, session.begin():
        await bind_writer(session, "acme")
        await _write_document(session, {"allow": ["group:a", "group:secret-project"]}, chunks=2)
    reader = Principal(subject="ann", tenant="acme", groups=("a",))
    async with sessions() as session, session.begin():
        await bind_principal(session, reader, LEVELS, datetime.now(UTC))
        visible = (await session.execute(select(ChunkAccessCount.principal))).scalars().all()
        total = (await session.execute(select(func.sum(ChunkAccessCount.chunks)))).scalar()
    assert set(visible) == {"group:a"}
    assert total == 2


async def test_a_transaction_with_nothing_bound_cannot_write_counts(db_urls):
    with psycopg.connect(db_urls.runtime) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("INSERT INTO chunk_access_counts (tenant, effect, principal, classification, chunks)"
                     " VALUES ('acme', 'allow', 'group:a', 0, 1000000)")

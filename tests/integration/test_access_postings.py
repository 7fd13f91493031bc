"""chunk_postings follows every write to chunks (its trigger, for the bound writer), takes no
other write from the service, and shows a reader only the postings of its own keys at or
below its clearance."""

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from gateway.db.access import access_column_values, bind_principal, bind_writer, chunk_column_values
from gateway.db.engine import create_engine, session_factory
from gateway.db.models import Chunk, Document
from gateway.db.retrieval_models import ChunkPosting
from gateway.retrieval.repository import posting_keys
from gateway.settings import DatabaseSettings
from policies.model import ClassificationLevels, parse_access
from policies.principal import Principal

pytestmark = pytest.mark.integration

LEVELS = ClassificationLevels()
SEP = "\x1f"


def _postings(superuser_url):
    """Every posting as (key, chunk id, tenant, classification, vector's first component)."""
    with psycopg.connect(superuser_url) as conn:
        rows = conn.execute("SELECT key, chunk_id, tenant, classification, (embedding::real[])[1]"
                            " FROM chunk_postings").fetchall()
    return {(r[0], r[1], r[2], r[3], round(r[4], 3)) for r in rows}


def _chunk_ids(superuser_url, doc_id):
    with psycopg.connect(superuser_url) as conn:
        rows = conn.execute("SELECT id FROM chunks WHERE document_id = %s ORDER BY id", (doc_id,))
        return [r[0] for r in rows]


async def _write_document(session, access, chunks, tenant="acme"):
    values = access_column_values(parse_access(access, LEVELS), LEVELS, tenant=tenant)
    doc_id = uuid.uuid4()
    await session.execute(insert(Document).values(
        id=doc_id, external_id=str(doc_id), title="t", content_type="text/plain", body="b",
        content_sha256="0" * 64, **values))
    await session.execute(insert(Chunk), [
        {**chunk_column_values(values), "document_id": doc_id, "document_version": 1, "ordinal": i,
         "text": "x", "content_sha256": "0" * 64, "char_start": 0, "char_end": 1,
         "embedding": [0.25] + [0.05] * 383}
        for i in range(chunks)])
    return doc_id


@pytest.fixture
async def sessions(db_urls):
    engine = create_engine(db_urls.runtime, DatabaseSettings())
    yield session_factory(engine)
    await engine.dispose()


async def test_postings_follow_insert_access_and_vector_changes_and_delete(db_urls, sessions):
    async with sessions() as session, session.begin():
        await bind_writer(session, "acme")
        doc = await _write_document(session, {"allow": ["group:a", "group:b", "group:a"],
                                              "deny": ["group:c"], "classification": "internal"}, chunks=2)
    ids = _chunk_ids(db_urls.superuser, doc)
    # one posting per distinct allow entry; deny entries post nothing
    assert _postings(db_urls.superuser) == {
        (f"acme{SEP}group:{g}", i, "acme", 1, 0.25) for g in "ab" for i in ids}

    async with sessions() as session, session.begin():
        await bind_writer(session, "acme")
        await session.execute(update(Chunk).where(Chunk.id == ids[0])
                              .values(allow=["group:d"], classification=3))
        await session.execute(update(Chunk).where(Chunk.id == ids[1])
                              .values(embedding=[0.75] + [0.05] * 383))
    assert _postings(db_urls.superuser) == {
        (f"acme{SEP}group:d", ids[0], "acme", 3, 0.25),
        (f"acme{SEP}group:a", ids[1], "acme", 1, 0.75), (f"acme{SEP}group:b", ids[1], "acme", 1, 0.75)}

    async with sessions() as session, session.begin():
        await bind_writer(session, "acme")
        await session.execute(update(Chunk).where(Chunk.id == ids[1]).values(text="edited"))
        await session.execute(delete(Document).where(Document.id == doc))  # chunks cascade
    assert _postings(db_urls.superuser) == set()


async def test_truncating_chunks_empties_the_postings(db_urls, sessions):
    async with sessions() as session, session.begin():
        await bind_writer(session, "acme")
        await _write_document(session, {"allow": ["group:a"]}, chunks=3)
    with psycopg.connect(db_urls.superuser) as conn:
        conn.execute("TRUNCATE chunks CASCADE")
    assert _postings(db_urls.superuser) == set()


async def test_reader_sees_only_its_own_keys_in_its_tenant_within_its_clearance(db_urls, sessions):
    async with sessions() as session, session.begin():
        await bind_writer(session, "acme")
        await _write_document(session, {"allow": ["group:a"]}, chunks=1)
        await _write_document(session, {"allow": ["group:a"], "classification": "restricted"}, chunks=1)
        await _write_document(session, {"allow": ["group:secret-project"]}, chunks=1)
    async with sessions() as session, session.begin():
        await bind_writer(session, "globex")
        await _write_document(session, {"allow": ["group:a"]}, chunks=1, tenant="globex")
    reader = Principal(subject="ann", tenant="acme", groups=("a", "secret-project"), clearance="internal")
    async with sessions() as session, session.begin():
        # bound as a reader holding group:a only, whatever keys the query asks for
        bound = Principal(subject="ann", tenant="acme", groups=("a",), clearance="internal")
        await bind_principal(session, bound, LEVELS, datetime.now(UTC))
        visible = (await session.execute(
            select(ChunkPosting.key, ChunkPosting.classification)
            .where(ChunkPosting.key.in_(posting_keys(reader) + [f"globex{SEP}group:a"]))
        )).all()
    assert visible == [(f"acme{SEP}group:a", 1)]


async def test_nothing_bound_sees_and_writes_no_postings(db_urls, sessions):
    async with sessions() as session, session.begin():
        await bind_writer(session, "acme")
        await _write_document(session, {"allow": ["group:a"]}, chunks=1)
    with psycopg.connect(db_urls.runtime) as conn:
        assert conn.execute("SELECT count(*) FROM chunk_postings").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO chunk_postings (key, chunk_id, tenant, classification, embedding)"
                         " VALUES ('acme\x1fgroup:a', 1, 'acme', 0, array_fill(0.1, ARRAY[384])::vector)")


async def test_the_service_changes_postings_only_by_writing_chunks(db_urls, sessions):
    async with sessions() as session, session.begin():
        await bind_writer(session, "acme")
        doc = await _write_document(session, {"allow": ["group:a"]}, chunks=1)
    (chunk_id,) = _chunk_ids(db_urls.superuser, doc)
    posted = _postings(db_urls.superuser)
    forged = ("INSERT INTO chunk_postings (key, chunk_id, tenant, classification, embedding)"
              " VALUES ('acme\x1fgroup:b', :id, 'acme', 0, array_fill(0.1, ARRAY[384])::vector)")
    for statement in (forged, "DELETE FROM chunk_postings WHERE chunk_id = :id"):
        async with sessions() as session, session.begin():
            await bind_writer(session, "acme")  # even the tenant's own writer
            with pytest.raises(DBAPIError) as refused:
                await session.execute(text(statement), {"id": chunk_id})
            assert refused.value.orig.sqlstate == "42501"  # insufficient_privilege
    assert _postings(db_urls.superuser) == posted == {(f"acme{SEP}group:a", chunk_id, "acme", 1, 0.25)}


def test_no_role_but_the_owner_may_attach_the_maintenance_trigger(db_urls):
    # it runs with the owner's rights: on a table of another role's making (a temporary
    # one, where a deployment grants TEMP) it would post or delete whatever rows that role
    # chose; EXECUTE is what CREATE TRIGGER checks
    with psycopg.connect(db_urls.superuser) as conn:
        granted = conn.execute(
            "SELECT r.rolname FROM pg_roles AS r WHERE NOT r.rolsuper AND has_function_privilege("
            "r.oid, 'chunk_postings_maintain()', 'EXECUTE') ORDER BY 1").fetchall()
    assert granted == [("gateway_owner",)]

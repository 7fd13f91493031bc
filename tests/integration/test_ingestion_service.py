"""Ingestion against the real database: upsert by external id, versions, access, atomicity."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from gateway.db.engine import create_engine, session_factory
from gateway.errors import InvalidInputError, NotFoundError, PermissionDeniedError, UnavailableError
from gateway.ingestion.documents import DocumentInput
from gateway.ingestion.service import IngestFailure, IngestionService
from policies.principal import Principal
from tests.support.embedders import CountingEmbedder, FailingEmbedder, WrongSizeEmbedder

pytestmark = pytest.mark.integration

INGESTER = Principal(subject="loader", tenant="acme", roles=("ingest",))
ACCESS = {"allow": ["group:finance"], "classification": "confidential"}
LONG_TEXT = "\n\n".join(
    f"Section {n}. The travel policy rule number {n} says employees book economy fares, "
    f"keep receipts for {n} years and file claims within thirty days of returning." for n in range(40)
)


@pytest.fixture
async def make_service(settings, wordpiece) -> AsyncIterator:
    engines = []

    def build(embedder):
        engine = create_engine(settings.database.url, settings.database)
        engines.append(engine)
        return IngestionService(session_factory(engine), embedder, settings, tokenizer=wordpiece)

    yield build
    for engine in engines:
        await engine.dispose()


@pytest.fixture
def counting(embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


def doc(external_id="fin-1", text=LONG_TEXT, access=ACCESS, **extra) -> DocumentInput:
    return DocumentInput(external_id=external_id, title=extra.pop("title", "Travel policy"), content=text,
                         access=access, **extra)


def rows(db_urls, query, *params):
    with psycopg.connect(db_urls.superuser) as conn:
        return conn.execute(query, params).fetchall()


async def test_new_document_is_stored_with_offsets_and_access_on_every_chunk(make_service, counting, db_urls):
    written = await make_service(counting).ingest(INGESTER, doc(metadata={"dept": "finance"},
                                                                 source_uri="https://wiki/travel"))
    assert (written.status, written.version) == ("created", 1)
    assert written.chunks > 1 and counting.documents == written.chunks
    [document] = rows(db_urls, "SELECT id, tenant, body, allow, classification, access, metadata, source_uri,"
                               " policy_name FROM documents")
    assert document[0] == written.id and document[1] == "acme"
    assert (document[3], document[4]) == (["group:finance"], 2)
    assert document[5]["tenant"] == "acme" and document[5]["classification"] == "confidential"
    assert (document[6], document[7], document[8]) == ({"dept": "finance"}, "https://wiki/travel", None)
    chunks = rows(db_urls, "SELECT text, char_start, char_end, tenant, allow, classification, document_version,"
                           " content_sha256, vector_dims(embedding) FROM chunks ORDER BY ordinal")
    assert len(chunks) == written.chunks
    for text, start, end, tenant, allow, classification, version, sha, dims in chunks:
        assert document[2][start:end] == text
        assert (tenant, allow, classification, version, dims) == ("acme", ["group:finance"], 2, 1, 384)
        assert len(sha) == 64


async def test_identical_content_is_not_embedded_again_and_keeps_its_version(make_service, counting):
    service = make_service(counting)
    first = await service.ingest(INGESTER, doc())
    embedded = counting.documents
    again = await service.ingest(INGESTER, doc())
    assert counting.documents == embedded, "no embedding work for unchanged content"
    assert (again.id, again.version, again.chunks, again.status) == (first.id, 1, first.chunks, "unchanged")


async def test_same_content_with_new_access_updates_document_and_chunks_without_embedding(
    make_service, counting, db_urls
):
    service = make_service(counting)
    first = await service.ingest(INGESTER, doc())
    embedded = counting.documents
    changed = await service.ingest(INGESTER, doc(access={"allow": ["group:hr"], "deny": ["user:eve"]},
                                                 metadata={"owner": "hr"}))
    assert counting.documents == embedded
    assert (changed.status, changed.version) == ("metadata_updated", 1)
    assert rows(db_urls, "SELECT DISTINCT allow, deny, classification FROM chunks") == [(["group:hr"], ["user:eve"], 1)]
    assert rows(db_urls, "SELECT metadata, allow FROM documents WHERE id = %s", first.id) == [
        ({"owner": "hr"}, ["group:hr"])]


async def test_changed_content_gets_a_new_version_and_its_old_chunks_are_gone(make_service, counting, db_urls):
    service = make_service(counting)
    first = await service.ingest(INGESTER, doc())
    old_ids = {r[0] for r in rows(db_urls, "SELECT id FROM chunks")}
    second = await service.ingest(INGESTER, doc(text="Travel is now booked through the portal only."))
    assert (second.id, second.version, second.status, second.chunks) == (first.id, 2, "new_version", 1)
    remaining = rows(db_urls, "SELECT id, document_version, text FROM chunks")
    assert not old_ids & {r[0] for r in remaining}
    assert [(r[1], r[2]) for r in remaining] == [(2, "Travel is now booked through the portal only.")]
    assert rows(db_urls, "SELECT version, body FROM documents") == [
        (2, "Travel is now booked through the portal only.")]


async def test_a_changed_title_is_changed_content(make_service, counting):
    service = make_service(counting)
    await service.ingest(INGESTER, doc())
    renamed = await service.ingest(INGESTER, doc(title="Travel and expenses policy"))
    assert (renamed.version, renamed.status) == (2, "new_version")


@pytest.mark.parametrize(("access", "field"), [
    (None, "access"),
    ({"allow": ["finance"]}, "access.allow"),
    ({"allow": ["group:x"], "classification": "top-secret"}, "access.classification"),
    ({"allow": ["group:x"], "valid_from": "yesterday"}, "access.valid_from"),
    ({"allow": ["group:x"], "colour": "red"}, "access.colour"),
])
async def test_invalid_access_block_is_refused_naming_the_field(make_service, counting, access, field):
    with pytest.raises(InvalidInputError) as info:
        await make_service(counting).ingest(INGESTER, doc(access=access))
    assert info.value.extra["field"] == field and field in info.value.detail
    assert counting.documents == 0


async def test_ingesting_into_another_tenant_is_forbidden(make_service, counting, db_urls):
    with pytest.raises(PermissionDeniedError):
        await make_service(counting).ingest(INGESTER, doc(access={**ACCESS, "tenant": "globex"}))
    assert rows(db_urls, "SELECT count(*) FROM documents") == [(0,)]


async def test_naming_your_own_tenant_is_allowed(make_service, counting):
    written = await make_service(counting).ingest(INGESTER, doc(access={**ACCESS, "tenant": "acme"}))
    assert written.status == "created"


async def test_a_bad_document_in_a_batch_fails_alone(make_service, counting, db_urls):
    outcomes = await make_service(counting).ingest_many(INGESTER, [
        doc("a", text="Alpha."), doc("b", text="   "), doc("c", text="Gamma.", access={"allow": []}),
        doc("d", text="Delta."),
    ])
    assert [type(o).__name__ for o in outcomes] == ["Written", "IngestFailure", "IngestFailure", "Written"]
    assert isinstance(outcomes[1], IngestFailure) and outcomes[1].error.status_code == 422
    assert sorted(r[0] for r in rows(db_urls, "SELECT external_id FROM documents")) == ["a", "d"]


async def test_repeated_external_id_in_one_batch_applies_in_order(make_service, counting, db_urls):
    outcomes = await make_service(counting).ingest_many(INGESTER, [
        doc("x", text="First draft."), doc("y", text="Other."), doc("x", text="Second draft."),
    ])
    assert [(o.external_id, o.version) for o in outcomes] == [("x", 1), ("y", 1), ("x", 2)]
    assert rows(db_urls, "SELECT body FROM documents WHERE external_id = 'x'") == [("Second draft.",)]


async def test_embedder_outage_writes_nothing(make_service, db_urls):
    with pytest.raises(UnavailableError):
        await make_service(FailingEmbedder()).ingest(INGESTER, doc())
    assert rows(db_urls, "SELECT count(*) FROM documents") == [(0,)]


async def test_a_failed_new_version_leaves_the_old_version_and_its_chunks_intact(make_service, counting, db_urls):
    first = await make_service(counting).ingest(INGESTER, doc())
    before = rows(db_urls, "SELECT id, text FROM chunks ORDER BY id")
    outcomes = await make_service(WrongSizeEmbedder()).ingest_many(INGESTER, [
        doc(text="A new body whose chunks the database refuses."), doc("other", text="Also refused."),
    ])
    assert all(isinstance(o, IngestFailure) and o.error.status_code == 503 for o in outcomes)
    assert rows(db_urls, "SELECT id, text FROM chunks ORDER BY id") == before
    assert rows(db_urls, "SELECT id, version FROM documents") == [(first.id, 1)]


async def test_delete_removes_the_document_and_its_chunks_in_the_own_tenant_only(make_service, counting, db_urls):
    service = make_service(counting)
    written = await service.ingest(INGESTER, doc())
    outsider = Principal(subject="other", tenant="globex", roles=("ingest",))
    with pytest.raises(NotFoundError):
        await service.delete(outsider, written.id)
    await service.delete(INGESTER, written.id)
    assert rows(db_urls, "SELECT count(*) FROM documents") == [(0,)]
    assert rows(db_urls, "SELECT count(*) FROM chunks") == [(0,)]
    with pytest.raises(NotFoundError):
        await service.delete(INGESTER, written.id)

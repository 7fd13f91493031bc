"""The documents API over HTTP: ingest each content type, find it by vector search, upsert, delete."""

from __future__ import annotations

import base64
import dataclasses

import psycopg
import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.auth.devkeys import mint_dev_token
from gateway.settings import IngestionSettings
from tests.support.embedders import CountingEmbedder
from tests.unit.test_extract import make_pdf

pytestmark = pytest.mark.integration

ACCESS = {"allow": ["group:staff"], "classification": "internal"}


@pytest.fixture
def counting(embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


@pytest.fixture
def client(settings, counting):
    with TestClient(create_app(settings, embedder=counting)) as test_client:
        yield test_client


def auth(settings, *, roles=("ingest",), tenant="acme", sub="loader") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_dev_token(settings, sub=sub, roles=roles, tenant=tenant)}"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def nearest_chunk(db_urls, embedder, question: str):
    vector = "[" + ",".join(str(x) for x in embedder.embed_query(question)) + "]"
    with psycopg.connect(db_urls.superuser) as conn:
        return conn.execute(
            "SELECT d.external_id, d.body, c.text, c.char_start, c.char_end, c.heading_path"
            " FROM chunks c JOIN documents d ON d.id = c.document_id"
            " ORDER BY c.embedding <=> %s::vector LIMIT 1", (vector,)).fetchone()


def count(db_urls, query: str, *params) -> int:
    with psycopg.connect(db_urls.superuser) as conn:
        return conn.execute(query, params).fetchone()[0]


CASES = [
    ("notes-txt", {"text": "The cafeteria serves vegetarian lasagne every Thursday at noon."},
     "What is served in the cafeteria on Thursday?", "lasagne", ()),
    ("guide-md", {"content_base64": b64(b"# Onboarding\n\n## Laptops\n\nNew starters collect their "
                                        b"laptop from the IT desk on the second floor.\n"),
                  "content_type": "text/markdown"},
     "Where do new starters pick up their laptop?", "IT desk", ("Onboarding", "Laptops")),
    ("page-html", {"content_base64": b64(b"<h1>Parking</h1><p>Visitors park in garage B, level -2."
                                         b"</p><script>ignore()</script>"),
                   "content_type": "text/html"},
     "Where can visitors park their car?", "garage B", ("Parking",)),
    ("report-pdf", {"content_base64": b64(make_pdf("Quarterly revenue rose to 38 million euros.")),
                    "content_type": "application/pdf"},
     "How much revenue did we make this quarter?", "38 million", ()),
]


def test_each_content_type_is_ingested_and_found_by_vector_search_with_exact_offsets(
    client, settings, db_urls, embedder
):
    for external_id, content, _, _, _ in CASES:
        body = {"external_id": external_id, "title": external_id, "access": ACCESS, **content}
        response = client.post("/v1/documents", json=body, headers=auth(settings))
        assert response.status_code == 201, response.text
        created = response.json()
        assert (created["external_id"], created["version"], created["status"]) == (external_id, 1, "created")
        assert created["chunks"] >= 1 and created["id"]
    for external_id, _, question, phrase, heading_path in CASES:
        found, stored_body, text, start, end, path = nearest_chunk(db_urls, embedder, question)
        assert found == external_id, question
        assert stored_body[start:end] == text and phrase in text
        assert tuple(path) == heading_path


def test_reingesting_the_same_content_does_no_embedding_work(client, settings, counting):
    body = {"external_id": "faq", "title": "FAQ", "text": "Ask the service desk about passwords.",
            "access": ACCESS}
    first = client.post("/v1/documents", json=body, headers=auth(settings)).json()
    embedded = counting.documents
    again = client.post("/v1/documents", json=body, headers=auth(settings))
    assert again.status_code == 201
    assert counting.documents == embedded
    assert again.json() == {**first, "status": "unchanged"}


def test_a_changed_document_gets_a_new_version_and_its_old_chunks_are_gone(client, settings, db_urls):
    body = {"external_id": "policy", "title": "Policy", "text": "Version one of the policy.", "access": ACCESS}
    first = client.post("/v1/documents", json=body, headers=auth(settings)).json()
    second = client.post("/v1/documents", json={**body, "text": "Version two of the policy."},
                         headers=auth(settings)).json()
    assert (second["id"], second["version"], second["status"]) == (first["id"], 2, "new_version")
    assert count(db_urls, "SELECT count(*) FROM chunks WHERE text LIKE 'Version one%%'") == 0
    assert count(db_urls, "SELECT count(*) FROM chunks WHERE document_version = 2") == 1


def test_ingestion_deletion_and_refusals_are_audited_once_each(client, settings, db_urls):
    body = {"external_id": "audited", "title": "A", "text": "Audited text.", "access": ACCESS}
    created = client.post("/v1/documents", json=body, headers=auth(settings)).json()
    denied = client.post("/v1/documents", json={**body, "access": {**ACCESS, "tenant": "globex"}},
                         headers=auth(settings))
    assert denied.status_code == 403
    assert client.delete(f"/v1/documents/{created['id']}", headers=auth(settings)).status_code == 204
    assert client.delete(f"/v1/documents/{created['id']}", headers=auth(settings)).status_code == 404
    with psycopg.connect(db_urls.superuser) as conn:
        events = conn.execute("SELECT action, status, subject, detail FROM audit_events ORDER BY ts").fetchall()
    assert [(a, s, sub) for a, s, sub, _ in events] == [
        ("document.ingest", "ok", "loader"), ("document.ingest", "denied", "loader"),
        ("document.delete", "ok", "loader"), ("document.delete", "denied", "loader")]
    assert events[0][3]["documents"][0]["document_id"] == created["id"]
    assert events[2][3]["document_id"] == created["id"]


@pytest.mark.parametrize(("roles", "status"), [((), 403), (("auditor",), 403), (("admin",), 201)])
def test_only_ingest_or_admin_may_write(client, settings, roles, status):
    body = {"external_id": f"r-{status}-{len(roles)}", "title": "T", "text": "Text.", "access": ACCESS}
    response = client.post("/v1/documents", json=body, headers=auth(settings, roles=roles))
    assert response.status_code == status


def test_anonymous_write_is_401(client):
    response = client.post("/v1/documents", json={"external_id": "x", "title": "T", "text": "x"})
    assert response.status_code == 401


def test_ingesting_into_another_tenant_is_403(client, settings, db_urls):
    body = {"external_id": "x", "title": "T", "text": "Text.", "access": {**ACCESS, "tenant": "globex"}}
    response = client.post("/v1/documents", json=body, headers=auth(settings))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert count(db_urls, "SELECT count(*) FROM documents") == 0


@pytest.mark.parametrize(("change", "status", "field"), [
    ({"access": None}, 422, "access"),
    ({"access": {"allow": ["staff"]}}, 422, "access.allow"),
    ({"access": {"allow": ["group:x"], "classification": "secret"}}, 422, "access.classification"),
    ({"text": "   "}, 422, None),
    ({"text": None, "content_base64": b64(b"GIF89a"), "content_type": "image/gif"}, 415, None),
    ({"text": None, "content_base64": b64(b"%PDF-1.4 broken"), "content_type": "application/pdf"}, 422, None),
    ({"text": None, "content_base64": "not base64!", "content_type": "text/plain"}, 422, "content_base64"),
    ({"text": "x" * 2000}, 413, None),
])
def test_bad_documents_are_refused_with_problem_details(settings, counting, db_urls, change, status, field):
    small = dataclasses.replace(settings, ingestion=IngestionSettings(max_document_bytes=1000))
    body = {"external_id": "bad", "title": "Bad", "text": "Some text.", "access": ACCESS}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    with TestClient(create_app(small, embedder=counting)) as client:
        response = client.post("/v1/documents", json=body, headers=auth(small))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if field:
        assert response.json()["field"] == field
    assert counting.documents == 0
    assert count(db_urls, "SELECT count(*) FROM documents") == 0


def test_delete_removes_the_document_and_chunks_and_is_404_elsewhere(client, settings, db_urls):
    body = {"external_id": "gone", "title": "T", "text": "Soon deleted.", "access": ACCESS}
    created = client.post("/v1/documents", json=body, headers=auth(settings)).json()
    other_tenant = client.delete(f"/v1/documents/{created['id']}", headers=auth(settings, tenant="globex"))
    assert other_tenant.status_code == 404
    reader = client.delete(f"/v1/documents/{created['id']}", headers=auth(settings, roles=()))
    assert reader.status_code == 403
    response = client.delete(f"/v1/documents/{created['id']}", headers=auth(settings))
    assert response.status_code == 204
    assert count(db_urls, "SELECT count(*) FROM chunks") == 0
    assert client.delete(f"/v1/documents/{created['id']}", headers=auth(settings)).status_code == 404


def reader(settings, *, sub="reader", groups=("staff",), tenant="acme", clearance="internal"):
    token = mint_dev_token(settings, sub=sub, groups=groups, tenant=tenant, clearance=clearance)
    return {"Authorization": f"Bearer {token}"}


def test_a_document_is_readable_by_those_its_access_admits_and_404_for_everyone_else(client, settings, db_urls):
    body = {"external_id": "handbook", "title": "Handbook", "text": "# Leave\n\nTwenty-five days.",
            "content_type": "text/markdown", "metadata": {"owner": "hr"},
            "access": {"allow": ["group:staff"], "deny": ["user:mallory"], "classification": "confidential"}}
    created = client.post("/v1/documents", json=body, headers=auth(settings)).json()
    url = f"/v1/documents/{created['id']}"
    allowed = client.get(url, headers=reader(settings, clearance="confidential"))
    assert allowed.status_code == 200
    document = allowed.json()
    assert (document["text"], document["version"], document["classification"]) == (
        "# Leave\n\nTwenty-five days.", 1, "confidential")
    assert document["metadata"] == {"owner": "hr"} and document["content_type"] == "text/markdown"
    refused = [
        client.get(url, headers=reader(settings)),  # clearance too low
        client.get(url, headers=reader(settings, groups=("sales",), clearance="restricted")),
        client.get(url, headers=reader(settings, sub="mallory", clearance="restricted")),
        client.get(url, headers=reader(settings, tenant="globex", clearance="restricted")),
        client.get(url, headers=auth(settings)),  # the writer role grants no reading
    ]
    missing = client.get("/v1/documents/00000000-0000-0000-0000-000000000000",
                         headers=reader(settings, clearance="confidential"))
    assert {r.status_code for r in [*refused, missing]} == {404}
    assert {r.json()["detail"] for r in [*refused, missing]} == {missing.json()["detail"]}
    with psycopg.connect(db_urls.superuser) as conn:
        reads = conn.execute("SELECT status, count(*) FROM audit_events WHERE action = 'document.read'"
                             " GROUP BY status").fetchall()
    assert dict(reads)["ok"] == 1 and dict(reads)["denied"] >= 6, "every refused read is audited"


def test_a_deleted_document_can_no_longer_be_read(client, settings):
    body = {"external_id": "memo", "title": "Memo", "text": "Short memo.", "access": ACCESS}
    created = client.post("/v1/documents", json=body, headers=auth(settings)).json()
    assert client.get(f"/v1/documents/{created['id']}", headers=reader(settings)).status_code == 200
    assert client.delete(f"/v1/documents/{created['id']}", headers=auth(settings)).status_code == 204
    assert client.get(f"/v1/documents/{created['id']}", headers=reader(settings)).status_code == 404

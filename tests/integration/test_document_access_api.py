"""Changing access over HTTP takes effect at the very next query; explain agrees with SQL."""

from datetime import UTC, datetime

import psycopg
import pytest

from gateway.app import create_app
from policies.model import ClassificationLevels, parse_access
from policies.principal import Principal
from tests.support.access import Api, bind_reader, bind_writer, sync_engine, visible, write_document
from tests.support.server import serve_in_thread

pytestmark = pytest.mark.integration

LEVELS = ClassificationLevels()
ALICE = Principal("alice", "acme", groups=("finance",))
BOB = Principal("bob", "acme", groups=("hr",))


@pytest.fixture
def world(settings, db_urls):
    """A served gateway, and a finance document with three chunks in tenant acme."""
    owner = sync_engine(db_urls.owner)
    with owner.begin() as conn:
        bind_writer(conn, "acme")
        doc = write_document(conn, "acme", parse_access({"allow": ["group:finance"]}, LEVELS), LEVELS,
                             external_id="q3-forecast", chunks=3)
        bind_writer(conn, "globex")
        other = write_document(conn, "globex", parse_access({"allow": ["everyone"]}, LEVELS), LEVELS,
                               external_id="globex-plan")
    owner.dispose()
    runtime = sync_engine(db_urls.runtime)
    with serve_in_thread(create_app(settings)) as base:
        api = Api(base, settings)
        yield api, runtime, doc, other
        api.http.close()
    runtime.dispose()


def next_query(runtime, principal):
    """The chunks the next search would see: runtime role, principal bound, predicate in the WHERE."""
    now = datetime.now(UTC)
    with runtime.begin() as conn:
        bind_reader(conn, principal, LEVELS, now)
        return visible(conn, principal, LEVELS, now, predicate=True)[1]


def test_changing_a_documents_access_is_visible_to_the_very_next_query(world, db_urls):
    api, runtime, doc, _ = world
    assert next_query(runtime, ALICE) == set(doc.chunk_ids)
    assert next_query(runtime, BOB) == set()
    response = api.as_admin("PUT", f"/v1/documents/{doc.id}/access", json={"allow": ["group:hr"]})
    assert response.status_code == 200, response.text
    assert response.json()["chunks"] == 3
    assert response.json()["access"]["allow"] == ["group:hr"]
    assert next_query(runtime, BOB) == set(doc.chunk_ids)
    assert next_query(runtime, ALICE) == set()
    with psycopg.connect(db_urls.superuser) as conn:
        action, detail = conn.execute("SELECT action, detail FROM audit_events WHERE action = 'document.access'"
                                      ).fetchone()
    assert detail["before"]["allow"] == ["group:finance"]
    assert detail["after"]["allow"] == ["group:hr"]
    assert detail["document_id"] == str(doc.id) and detail["chunks"] == 3


def test_changing_a_named_policy_is_visible_to_the_very_next_query(world):
    api, runtime, doc, _ = world
    assert api.as_admin("POST", "/v1/policies", json={"name": "gate", "allow": ["group:finance"]}).status_code == 201
    assert api.as_admin("PUT", f"/v1/documents/{doc.id}/access",
                        json={"allow": ["everyone"], "policy": "gate"}).status_code == 200
    assert next_query(runtime, ALICE) == set(doc.chunk_ids)
    assert next_query(runtime, BOB) == set()
    assert api.as_admin("PUT", "/v1/policies/gate", json={"allow": ["group:hr"]}).status_code == 200
    assert next_query(runtime, BOB) == set(doc.chunk_ids)
    assert next_query(runtime, ALICE) == set()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"allow": ["managers"]}, 422, "allow"),
        ({"allow": ["everyone"], "policy": "no-such-policy"}, 422, "policy"),
        ({"allow": ["everyone"], "tenant": "globex"}, 422, "tenant"),
        ({}, 422, "allow"),
    ],
)
def test_invalid_access_changes_nothing(world, body, status, field):
    api, runtime, doc, _ = world
    response = api.as_admin("PUT", f"/v1/documents/{doc.id}/access", json=body)
    assert response.status_code == status
    assert response.json()["field"] == field
    assert next_query(runtime, ALICE) == set(doc.chunk_ids)


def test_another_tenants_document_is_not_found(world):
    api, _, _, other = world
    assert api.as_admin("PUT", f"/v1/documents/{other.id}/access", json={"allow": ["everyone"]}).status_code == 404
    unknown = "00000000-0000-0000-0000-000000000000"
    assert api.as_admin("PUT", f"/v1/documents/{unknown}/access", json={"allow": ["everyone"]}).status_code == 404


def test_document_access_needs_the_admin_role(world):
    api, runtime, doc, _ = world
    ingest = api.token("ingester", roles=["ingest"])
    response = api.call("PUT", f"/v1/documents/{doc.id}/access", ingest, json={"allow": ["everyone"]})
    assert response.status_code == 403
    assert next_query(runtime, BOB) == set()


def test_explain_gives_rule_by_rule_reasons_and_the_sql_verdicts(world):
    api, _, doc, _ = world
    denied = api.as_admin("POST", "/v1/access/explain",
                          json={"document_id": str(doc.id), "principal": {"subject": "bob", "groups": ["hr"]}})
    assert denied.status_code == 200, denied.text
    body = denied.json()
    assert body["allowed"] is False
    assert [r["rule"] for r in body["reasons"] if not r["passed"]] == ["allow"]
    assert body["sql"] == {"predicate": False, "row_security": False, "agree": True,
                           "chunks_total": 3, "chunks_visible": 0}
    assert body["explanation"].startswith("DENIED: user:bob tenant=acme groups=hr")
    allowed = api.as_admin("POST", "/v1/access/explain", json={
        "document_id": str(doc.id), "principal": {"claims": {"sub": "alice", "groups": ["finance"],
                                                             "tenant": "acme"}}}).json()
    assert allowed["allowed"] is True and allowed["granted_by"] == "group:finance"
    assert allowed["sql"]["predicate"] is True and allowed["sql"]["row_security"] is True
    assert allowed["sql"]["chunks_visible"] == 3


def test_explain_defaults_to_the_caller_and_honours_the_time(world):
    api, _, doc, _ = world
    api.as_admin("PUT", f"/v1/documents/{doc.id}/access",
                 json={"allow": ["everyone"], "valid_until": "2030-01-01T00:00:00Z"})
    before = api.as_admin("POST", "/v1/access/explain",
                          json={"document_id": str(doc.id), "at": "2029-12-31T23:59:59Z"}).json()
    after = api.as_admin("POST", "/v1/access/explain",
                         json={"document_id": str(doc.id), "at": "2030-01-01T00:00:00Z"}).json()
    assert before["principal"]["subject"] == "root"
    assert before["allowed"] is True and before["sql"]["agree"] is True
    assert after["allowed"] is False
    assert after["sql"]["predicate"] is False and after["sql"]["row_security"] is False
    assert [r["rule"] for r in after["reasons"] if not r["passed"]] == ["validity"]


@pytest.mark.parametrize(
    ("principal", "field"),
    [
        ({"claims": {"sub": "a"}, "subject": "a"}, "principal"),
        ({"claims": {"groups": ["x"]}}, "principal.claims"),
        ({"groups": ["x"]}, "principal.subject"),
    ],
)
def test_explain_rejects_ambiguous_or_incomplete_principals(world, principal, field):
    api, _, doc, _ = world
    response = api.as_admin("POST", "/v1/access/explain", json={"document_id": str(doc.id), "principal": principal})
    assert response.status_code == 422
    assert response.json()["field"] == field


def test_explain_of_another_tenants_document_is_not_found(world):
    api, _, _, other = world
    assert api.as_admin("POST", "/v1/access/explain", json={"document_id": str(other.id)}).status_code == 404

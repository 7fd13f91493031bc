"""Named-policy administration over HTTP: versioned, tenant-scoped, admin-only, audited."""

import psycopg
import pytest

from gateway.app import create_app
from policies.model import ClassificationLevels, parse_access
from tests.support.access import Api, bind_writer, sync_engine, write_document
from tests.support.server import serve_in_thread

pytestmark = pytest.mark.integration

FINANCE = {"name": "finance-eu", "description": "Finance in the EU", "allow": ["group:finance"],
           "classification": "confidential", "conditions": {"region": ["EU"]}}


@pytest.fixture
def api(settings):
    with serve_in_thread(create_app(settings)) as base:
        client = Api(base, settings)
        yield client
        client.http.close()


def audit_events(db_urls, action_prefix):
    with psycopg.connect(db_urls.superuser) as conn:
        return conn.execute("SELECT action, subject, tenant, detail FROM audit_events"
                            " WHERE action LIKE %s ORDER BY ts", (action_prefix + "%",)).fetchall()


def test_policy_lifecycle_keeps_every_version_readable(api):
    created = api.as_admin("POST", "/v1/policies", json=FINANCE)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    assert created.json()["created_by"] == "root"
    changed = api.as_admin("PUT", "/v1/policies/finance-eu", json={**FINANCE, "deny": ["group:contractors"]})
    assert changed.status_code == 200
    assert changed.json()["version"] == 2
    same = api.as_admin("PUT", "/v1/policies/finance-eu", json={**FINANCE, "deny": ["group:contractors"]})
    assert same.json()["version"] == 2  # an identical body is not a change
    assert api.as_admin("GET", "/v1/policies/finance-eu").json()["deny"] == ["group:contractors"]
    old = api.as_admin("GET", "/v1/policies/finance-eu", params={"version": 1}).json()
    assert old["version"] == 1 and old["action"] == "create" and old["policy"]["deny"] == []
    assert api.as_admin("DELETE", "/v1/policies/finance-eu").status_code == 204
    assert api.as_admin("GET", "/v1/policies/finance-eu").status_code == 404
    assert api.as_admin("GET", "/v1/policies/finance-eu", params={"version": 2}).json()["policy"]["deny"] \
        == ["group:contractors"]
    assert api.as_admin("GET", "/v1/policies/finance-eu", params={"version": 3}).status_code == 404
    recreated = api.as_admin("POST", "/v1/policies", json=FINANCE)
    assert recreated.json()["version"] == 4
    history = api.as_admin("GET", "/v1/policies/finance-eu/versions").json()
    assert [(v["version"], v["action"]) for v in history] == [
        (1, "create"), (2, "update"), (3, "delete"), (4, "create")]


def test_list_shows_the_tenants_current_policies_only(api):
    api.as_admin("POST", "/v1/policies", json=FINANCE)
    api.as_admin("POST", "/v1/policies", json={"name": "all-staff", "allow": ["everyone"]})
    api.as_admin("POST", "/v1/policies", tenant="globex", json={"name": "all-staff", "allow": ["group:x"]})
    names = [p["name"] for p in api.as_admin("GET", "/v1/policies").json()]
    assert names == ["all-staff", "finance-eu"]
    globex = api.as_admin("GET", "/v1/policies", tenant="globex").json()
    assert [(p["name"], p["allow"], p["tenant"]) for p in globex] == [("all-staff", ["group:x"], "globex")]
    assert api.as_admin("GET", "/v1/policies/finance-eu", tenant="globex").status_code == 404


def test_creating_an_existing_policy_is_a_conflict(api):
    api.as_admin("POST", "/v1/policies", json=FINANCE)
    response = api.as_admin("POST", "/v1/policies", json=FINANCE)
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")


def test_updating_a_missing_policy_is_404(api):
    assert api.as_admin("PUT", "/v1/policies/nope", json={"allow": ["everyone"]}).status_code == 404
    assert api.as_admin("DELETE", "/v1/policies/nope").status_code == 404


def test_deleting_a_referenced_policy_is_refused_and_changes_nothing(api, db_urls):
    api.as_admin("POST", "/v1/policies", json=FINANCE)
    owner = sync_engine(db_urls.owner)
    with owner.begin() as conn:
        bind_writer(conn, "acme")
        write_document(conn, "acme", parse_access({"policy": "finance-eu"}, ClassificationLevels()),
                       ClassificationLevels(), external_id="q3")
    owner.dispose()
    response = api.as_admin("DELETE", "/v1/policies/finance-eu")
    assert response.status_code == 409
    assert "referenced by 1 document" in response.json()["detail"]
    assert api.as_admin("GET", "/v1/policies/finance-eu").json()["version"] == 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "x", "allow": ["managers"]}, 422, "allow"),
        ({"name": "x", "allow": ["everyone"], "classification": "secret"}, 422, "classification"),
        ({"name": "Bad Name", "allow": ["everyone"]}, 422, "name"),
        ({"name": "x", "allow": []}, 422, "allow"),
        ({"name": "x", "allow": ["everyone"], "valid_from": "2026-01-01T00:00:00"}, 422, "valid_from"),
        ({"name": "x", "allow": ["everyone"], "valid_from": "2027-01-01T00:00:00Z",
          "valid_until": "2026-01-01T00:00:00Z"}, 422, "valid_until"),
        ({"name": "x", "allow": ["everyone"], "colour": "red"}, 422, "colour"),
        ({"name": "x", "allow": "everyone"}, 422, "allow"),
    ],
)
def test_invalid_policy_is_rejected_with_the_field_named(api, body, status, field):
    response = api.as_admin("POST", "/v1/policies", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    named = problem.get("field") or " ".join(f"{e['key']} {e['message']}" for e in problem["errors"])
    assert field in named
    assert api.as_admin("GET", "/v1/policies").json() == []


def test_put_body_naming_another_policy_is_rejected(api):
    api.as_admin("POST", "/v1/policies", json=FINANCE)
    response = api.as_admin("PUT", "/v1/policies/finance-eu", json={**FINANCE, "name": "other"})
    assert response.status_code == 422
    assert response.json()["field"] == "name"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/policies"), ("POST", "/v1/policies"), ("GET", "/v1/policies/x"),
    ("PUT", "/v1/policies/x"), ("DELETE", "/v1/policies/x"),
])
def test_policies_need_the_admin_role(api, method, path):
    body = {"json": FINANCE} if method in ("POST", "PUT") else {}
    reader = api.token("alice", roles=["ingest", "auditor"])
    denied = api.call(method, path, reader, **body)
    assert denied.status_code == 403
    assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
    assert api.call(method, path, None, **body).status_code == 401


def test_every_policy_change_is_audited_with_before_and_after(api, db_urls):
    api.as_admin("POST", "/v1/policies", json=FINANCE)
    api.as_admin("PUT", "/v1/policies/finance-eu", json={**FINANCE, "classification": "restricted"})
    api.as_admin("PUT", "/v1/policies/finance-eu", json={**FINANCE, "classification": "restricted"})
    api.as_admin("DELETE", "/v1/policies/finance-eu")
    events = audit_events(db_urls, "policy.")
    assert [(a, s, t) for a, s, t, _ in events] == [
        ("policy.create", "root", "acme"), ("policy.update", "root", "acme"), ("policy.delete", "root", "acme")]
    create, update, delete = (detail for *_, detail in events)
    assert create["before"] is None and create["after"]["classification"] == "confidential"
    assert update["before"]["classification"] == "confidential"
    assert update["after"]["classification"] == "restricted"
    assert update["version"] == 2
    assert delete["before"]["classification"] == "restricted" and delete["after"] is None


def test_a_change_whose_audit_cannot_be_written_is_rolled_back(api, db_urls):
    with psycopg.connect(db_urls.superuser, autocommit=True) as conn:
        conn.execute("REVOKE INSERT ON audit_events FROM gateway_runtime")
    response = api.as_admin("POST", "/v1/policies", json=FINANCE)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    with psycopg.connect(db_urls.superuser) as conn:
        assert conn.execute("SELECT count(*) FROM access_policies").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM access_policy_versions").fetchone() == (0,)

"""Audit endpoints over real HTTP: auditor only, own tenant only, streamed exports, reports, verify."""

import csv
import io
import json

import httpx
import pytest

from gateway.app import create_app
from gateway.audit.canonical import document_hash
from gateway.audit.offline import verify_file
from gateway.auth.devkeys import mint_dev_token
from tests.support.audit import DOC_A, DOC_B, audit_kit, event, source, tamper
from tests.support.server import serve_in_thread

pytestmark = pytest.mark.integration

SPEC_FIELDS = {"id", "ts", "request_id", "action", "subject", "issuer", "tenant", "groups", "roles",
               "query", "query_sha256", "sources", "status", "prev_hash", "hash", "seq", "detail"}
SOURCE_FIELDS = {"rank", "document_id", "external_id", "version", "chunk_id", "content_sha256", "score",
                 "policy", "granted_by"}


@pytest.fixture
async def trail(settings):
    """acme: alice (DOC_A, DOC_B), bob (DOC_B), carol (DOC_A), a denied attempt; globex: dave (DOC_A)."""
    async with audit_kit(settings) as kit:
        await kit.log.record(event("alice", query="travel policy?", sources=[source(1, DOC_A), source(2, DOC_B)]))
        await kit.log.record(event("bob", query="=HYPERLINK(\"http://evil\")", sources=[source(1, DOC_B)]))
        await kit.log.record(event("carol", query="-2+3", sources=[source(1, DOC_A)]))
        await kit.log.record(event("alice", query="@SUM(A1)", action="query", sources=[]))
        await kit.log.record(event("dave", tenant="globex", query="globex secret", sources=[source(1, DOC_A)]))
        yield kit


@pytest.fixture
def base(settings):
    with serve_in_thread(create_app(settings)) as url:
        yield url


def _auth(settings, sub="audrey", roles=("auditor",), tenant="acme"):
    return {"Authorization": f"Bearer {mint_dev_token(settings, sub=sub, roles=roles, tenant=tenant)}"}


def _lines(response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines()]


@pytest.mark.parametrize("path", ["/v1/audit/events", "/v1/audit/verify", "/v1/audit/checkpoints",
                                  "/v1/audit/reports/subject/alice",
                                  f"/v1/audit/reports/document/{DOC_A}"])
def test_callers_without_the_auditor_role_get_403(settings, base, path):
    response = httpx.get(base + path, headers=_auth(settings, sub="alice", roles=("admin", "ingest")))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_export_without_a_token_is_401(base):
    assert httpx.get(base + "/v1/audit/events").status_code == 401


async def test_jsonl_export_is_one_canonical_event_per_line_of_the_own_tenant_only(settings, base, trail, tmp_path):
    response = httpx.get(base + "/v1/audit/events", headers=_auth(settings))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    events = _lines(response)
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert {e["tenant"] for e in events} == {"acme"}
    assert all(set(e) >= SPEC_FIELDS for e in events)
    assert set(events[0]["sources"][0]) == SOURCE_FIELDS
    assert events[0]["sources"][0]["policy"] == {"name": "finance-docs", "version": 3}
    assert all(document_hash(e) == e["hash"] for e in events)
    (tmp_path / "api.jsonl").write_bytes(response.content)
    assert verify_file(tmp_path / "api.jsonl").ok


async def test_auditor_cannot_ask_for_another_tenant(settings, base, trail):
    response = httpx.get(base + "/v1/audit/events", params={"tenant": "globex"}, headers=_auth(settings))
    assert response.status_code == 403
    globex = _lines(httpx.get(base + "/v1/audit/events", headers=_auth(settings, tenant="globex")))
    assert [(e["subject"], e["tenant"]) for e in globex] == [("dave", "globex")]
    report = httpx.get(f"{base}/v1/audit/reports/document/{DOC_A}", headers=_auth(settings, tenant="globex")).json()
    assert [r["subject"] for r in report["recipients"]] == ["dave"]


async def test_export_filters_by_subject_document_action_and_time(settings, base, trail):
    def subjects(**params):
        response = httpx.get(base + "/v1/audit/events", params=params, headers=_auth(settings))
        assert response.status_code == 200, response.text
        return [e["subject"] for e in _lines(response) if e["action"] != "audit.export"]

    assert subjects(subject="alice") == ["alice", "alice"]
    assert subjects(document_id=str(DOC_A)) == ["alice", "carol"]
    assert subjects(action="query") == ["alice"]
    everything = _lines(httpx.get(base + "/v1/audit/events", headers=_auth(settings)))
    third = everything[2]["ts"]
    assert subjects(since=third) == ["carol", "alice"]
    assert subjects(until=third) == ["alice", "bob"]
    assert subjects(since=third, until=everything[3]["ts"]) == ["carol"]


async def test_bad_filters_are_4xx_problems(settings, base, trail):
    for params in ({"format": "xml"}, {"since": "yesterday"}, {"document_id": "not-a-uuid"}, {"subject": "a\x00b"},
                   {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}):
        response = httpx.get(base + "/v1/audit/events", params=params, headers=_auth(settings))
        assert 400 <= response.status_code < 500, (params, response.status_code)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_csv_export_neutralises_formulas(settings, base, trail):
    response = httpx.get(base + "/v1/audit/events", params={"format": "csv"}, headers=_auth(settings))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    queries = {row["subject"]: [] for row in rows}
    for row in rows:
        queries[row["subject"]].append(row["query"])
    assert queries["bob"] == ["'=HYPERLINK(\"http://evil\")"]
    assert queries["carol"] == ["'-2+3"]
    assert queries["alice"] == ["travel policy?", "'@SUM(A1)"]
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values())
    assert json.loads(rows[0]["sources"])[0]["document_id"] == str(DOC_A)


async def test_every_export_and_report_is_itself_audited(settings, base, trail):
    httpx.get(base + "/v1/audit/events", params={"subject": "bob"}, headers=_auth(settings))
    httpx.get(base + "/v1/audit/reports/subject/bob", headers=_auth(settings))
    events = _lines(httpx.get(base + "/v1/audit/events", params={"subject": "audrey"}, headers=_auth(settings)))
    assert [(e["action"], e["detail"]["subject"], e["status"]) for e in events] == [
        ("audit.export", "bob", "ok"), ("audit.report", "bob", "ok")]
    assert events[0]["detail"]["format"] == "jsonl"


async def test_document_report_lists_exactly_who_received_the_document(settings, base, trail):
    response = httpx.get(f"{base}/v1/audit/reports/document/{DOC_A}", headers=_auth(settings))
    assert response.status_code == 200
    report = response.json()
    assert [r["subject"] for r in report["recipients"]] == ["alice", "carol"]
    assert all(s["document_id"] == str(DOC_A) for e in report["events"] for s in e["sources"])
    assert [e["subject"] for e in report["events"]] == ["alice", "carol"]
    assert report["event_count"] == 2
    nobody = httpx.get(f"{base}/v1/audit/reports/document/{DOC_B.hex[:-1]}f", headers=_auth(settings)).json()
    assert nobody["recipients"] == [] and nobody["event_count"] == 0


async def test_subject_report_lists_everything_the_user_asked_and_was_shown(settings, base, trail):
    report = httpx.get(base + "/v1/audit/reports/subject/alice", headers=_auth(settings)).json()
    assert [e["query"] for e in report["events"]] == ["travel policy?", "@SUM(A1)"]
    assert sorted(d["document_id"] for d in report["documents"]) == sorted([str(DOC_A), str(DOC_B)])
    assert report["events"][0]["sources"][1]["document_id"] == str(DOC_B)


async def test_verify_endpoint_reports_ok_then_the_first_bad_event(settings, base, trail, db_urls):
    ok = httpx.get(base + "/v1/audit/verify", headers=_auth(settings)).json()
    assert (ok["ok"], ok["events_checked"], ok["first_bad_event"]) == (True, 4, None)
    tamper(db_urls.superuser, [("UPDATE audit_events SET query = 'innocent' WHERE tenant = 'acme' AND seq = 2", ())])
    bad = httpx.get(base + "/v1/audit/verify", headers=_auth(settings)).json()
    assert bad["ok"] is False
    assert (bad["first_bad_event"]["seq"], bad["first_bad_event"]["reason"]) == (2, "edited")
    assert httpx.get(base + "/v1/audit/verify", headers=_auth(settings, tenant="globex")).json()["ok"]


async def test_checkpoints_can_be_made_on_demand_and_listed_with_the_public_key(settings, base, trail):
    made = httpx.post(base + "/v1/audit/checkpoints", headers=_auth(settings))
    assert made.status_code == 201
    assert (made.json()["seq"], made.json()["kind"]) == (4, "manual")
    listed = httpx.get(base + "/v1/audit/checkpoints", headers=_auth(settings)).json()
    assert listed["checkpoints"] == [made.json()]
    assert listed["public_key"]["kid"] == trail.signer.key_id
    empty = httpx.post(base + "/v1/audit/checkpoints", headers=_auth(settings, tenant="initech"))
    assert empty.status_code == 409


async def test_times_without_offset_are_utc(settings, base, trail):
    everything = _lines(httpx.get(base + "/v1/audit/events", headers=_auth(settings)))
    naive = everything[2]["ts"].removesuffix("Z")
    response = httpx.get(base + "/v1/audit/events", params={"since": naive, "action": "search"}, headers=_auth(settings))
    assert [e["seq"] for e in _lines(response)] == [3]

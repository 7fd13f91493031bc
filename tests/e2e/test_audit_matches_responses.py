"""What the auditors export is exactly what the users were shown."""

import json

import pytest

from tests.e2e.test_query_path import CORPUS, QUESTION
from tests.support.gateway import ingest, live_gateway

pytestmark = [pytest.mark.e2e]


def _events(auditor, **params):
    response = auditor.get("/v1/audit/events", params={"format": "jsonl", **params})
    assert response.status_code == 200
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def test_export_and_document_report_match_what_each_user_received(settings, embedder):
    with live_gateway(settings, embedder=embedder) as gw:
        written = {doc["external_id"]: doc["id"] for doc in ingest(gw, CORPUS)}
        shown = {}
        with gw.client("alice", groups=["finance"], tenant="acme", clearance="confidential") as alice, \
                gw.client("bob", groups=["engineering"], tenant="acme") as bob:
            for name, client in (("alice", alice), ("bob", bob)):
                body = client.post("/v1/search", json={"query": QUESTION, "top_k": 3}).json()
                shown[body["audit_id"]] = (name, [r["chunk_id"] for r in body["results"]])
        with gw.client("carol", roles=["auditor"], tenant="acme") as auditor:
            exported = {e["id"]: e for e in _events(auditor, action="search")}
            report = auditor.get(f"/v1/audit/reports/document/{written['fin-exec-travel']}")
            verify = auditor.get("/v1/audit/verify").json()
    for audit_id, (subject, chunk_ids) in shown.items():
        event = exported[audit_id]
        assert event["subject"] == subject
        assert [s["chunk_id"] for s in event["sources"]] == chunk_ids
    assert report.status_code == 200
    recipients = {r["subject"] for r in report.json()["recipients"]}
    assert recipients == {"alice"}
    assert verify["ok"] is True

"""/metrics exposes what operators alert on, observed from real traffic."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from litestar import get
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.auth.devkeys import mint_dev_token
from gateway.auth.guards import requires_role
from gateway.settings import LLMSettings
from tests.reliability.conftest import QUESTION, tight
from tests.support.llm import stand_in_llm
from tests.support.server import serve_in_thread

pytestmark = [pytest.mark.e2e]


@get("/v1/test-only/admin", guards=[requires_role("admin")], include_in_schema=False,
     opt={"audit_action": "admin_test"})
async def admin_only() -> dict[str, str]:
    """A stand-in for an admin endpoint (the role guard refuses plain users)."""
    return {"ok": "yes"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition as {(name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_expose_requests_retrieval_audit_auth_policy_llm_and_pool(settings, corpus_db, embedder):
    with stand_in_llm() as (llm_url, llm):
        gw_settings = tight(settings, corpus_db.runtime).replace(
            llm=LLMSettings(base_url=llm_url, model="stand-in", timeout_s=2))
        app = create_app(gw_settings, embedder=embedder)
        app.register(admin_only)
        token = mint_dev_token(gw_settings, sub="ann", tenant="acme")
        auth: dict[str, Any] = {"Authorization": f"Bearer {token}"}
        with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=10) as c:
            assert c.post("/v1/search", json={"query": QUESTION}, headers=auth).status_code == 200
            assert c.post("/v1/query", json={"query": QUESTION}, headers=auth).status_code == 200
            llm.mode = "garbage"
            assert c.post("/v1/query", json={"query": QUESTION}, headers=auth).status_code == 502
            anonymous = c.post("/v1/search", json={"query": QUESTION})
            assert anonymous.status_code == 401
            assert anonymous.headers["x-request-id"] == anonymous.json()["request_id"]
            bad = {"Authorization": "Bearer not.a.token"}
            assert c.post("/v1/search", json={"query": QUESTION}, headers=bad).status_code == 401
            assert c.get("/v1/test-only/admin", headers=auth).status_code == 403
            assert c.get(f"/v1/documents/{uuid.uuid4()}", headers=auth).status_code == 404
            exposition = c.get("/metrics")
    assert exposition.headers["content-type"].startswith("text/plain")
    found = samples(exposition.text)

    assert value(found, "gateway_requests_total", route="/v1/search", method="POST", status="200") == 1
    assert value(found, "gateway_requests_total", route="/v1/search", method="POST", status="401") == 2
    assert value(found, "gateway_requests_total", route="/v1/query", method="POST", status="502") == 1
    assert value(found, "gateway_request_seconds_count", route="/v1/query", method="POST") == 2
    assert sum(v for (name, _), v in found.items() if name == "gateway_retrieval_seconds_count") >= 3
    assert value(found, "gateway_audit_write_seconds_count") >= 4  # 3 retrievals + 1 failure (+403)
    assert value(found, "gateway_auth_failures_total", reason="no credentials") == 1
    assert sum(v for (name, _), v in found.items() if name == "gateway_auth_failures_total") == 2
    assert value(found, "gateway_policy_denials_total", action="admin_test") == 1
    assert value(found, "gateway_policy_denials_total", action="document.read") == 1  # once
    assert value(found, "gateway_llm_seconds_count") == 2
    assert value(found, "gateway_llm_errors_total", kind="bad_response") == 1
    assert value(found, "gateway_db_pool_size") == 4
    assert ("gateway_db_pool_in_use", ()) in found
    assert ("gateway_requests_in_flight", ()) in found

"""The LLM upstream misbehaving (through a fault proxy, or answering garbage): 504/502, audited,
and the worker keeps serving."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from gateway.settings import LLMSettings
from tests.reliability.conftest import QUESTION, audit_events, tight
from tests.support.faultproxy import FaultProxy, fault_proxy
from tests.support.gateway import LiveGateway, live_gateway
from tests.support.llm import StandInLLM, stand_in_llm

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

LLM_TIMEOUT_S = 1.5


@pytest.fixture
def llm_behind_proxy(settings, embedder, corpus_db) -> Iterator[tuple[LiveGateway, StandInLLM, FaultProxy]]:
    with stand_in_llm() as (llm_url, llm):
        port = int(llm_url.rsplit(":", 1)[1].split("/")[0])
        with fault_proxy(("127.0.0.1", port)) as proxy:
            llm_settings = LLMSettings(base_url=f"http://127.0.0.1:{proxy.port}/v1", model="stand-in",
                                       timeout_s=LLM_TIMEOUT_S)
            gw_settings = tight(settings, corpus_db.runtime).replace(llm=llm_settings)
            with live_gateway(gw_settings, embedder=embedder) as gw:
                yield gw, llm, proxy


def _failure_of(db_urls, response) -> tuple:
    """The retrieval event named by the problem body and the failure event that points at it."""
    body = response.json()
    retrieval = audit_events(db_urls, "id = %s::uuid", body["audit_id"])
    failure = audit_events(db_urls, "detail->>'retrieval_event' = %s", body["audit_id"])
    return retrieval, failure


@pytest.mark.parametrize(("fault", "status"), [
    ("latency", 504),    # bytes arrive, but too slowly for the LLM timeout
    ("blackhole", 504),  # connected, nothing ever comes back
    ("reset", 502),      # connections reset
    ("refuse", 502),     # nothing listens
    ("garbage", 502),    # the upstream answers HTML
    ("error", 502),      # the upstream answers 500
])
def test_llm_fault_gives_gateway_error_is_audited_and_worker_stays_healthy(
    llm_behind_proxy, corpus_db, fault, status
):
    gw, llm, proxy = llm_behind_proxy
    if fault in ("garbage", "error"):
        llm.mode = fault
    else:
        proxy.set_mode(fault, latency_s=LLM_TIMEOUT_S + 1)
    with gw.client("ann", tenant="acme") as client:
        started = time.monotonic()
        failed = client.post("/v1/query", json={"query": QUESTION})
        elapsed = time.monotonic() - started
        assert failed.status_code == status, failed.text
        assert failed.headers["content-type"].startswith("application/problem+json")
        assert elapsed < LLM_TIMEOUT_S + 1.5
        assert "127.0.0.1" not in failed.text and "html" not in failed.text.lower()
        retrieval, failure = _failure_of(corpus_db, failed)
        assert [r[3] for r in retrieval] == ["retrieved"] and retrieval[0][4] > 0
        assert [(r[2], r[3]) for r in failure] == [("query", "failed")]

        proxy.set_mode("pass")
        llm.mode = "answer"
        healthy = client.post("/v1/query", json={"query": QUESTION})
    assert healthy.status_code == 200, healthy.text
    assert healthy.json()["answer"]


def test_llm_reset_mid_stream_ends_the_stream_with_an_audited_error(llm_behind_proxy, corpus_db):
    gw, llm, proxy = llm_behind_proxy
    proxy.set_mode("reset")
    with gw.client("ann", tenant="acme") as client:
        response = client.post("/v1/query", json={"query": QUESTION, "stream": True})
    assert response.status_code == 200  # the stream had started: its sources were audited
    blocks = [b for b in response.text.split("\n\n") if b.strip()]
    error = next(b for b in blocks if "event: error" in b)
    data = json.loads(next(line[6:] for line in error.splitlines() if line.startswith("data: ")))
    assert data["status"] == 502
    failure = audit_events(corpus_db, "detail->>'retrieval_event' = %s", data["audit_id"])
    assert [(r[2], r[3]) for r in failure] == [("query", "failed")]

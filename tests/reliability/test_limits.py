"""Every input and every wait is bounded: headers, body, query, top_k, concurrency, time."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import socket
import time

import httpx
import pytest

from gateway.settings import LLMSettings, RetrievalSettings
from tests.reliability.conftest import QUESTION, audit_events, tight
from tests.support.gateway import live_gateway
from tests.support.llm import stand_in_llm

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def bounded(settings, corpus_db):
    """Small limits, so that crossing each is cheap to show."""
    base = tight(settings, corpus_db.runtime, max_header_bytes=4096, max_body_bytes=2048)
    return base.replace(retrieval=RetrievalSettings(max_query_chars=200, max_top_k=5, default_top_k=3))


def _raw_request(base_url: str, header_bytes: int) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * header_bytes
                     + b"\r\n\r\n")
        return conn.recv(4096)


def test_oversized_headers_are_refused_before_reaching_the_app(bounded, embedder):
    with live_gateway(bounded, embedder=embedder) as gw:
        small = _raw_request(gw.base_url, 1000)
        huge = _raw_request(gw.base_url, 6000)
    assert small.startswith(b"HTTP/1.1 200")
    assert huge.startswith(b"HTTP/1.1 431")  # whole headers read in one go: the middleware bound


def test_headers_trickling_in_past_the_bound_are_refused_by_the_parser(bounded, embedder):
    with live_gateway(bounded, embedder=embedder) as gw:
        host, port = gw.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
            try:
                for _ in range(64):  # never ending the header block
                    conn.sendall(b"X-Padding: " + b"a" * 1000 + b"\r\n")
                    time.sleep(0.005)
            except OSError:
                pass  # the server may close before we stop writing
            reply = conn.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400")  # h11 stops buffering at GATEWAY_MAX_HEADER_BYTES


def test_oversized_body_is_413_problem(bounded, embedder):
    with live_gateway(bounded, embedder=embedder) as gw, gw.client("ann", tenant="acme") as c:
        response = c.post("/v1/search", json={"query": "x" * 4000})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(("payload", "field"), [
    ({"query": "q" * 201}, "query"),
    ({"query": QUESTION, "top_k": 6}, "top_k"),
    ({"query": QUESTION, "top_k": 0}, "top_k"),
])
def test_query_length_and_top_k_beyond_limits_are_422(bounded, embedder, payload, field):
    with live_gateway(bounded, embedder=embedder) as gw, gw.client("ann", tenant="acme") as c:
        for path in ("/v1/search", "/v1/query"):
            response = c.post(path, json=payload)
            assert response.status_code == 422, response.text
            assert field in response.text


def test_requests_beyond_the_concurrency_limit_get_503_at_once_not_a_queue(settings, corpus_db, embedder):
    with stand_in_llm() as (llm_url, llm):
        llm.delay_s = 1.5
        limited = tight(settings, corpus_db.runtime, max_concurrency=2).replace(
            llm=LLMSettings(base_url=llm_url, model="stand-in", timeout_s=3))
        with live_gateway(limited, embedder=embedder) as gw, gw.client("ann", tenant="acme") as c:
            with concurrent.futures.ThreadPoolExecutor(5) as pool:
                first = [pool.submit(_finished, c, "/v1/query") for _ in range(2)]
                _wait_until(lambda: len(llm.received) == 2, 10)  # both slots are taken
                rest = [pool.submit(_finished, c, "/v1/search") for _ in range(3)]
                done = [f.result() for f in first + rest]
            metrics = httpx.get(f"{gw.base_url}/metrics").text
    assert [r.status_code for r, _ in done] == [200, 200, 503, 503, 503]
    # Refused on arrival, not queued: every refusal is answered while both slow requests
    # still wait for the LLM (1.5 s); a queued one would wait for a slot to free.
    assert max(at for _, at in done[2:]) < min(at for _, at in done[:2])
    for response, _ in done[2:]:
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"].startswith("application/problem+json")
    assert "gateway_overload_rejections_total 3.0" in metrics


def test_request_deadline_answers_503_on_time_and_the_worker_carries_on(settings, corpus_db, embedder):
    with stand_in_llm() as (llm_url, llm):
        llm.mode = "hang"
        # An LLM timeout longer than the deadline is refused by load_settings; built here
        # directly to show the deadline is a backstop for any hang.
        hanging = tight(settings, corpus_db.runtime, request_timeout_s=1.0).replace(
            llm=LLMSettings(base_url=llm_url, model="stand-in", timeout_s=30))
        with live_gateway(hanging, embedder=embedder) as gw, gw.client("ann", tenant="acme") as c:
            response, elapsed = _timed(c, "/v1/query")
            after = c.post("/v1/search", json={"query": QUESTION})
            metrics = httpx.get(f"{gw.base_url}/metrics").text
    assert response.status_code == 503 and 1.0 <= elapsed < 2.0
    assert response.headers["retry-after"] == "1"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert after.status_code == 200
    assert "gateway_request_deadline_exceeded_total 1.0" in metrics
    # The sources were audited before generation began; the request then ran out of time.
    assert audit_events(corpus_db, "request_id = %s", response.headers["x-request-id"])


def _timed(client: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.post(path, json={"query": QUESTION})
    return response, time.monotonic() - started


def _finished(client: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    response = client.post(path, json={"query": QUESTION})
    return response, time.monotonic()


def _wait_until(condition, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s}s")
        time.sleep(0.02)


def test_settings_refuse_a_request_deadline_shorter_than_the_llm_timeout():
    from gateway.errors import ConfigurationError
    from gateway.settings import load_settings

    with pytest.raises(ConfigurationError, match="GATEWAY_REQUEST_TIMEOUT_SECONDS"):
        load_settings({"GATEWAY_REQUEST_TIMEOUT_SECONDS": "10", "GATEWAY_LLM_TIMEOUT_SECONDS": "30"},
                      dotenv=None)
    assert dataclasses.is_dataclass(load_settings({}, dotenv=None).server)

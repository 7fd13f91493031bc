"""PostgreSQL misbehaving behind a fault proxy: quick 503s, no leaks, recovery without restart."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time

import httpx
import pytest

from tests.reliability.conftest import QUESTION, audit_events
from tests.support.gateway import live_gateway

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

# What an error body must never contain: SQL, driver and library names, addresses, traces.
LEAKS = ("select ", "insert ", "psycopg", "sqlalchemy", "postgres", "traceback", 'file "',
         "127.0.0.1", "gateway_app", ".s.pgsql", "/tmp", "operationalerror", "connection refused")


def assert_no_leak(response: httpx.Response, *secrets: str) -> None:
    body = response.text.lower()
    for needle in (*LEAKS, *(s.lower() for s in secrets)):
        assert needle not in body, f"{needle!r} leaked in {response.text}"


def search(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/search", json={"query": QUESTION, "top_k": 3})


@pytest.mark.parametrize(("mode", "bound_s"), [("refuse", 2.5), ("reset", 2.5), ("blackhole", 6.0)])
def test_database_down_gives_quick_503_not_ready_and_no_leaks_then_recovers(
    proxied_settings, embedder, db_proxy, corpus_db, mode, bound_s
):
    with live_gateway(proxied_settings, embedder=embedder) as gw, gw.client("ann", tenant="acme") as c:
        assert search(c).status_code == 200  # the pool holds live connections now
        db_proxy.set_mode(mode)
        for path, call in (("/v1/search", lambda: search(c)),
                           ("/v1/query", lambda: c.post("/v1/query", json={"query": QUESTION})),
                           ("/health/ready", lambda: httpx.get(f"{gw.base_url}/health/ready"))):
            started = time.monotonic()
            response = call()
            elapsed = time.monotonic() - started
            assert response.status_code == 503, (path, response.text)
            assert elapsed < bound_s, (path, elapsed)
            assert response.headers["retry-after"]
            assert response.headers["content-type"].startswith("application/problem+json")
            assert_no_leak(response, str(db_proxy.port))

        db_proxy.set_mode("pass")
        recovered_at = _wait_for_200(lambda: search(c), within_s=8)
        assert httpx.get(f"{gw.base_url}/health/ready").status_code == 200
        body = search(c).json()
    assert recovered_at < 8
    assert [r["external_id"] for r in body["results"]]
    assert audit_events(corpus_db, "id = %s::uuid", body["audit_id"])


def _wait_for_200(call, *, within_s: float) -> float:
    started = time.monotonic()
    while True:
        response = call()
        if response.status_code == 200:
            return time.monotonic() - started
        assert response.status_code == 503, response.text
        if time.monotonic() - started > within_s:
            raise AssertionError(f"not recovered after {within_s}s: {response.text}")
        time.sleep(0.2)


def test_exhausted_pool_answers_503_within_the_pool_timeout(proxied_settings, embedder, db_proxy):
    one_connection = dataclasses.replace(proxied_settings.database, pool_size=1, pool_timeout_s=0.5)
    settings = proxied_settings.replace(database=one_connection)
    with live_gateway(settings, embedder=embedder) as gw, gw.client("ann", tenant="acme") as c:
        assert search(c).status_code == 200
        db_proxy.set_mode("latency", latency_s=0.05)  # a search now holds its connection ~1 s
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            timed = list(pool.map(lambda _: _timed(lambda: search(c)), range(4)))
    statuses = sorted(r.status_code for r, _ in timed)
    assert 200 in statuses and 503 in statuses, statuses
    assert set(statuses) <= {200, 503}
    for response, elapsed in timed:
        if response.status_code == 503:
            assert elapsed < 0.5 + 1.0, elapsed
            assert response.headers["retry-after"]
            assert_no_leak(response)


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started

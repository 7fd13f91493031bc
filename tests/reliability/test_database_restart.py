"""PostgreSQL stopped and started again while queries keep coming: no 500, no unaudited 200."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.db import migrate
from gateway.db.embedded import EmbeddedDatabase
from gateway.settings import Settings
from tests.reliability.conftest import CORPUS, audit_events, tight
from tests.support.corpus import load_documents
from tests.support.gateway import live_gateway

pytestmark = [pytest.mark.fault, pytest.mark.e2e, pytest.mark.slow]

QUESTIONS = ["How many days of paid leave do employees get?", "What is the hotel budget per night?",
             "How often are laptops replaced?", "Can I work from home?"]


class OwnServer:
    """A dedicated embedded PostgreSQL for one test (the session's server is shared)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.handle: EmbeddedDatabase | None = EmbeddedDatabase(data_dir)
        self.urls = self.handle.prepare()
        migrate.upgrade(self.urls.owner)

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are terminated, as in a failover)."""
        assert self.handle is not None
        self.handle.stop()
        self.handle = None

    def start(self) -> None:
        self.handle = EmbeddedDatabase(self.data_dir)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[OwnServer]:
    server = OwnServer(tmp_path / "own-pg")
    yield server
    if server.handle is not None:
        server.stop()


def _wait_until(condition, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s}s")
        time.sleep(0.1)


class Load:
    """Clients sending searches and extractive queries in a loop until told to stop."""

    def __init__(self, base_url: str, tokens: list[str]) -> None:
        self.base_url = base_url
        self.tokens = tokens
        self.results: list[tuple[float, str, int, dict]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(len(tokens))]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.tokens[n]}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=20) as client:
            i = 0
            while not self.stop.is_set():
                path = "/v1/search" if (n + i) % 2 else "/v1/query"
                payload = {"query": QUESTIONS[(n + i) % len(QUESTIONS)], "top_k": 3}
                try:
                    response = client.post(path, json=payload)
                    body = response.json()
                    status = response.status_code
                except httpx.TransportError:
                    body, status = {}, 0
                with self.lock:
                    self.results.append((time.monotonic(), path, status, body))
                i += 1

    def count(self, status: int, after: float = 0.0) -> int:
        with self.lock:
            return sum(1 for at, _, s, _ in self.results if s == status and at > after)


def test_database_restart_during_load_loses_no_audit_event_and_gives_no_500(
    own_server: OwnServer, settings: Settings, embedder, wordpiece
):
    urls = own_server.urls
    asyncio.run(load_documents(urls.runtime, settings, embedder, CORPUS, tokenizer=wordpiece))
    gw_settings = tight(settings, urls.runtime)
    with live_gateway(gw_settings, embedder=embedder) as gw:
        tokens = [gw.token(f"user{n}", tenant="acme", groups=["finance"] if n % 2 else [])
                  for n in range(4)]
        with Load(gw.base_url, tokens) as load:
            _wait_until(lambda: load.count(200) >= 8, 20)
            own_server.stop()
            stopped = time.monotonic()
            _wait_until(lambda: load.count(503, after=stopped) >= 4, 10)
            own_server.start()
            restarted = time.monotonic()
            _wait_until(lambda: load.count(200, after=restarted + 0.5) >= 8, 20)
    results = load.results
    counts = {st: sum(1 for r in results if r[2] == st) for st in {r[2] for r in results}}
    assert set(counts) <= {200, 503}, counts
    assert counts.get(503), counts  # the outage was seen...
    answered = [(path, body) for _, path, s, body in results if s == 200]
    audited = {row[0]: row for row in audit_events(urls, "action IN ('search', 'query')")}
    for path, body in answered:  # ...yet every answer given has its complete audit record
        event = audited.get(body["audit_id"])
        assert event is not None, f"{path} answered without an audit event"
        returned = body["results"] if path == "/v1/search" else body["citations"]
        assert event[3] == "retrieved" and event[4] >= len(returned) and event[4] == 3

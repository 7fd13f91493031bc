"""`gateway serve` told to stop during requests: those in flight finish and are audited."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from gateway.auth.devkeys import mint_dev_token
from tests.reliability.conftest import QUESTION, audit_events
from tests.support.llm import stand_in_llm
from tests.support.process import gateway_env, gateway_process

pytestmark = [pytest.mark.fault, pytest.mark.e2e, pytest.mark.slow]

IN_FLIGHT = 6
LLM_DELAY_S = 1.5


def _post(base: str, token: str, path: str, results: list, lock: threading.Lock) -> None:
    payload = {"query": QUESTION, "top_k": 3}
    try:
        response = httpx.post(f"{base}{path}", json=payload, timeout=30,
                              headers={"Authorization": f"Bearer {token}"})
        outcome = (path, response.status_code, response.json())
    except httpx.TransportError as exc:  # refused or closed: never answered
        outcome = (path, 0, {"error": type(exc).__name__})
    with lock:
        results.append(outcome)


def _keep_searching(base: str, token: str, until: threading.Event, results: list,
                    lock: threading.Lock) -> None:
    while not until.is_set():
        _post(base, token, "/v1/search", results, lock)
        with lock:
            if results[-1][1] == 0:  # the listener is gone
                return


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_lets_requests_in_flight_finish_with_their_audit_events(
    tmp_path: Path, corpus_db, settings, signum
):
    data_dir = tmp_path / "gw"
    token = mint_dev_token(settings.replace(database=dataclasses.replace(settings.database, data_dir=data_dir)),
                           sub="ann", tenant="acme")
    results: list = []
    lock = threading.Lock()
    with stand_in_llm() as (llm_url, llm):
        env = gateway_env({"DATABASE_URL": corpus_db.runtime, "GATEWAY_DATA_DIR": str(data_dir),
                           "GATEWAY_LLM_BASE_URL": llm_url, "GATEWAY_LLM_MODEL": "stand-in",
                           "GATEWAY_SHUTDOWN_TIMEOUT_SECONDS": "15"})
        with gateway_process(env, tmp_path) as gateway:
            warm = httpx.post(f"{gateway.base_url}/v1/query", json={"query": QUESTION}, timeout=60,
                              headers={"Authorization": f"Bearer {token}"})
            assert warm.status_code == 200, warm.text
            llm.delay_s = LLM_DELAY_S
            before = len(llm.received)
            stop_searching = threading.Event()
            threads = [threading.Thread(target=_post, args=(gateway.base_url, token, "/v1/query",
                                                            results, lock)) for _ in range(IN_FLIGHT)]
            threads.append(threading.Thread(target=_keep_searching, args=(
                gateway.base_url, token, stop_searching, results, lock)))
            for thread in threads:
                thread.start()
            _wait_until(lambda: len(llm.received) - before == IN_FLIGHT, 20)  # all are generating
            gateway.proc.send_signal(signum)
            exit_code = gateway.proc.wait(timeout=30)
            stop_searching.set()
            for thread in threads:
                thread.join(timeout=30)
    output = gateway.output()
    assert exit_code == 0, output
    assert "Traceback" not in output and "unhandled_error" not in output

    queries = [r for r in results if r[0] == "/v1/query"]
    assert [status for _, status, _ in queries] == [200] * IN_FLIGHT  # in flight: finished
    assert {status for _, status, _ in results} <= {200, 503, 0}
    audited = {row[0]: row for row in audit_events(corpus_db)}
    answered = [body for _, status, body in results if status == 200]
    assert len(answered) > IN_FLIGHT  # some searches were answered too, up to the signal
    for body in answered:
        event = audited.get(body["audit_id"])
        assert event is not None, "an answer was given without its audit event"
        assert event[3] == "retrieved" and event[4] == 3  # all of its sources, none half-written


def _wait_until(condition, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s}s")
        time.sleep(0.05)

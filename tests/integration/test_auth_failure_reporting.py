"""Every failed authentication is counted by reason and logged, never with the token."""

from __future__ import annotations

import re
import time

import pytest
from litestar.testing import TestClient
from structlog.testing import capture_logs

from gateway.app import create_app
from gateway.auth.devkeys import mint_dev_token

pytestmark = pytest.mark.integration


def failures_by_reason(metrics_text: str) -> dict[str, float]:
    pattern = re.compile(r'^gateway_auth_failures_total\{reason="([^"]+)"\} (\S+)$', re.MULTILINE)
    return {reason: float(value) for reason, value in pattern.findall(metrics_text)}


def test_failures_are_counted_by_reason_and_logged_without_the_token(settings):
    good = mint_dev_token(settings, sub="alice")
    expired = mint_dev_token(settings, sub="alice", attributes={"exp": int(time.time()) - 3600})
    head, body, signature = good.split(".")
    forged = f"{head}.{body}.{signature[:-6]}AAAAAA"
    with TestClient(create_app(settings)) as client, capture_logs() as logs:
        assert client.get("/v1/me").status_code == 401
        for token in (expired, expired, forged):
            assert client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert client.get("/v1/me", headers={"Authorization": "Basic YTpi"}).status_code == 401
        assert client.get("/v1/me", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        counted = failures_by_reason(client.get("/metrics").text)
    assert counted == {"no credentials": 1.0, "expired": 2.0, "bad signature": 1.0,
                       "unsupported scheme": 1.0}
    failures = [e for e in logs if e["event"] == "authentication_failed"]
    assert [e["reason"].split(":")[0] for e in failures] == [
        "no credentials", "expired", "expired", "bad signature", "unsupported scheme"]
    assert all(e["path"] == "/v1/me" and e["log_level"] == "warning" for e in failures)
    everything_logged = repr(logs)
    for secret in (good, expired, forged, signature, "YTpi"):
        assert secret not in everything_logged


def test_problem_body_does_not_say_which_check_failed(settings):
    expired = mint_dev_token(settings, sub="alice", attributes={"exp": int(time.time()) - 3600})
    wrong_audience = mint_dev_token(settings, sub="alice", attributes={"aud": "another-api"})
    with TestClient(create_app(settings)) as client:
        bodies = [client.get("/v1/me", headers={"Authorization": f"Bearer {t}"}).json()
                  for t in (expired, wrong_audience, "x.y.z")]
    for body in bodies:
        body.pop("request_id")
    assert bodies[0] == bodies[1] == bodies[2] == {
        "type": "about:blank", "title": "Unauthorized", "status": 401,
        "detail": "Missing or invalid bearer token.",
    }

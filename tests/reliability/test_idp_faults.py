"""The IdP unreachable behind a fault proxy: cached keys keep working, unknown keys get 401."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.reliability.conftest import QUESTION, tight
from tests.support.faultproxy import FaultProxy, fault_proxy
from tests.support.gateway import LiveGateway, live_gateway
from tests.support.idp import AUDIENCE, StubIdp, oidc_settings
from tests.support.jose import SigningKey, access_claims

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

JWKS_TIMEOUT_S = 1.0


@pytest.fixture
def idp_behind_proxy(settings, corpus_db, embedder) -> Iterator[tuple[LiveGateway, StubIdp, FaultProxy, SigningKey]]:
    key = SigningKey.rsa("k1")
    with StubIdp([key]) as idp, fault_proxy(("127.0.0.1", idp.port)) as proxy:
        proxied = f"http://127.0.0.1:{proxy.port}/jwks.json"
        gw_settings = oidc_settings(tight(settings, corpus_db.runtime), idp, jwks_url=proxied,
                                    jwks_timeout_s=JWKS_TIMEOUT_S, jwks_min_refresh_s=0.2)
        with live_gateway(gw_settings, embedder=embedder) as gw:
            yield gw, idp, proxy, key


def _search(gw: LiveGateway, token: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(f"{gw.base_url}/v1/search", json={"query": QUESTION},
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return response, time.monotonic() - started


@pytest.mark.parametrize("mode", ["blackhole", "reset", "refuse"])
def test_idp_down_cached_keys_keep_working_and_unknown_keys_get_401(idp_behind_proxy, mode):
    gw, idp, proxy, key = idp_behind_proxy
    cached = key.sign(access_claims(idp.issuer, AUDIENCE, sub="ann", tenant="acme"))
    assert _search(gw, cached)[0].status_code == 200

    proxy.set_mode(mode)
    rotated = SigningKey.rsa("k2")
    idp.keys.append(rotated)  # published, but unreachable for now
    unknown = rotated.sign(access_claims(idp.issuer, AUDIENCE, sub="bob", tenant="acme"))
    for _ in range(3):
        refused, refused_s = _search(gw, unknown)
        assert refused.status_code == 401, refused.text
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        assert refused_s < JWKS_TIMEOUT_S + 1.0  # the JWKS fetch is bounded
        assert str(proxy.port) not in refused.text and "jwks" not in refused.text.lower()
        answered, answered_s = _search(gw, cached)
        assert answered.status_code == 200
        assert answered_s < 1.0  # never stalled behind the IdP
        time.sleep(0.25)  # past the refetch rate limit: each unknown kid tries the IdP again

    proxy.set_mode("pass")
    deadline = time.monotonic() + 5
    while (status := _search(gw, unknown)[0].status_code) != 200 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert status == 200  # the IdP is back: the new key is fetched without a restart
    metrics = httpx.get(f"{gw.base_url}/metrics").text
    assert 'gateway_auth_failures_total{reason="no key"} 3.0' in metrics

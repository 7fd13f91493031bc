"""Production mode through the whole app: IdP keys, rotation, outages, dev tokens refused."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.auth.devkeys import mint_dev_token
from gateway.errors import ConfigurationError
from tests.support.idp import AUDIENCE, StubIdp, oidc_settings
from tests.support.jose import SigningKey, access_claims

pytestmark = pytest.mark.integration


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.rsa("k1")


@pytest.fixture
def idp(key):
    with StubIdp([key]) as server:
        yield server


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll until `condition` holds (keys refreshed in the background), or give up."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_idp_token_is_accepted_and_claims_are_mapped(settings, idp, key):
    token = key.sign(access_claims(idp.issuer, AUDIENCE, sub="bob", groups=["finance", "legal"],
                                   roles=["auditor"], tenant="acme", clearance="confidential"))
    with TestClient(create_app(oidc_settings(settings, idp))) as client:
        body = client.get("/v1/me", headers=bearer(token)).json()
    assert body["subject"] == "bob"
    assert body["issuer"] == idp.issuer
    assert (body["tenant"], body["groups"], body["roles"]) == ("acme", ["finance", "legal"], ["auditor"])
    assert body["clearance"] == "confidential"


@pytest.mark.parametrize("factory", [SigningKey.ec, SigningKey.ed25519,
                                     lambda kid: SigningKey.rsa(kid, alg="PS256")],
                         ids=["ES256", "EdDSA", "PS256"])
def test_every_allowed_algorithm_family_verifies(settings, idp, factory):
    other = factory("k-other")
    idp.keys.append(other)
    with TestClient(create_app(oidc_settings(settings, idp))) as client:
        response = client.get("/v1/me", headers=bearer(other.sign(access_claims(idp.issuer, AUDIENCE))))
    assert response.status_code == 200


def test_dev_tokens_are_rejected_in_oidc_mode(settings, idp):
    dev_token = mint_dev_token(settings, sub="mallory", roles=["admin"])
    with TestClient(create_app(oidc_settings(settings, idp))) as client:
        response = client.get("/v1/me", headers=bearer(dev_token))
    assert response.status_code == 401


def test_no_jwks_is_published_in_oidc_mode(settings, idp):
    with TestClient(create_app(oidc_settings(settings, idp))) as client:
        response = client.get("/.well-known/jwks.json")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_token_without_kid_uses_the_only_key_of_its_type(settings, idp, key):
    idp.keys.append(SigningKey.ec("k-ec"))
    token = key.sign(access_claims(idp.issuer, AUDIENCE), kid=None)
    app = create_app(oidc_settings(settings, idp, jwks_max_age_s=0.2, jwks_min_refresh_s=0.1))
    with TestClient(app) as client:
        assert client.get("/v1/me", headers=bearer(token)).status_code == 200
        idp.keys.append(SigningKey.rsa("k-second-rsa"))
        time.sleep(0.3)
        # once a second RSA key is published (and fetched), a kid-less RSA token is ambiguous
        assert eventually(lambda: client.get("/v1/me", headers=bearer(token)).status_code == 401)


def test_rotation_at_the_idp_is_accepted_without_restart(settings, idp, key):
    app = create_app(oidc_settings(settings, idp, jwks_min_refresh_s=0.2))
    new_key = SigningKey.rsa("k2")
    with TestClient(app) as client:
        assert client.get("/v1/me", headers=bearer(key.sign(access_claims(idp.issuer, AUDIENCE)))).status_code == 200
        idp.keys = [key, new_key]
        time.sleep(0.3)
        fresh = new_key.sign(access_claims(idp.issuer, AUDIENCE, sub="carol"))
        response = client.get("/v1/me", headers=bearer(fresh))
        assert response.status_code == 200
        assert response.json()["subject"] == "carol"


def test_idp_outage_after_keys_are_cached(settings, idp, key):
    app = create_app(oidc_settings(settings, idp))  # default 30 s between refetches
    cached = key.sign(access_claims(idp.issuer, AUDIENCE))
    with TestClient(app) as client:
        assert client.get("/v1/me", headers=bearer(cached)).status_code == 200
        idp.failing = True
        fetches = idp.count("/.well-known/openid-configuration")
        attacker = SigningKey.rsa("unknown-kid")
        for n in range(10):
            forged = attacker.sign(access_claims(idp.issuer, AUDIENCE, sub=f"x{n}"))
            assert client.get("/v1/me", headers=bearer(forged)).status_code == 401
        assert idp.count("/.well-known/openid-configuration") - fetches <= 1
        idp.stop()
        for _ in range(3):
            assert client.get("/v1/me", headers=bearer(cached)).status_code == 200
        assert client.get("/v1/me", headers=bearer(attacker.sign(access_claims(idp.issuer, AUDIENCE)))).status_code == 401


def test_gateway_starts_with_the_idp_down_and_accepts_tokens_once_it_is_back(settings, idp, key):
    token = key.sign(access_claims(idp.issuer, AUDIENCE))
    idp.stop()
    app = create_app(oidc_settings(settings, idp, jwks_min_refresh_s=0.2))
    with TestClient(app) as client:
        assert client.get("/health/live").status_code == 200
        response = client.get("/v1/me", headers=bearer(token))
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        idp.start()
        time.sleep(0.3)
        assert client.get("/v1/me", headers=bearer(token)).status_code == 200


def test_discovery_naming_another_issuer_stops_startup(settings, idp):
    idp.announced_issuer = "https://login.attacker.example"
    app = create_app(oidc_settings(settings, idp))
    with pytest.raises(BaseException) as caught, TestClient(app):
        pass
    assert caught.group_contains(ConfigurationError, match="must be identical")


def test_fixed_jwks_url_is_used_without_discovery(settings, idp, key):
    app = create_app(oidc_settings(settings, idp, jwks_url=idp.jwks_url))
    with TestClient(app) as client:
        token = key.sign(access_claims(idp.issuer, AUDIENCE))
        assert client.get("/v1/me", headers=bearer(token)).status_code == 200
    assert idp.count("/.well-known/openid-configuration") == 0


def test_nbf_and_iat_are_honoured_within_the_configured_leeway(settings, idp, key):
    now = int(time.time())
    slightly_early = key.sign(access_claims(idp.issuer, AUDIENCE, nbf=now + 20, iat=now + 20))
    too_early = key.sign(access_claims(idp.issuer, AUDIENCE, nbf=now + 90, iat=now))
    just_expired = key.sign(access_claims(idp.issuer, AUDIENCE, exp=now - 20))
    with TestClient(create_app(oidc_settings(settings, idp, leeway_s=60))) as client:
        assert client.get("/v1/me", headers=bearer(slightly_early)).status_code == 200
        assert client.get("/v1/me", headers=bearer(just_expired)).status_code == 200
        assert client.get("/v1/me", headers=bearer(too_early)).status_code == 401
    with TestClient(create_app(oidc_settings(settings, idp, leeway_s=0))) as client:
        assert client.get("/v1/me", headers=bearer(slightly_early)).status_code == 401
        assert client.get("/v1/me", headers=bearer(just_expired)).status_code == 401


def test_access_token_type_is_required_only_when_configured(settings, idp, key):
    plain_jwt = key.sign(access_claims(idp.issuer, AUDIENCE), typ="JWT")
    media_type = key.sign(access_claims(idp.issuer, AUDIENCE), typ="application/at+jwt")
    with TestClient(create_app(oidc_settings(settings, idp))) as client:
        assert client.get("/v1/me", headers=bearer(plain_jwt)).status_code == 200
    with TestClient(create_app(oidc_settings(settings, idp, require_at_jwt=True))) as client:
        assert client.get("/v1/me", headers=bearer(plain_jwt)).status_code == 401
        assert client.get("/v1/me", headers=bearer(media_type)).status_code == 200


def test_id_token_for_a_client_is_not_an_access_token_for_the_gateway(settings, idp, key):
    id_token = key.sign(access_claims(idp.issuer, "some-spa-client-id", nonce="n-1",
                                      at_hash="abc"), typ="JWT")
    with TestClient(create_app(oidc_settings(settings, idp))) as client:
        assert client.get("/v1/me", headers=bearer(id_token)).status_code == 401

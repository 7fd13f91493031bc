"""Dev mode: the gateway's own key mints tokens that go through the normal verification."""

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.auth.devkeys import mint_dev_token

pytestmark = pytest.mark.integration


def test_dev_token_is_accepted_and_mapped(settings):
    token = mint_dev_token(settings, sub="alice", groups=["finance"], roles=["ingest"],
                           tenant="acme", clearance="confidential", attributes={"region": ["EU"]})
    with TestClient(create_app(settings)) as client:
        response = client.get("/v1/me", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200
    body = response.json()
    assert body["subject"] == "alice"
    assert body["tenant"] == "acme"
    assert body["groups"] == ["finance"]
    assert body["roles"] == ["ingest"]
    assert body["clearance"] == "confidential"


def test_missing_token_is_401_with_challenge(settings):
    with TestClient(create_app(settings)) as client:
        response = client.get("/v1/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "invalid_token" not in response.headers["www-authenticate"]
    assert response.headers["content-type"].startswith("application/problem+json")


def test_bad_token_is_401_invalid_token_without_detail(settings):
    with TestClient(create_app(settings)) as client:
        response = client.get("/v1/me", headers={"Authorization": "Bearer a.b.c"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["detail"] == "Missing or invalid bearer token."


def test_token_in_query_string_is_ignored(settings):
    token = mint_dev_token(settings, sub="alice")
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/v1/me?access_token={token}")
    assert response.status_code == 401


def test_jwks_is_public_in_dev_mode(settings):
    with TestClient(create_app(settings)) as client:
        response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json()["keys"][0]["kty"] == "EC"

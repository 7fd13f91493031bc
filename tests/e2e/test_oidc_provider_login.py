"""Single sign-on end to end: a real OIDC provider on loopback, the authorization-code flow
as a client application runs it, and the gateway (under uvicorn) trusting the result.

The provider (`oidc-provider-mock`) signs RS256 ID tokens without a `kid`, for the
client id as audience; its access tokens are opaque. So the gateway is configured with
the client id as its audience and accepts the ID token through the kid-less rule (the
provider publishes exactly one RSA key).
"""

from __future__ import annotations

import base64
import json
import secrets
import warnings
from collections.abc import Iterator
from typing import Any

import authlib.deprecate
import httpx
import pytest

with warnings.catch_warnings():  # authlib forces its own deprecation warnings to "always"
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from oidc_provider_mock import run_server_in_thread

from gateway.app import create_app
from gateway.settings import AuthSettings, Settings
from tests.support.server import serve_in_thread

pytestmark = pytest.mark.e2e
CLIENT_ID = "retrieval-chat"
CLIENT_SECRET = "chat-secret"
REDIRECT_URI = "http://127.0.0.1:9/oidc/callback"  # the client's callback; never contacted


@pytest.fixture
def issuer() -> Iterator[str]:
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


def _unverified_claims(jwt_token: str) -> dict[str, Any]:
    body = jwt_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def sso_login(issuer: str, sub: str) -> dict[str, Any]:
    """Sign `sub` in through the authorization-code flow; return the token endpoint's answer."""
    discovery = httpx.get(f"{issuer}/.well-known/openid-configuration").json()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
              "scope": "openid profile email", "state": state, "nonce": nonce}
    with httpx.Client(follow_redirects=False) as browser:
        login_page = browser.get(discovery["authorization_endpoint"], params=params)
        assert login_page.status_code == 200
        assert 'name="sub"' in login_page.text  # the provider's login/consent form
        submitted = browser.post(discovery["authorization_endpoint"], params=params,
                                 data={"sub": sub})
    assert submitted.status_code == 302
    callback = httpx.URL(submitted.headers["location"])
    assert str(callback.copy_with(query=None)) == REDIRECT_URI
    assert callback.params["state"] == state
    tokens = httpx.post(
        discovery["token_endpoint"], auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "authorization_code", "code": callback.params["code"],
              "redirect_uri": REDIRECT_URI},
    )
    assert tokens.status_code == 200, tokens.text
    answer: dict[str, Any] = tokens.json()
    assert _unverified_claims(answer["id_token"])["nonce"] == nonce
    return answer


def set_user_claims(issuer: str, sub: str, claims: dict[str, Any]) -> None:
    """What the directory holds about the user (the provider's user API)."""
    httpx.put(f"{issuer}/users/{sub}", json=claims).raise_for_status()


def gateway_settings(settings: Settings, issuer: str, **mapping: Any) -> Settings:
    return settings.replace(auth=AuthSettings(oidc_issuer=issuer, audience=CLIENT_ID, **mapping))


def test_sso_user_calls_the_gateway_with_claims_from_the_directory(settings, issuer):
    set_user_claims(issuer, "alice@example.com", {
        "groups": ["finance", "eu-staff"], "roles": ["auditor"], "tenant": "acme",
        "clearance": "confidential", "department": "treasury",
    })
    tokens = sso_login(issuer, "alice@example.com")
    app = create_app(gateway_settings(settings, issuer, claim_attributes=("department",)))
    with serve_in_thread(app) as base:
        me = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {tokens['id_token']}"})
        opaque = httpx.get(f"{base}/v1/me",
                           headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["subject"] == "alice@example.com"
    assert body["issuer"] == issuer
    assert body["tenant"] == "acme"
    assert body["groups"] == ["finance", "eu-staff"]
    assert body["roles"] == ["auditor"]
    assert body["clearance"] == "confidential"
    assert body["attributes"] == {"department": ["treasury"]}
    assert opaque.status_code == 401  # an opaque access token is not a JWT we can verify


def test_keycloak_style_nested_roles_and_other_users_get_their_own_principal(settings, issuer):
    set_user_claims(issuer, "bob", {"realm_access": {"roles": ["ingest", "admin"]},
                                    "tid": "globex", "groups": "engineering"})
    set_user_claims(issuer, "carol", {"realm_access": {"roles": []}, "tid": "acme"})
    bob, carol = sso_login(issuer, "bob"), sso_login(issuer, "carol")
    app = create_app(gateway_settings(settings, issuer, claim_roles="realm_access.roles",
                                      claim_tenant="tid"))
    with serve_in_thread(app) as base, httpx.Client(base_url=base) as client:
        as_bob = client.get("/v1/me", headers={"Authorization": f"Bearer {bob['id_token']}"}).json()
        as_carol = client.get("/v1/me", headers={"Authorization": f"Bearer {carol['id_token']}"}).json()
    assert (as_bob["subject"], as_bob["tenant"], as_bob["roles"]) == ("bob", "globex", ["ingest", "admin"])
    assert as_bob["groups"] == ["engineering"]  # a lone string is one group
    assert (as_carol["subject"], as_carol["tenant"], as_carol["roles"]) == ("carol", "acme", [])


def test_token_for_another_client_is_refused(settings, issuer):
    set_user_claims(issuer, "dave", {"roles": ["admin"]})
    tokens = sso_login(issuer, "dave")
    app = create_app(settings.replace(auth=AuthSettings(oidc_issuer=issuer, audience="another-app")))
    with serve_in_thread(app) as base:
        response = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {tokens['id_token']}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]

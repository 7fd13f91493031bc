"""`gateway token` as an operator runs it, and how dev tokens fare in each mode."""

from __future__ import annotations

import dataclasses

import httpx
import jwt
import pytest

from gateway.app import create_app
from tests.support.idp import StubIdp, oidc_settings
from tests.support.jose import SigningKey, access_claims
from tests.support.process import gateway_env, run_cli, running_gateway
from tests.support.server import serve_in_thread

pytestmark = pytest.mark.e2e


def test_cli_dev_token_is_accepted_by_the_gateway(settings, tmp_path):
    data_dir = settings.database.data_dir
    env = gateway_env({"GATEWAY_DATA_DIR": str(data_dir)})
    result = run_cli(["token", "--sub", "alice", "--groups", "finance, legal", "--roles", "ingest",
                      "--tenant", "acme", "--clearance", "confidential", "--attr", "region=EU",
                      "--attr", "region=US", "--ttl", "10m"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 600
    app_settings = settings.replace(auth=dataclasses.replace(settings.auth, claim_attributes=("region",)))
    with serve_in_thread(create_app(app_settings)) as base:
        response = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["subject"], body["tenant"], body["clearance"]) == ("alice", "acme", "confidential")
    assert (body["groups"], body["roles"]) == (["finance", "legal"], ["ingest"])
    assert body["attributes"] == {"region": ["EU", "US"]}


def test_cli_refuses_to_mint_tokens_in_oidc_mode(tmp_path):
    env = gateway_env({"GATEWAY_DATA_DIR": str(tmp_path / "data"),
                       "GATEWAY_OIDC_ISSUER": "https://login.example.com",
                       "GATEWAY_OIDC_AUDIENCE": "api://gateway"})
    result = run_cli(["token", "--sub", "alice"], env, tmp_path)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "only works in dev mode" in lines[0]
    assert not (tmp_path / "data" / "keys").exists()


def test_cli_rejects_a_malformed_ttl(tmp_path):
    result = run_cli(["token", "--sub", "alice", "--ttl", "forever"],
                     gateway_env({"GATEWAY_DATA_DIR": str(tmp_path)}), tmp_path)
    assert result.returncode == 2
    assert "duration" in result.stderr


def test_cli_dev_token_is_rejected_by_an_oidc_mode_gateway(settings, tmp_path):
    data_dir = settings.database.data_dir
    result = run_cli(["token", "--sub", "mallory", "--roles", "admin"],
                     gateway_env({"GATEWAY_DATA_DIR": str(data_dir)}), tmp_path)
    token = result.stdout.strip()
    with StubIdp([SigningKey.rsa("k1")]) as idp:
        app = create_app(oidc_settings(settings, idp))  # same data dir, which holds the dev key
        with serve_in_thread(app) as base:
            response = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"})
            jwks = httpx.get(f"{base}/.well-known/jwks.json")
    assert response.status_code == 401
    assert jwks.status_code == 404


@pytest.mark.slow
def test_serve_refuses_an_idp_whose_discovery_names_another_issuer(tmp_path, db_urls):
    with StubIdp([SigningKey.rsa("k1")]) as idp:
        idp.announced_issuer = "https://login.attacker.example"
        env = gateway_env({"DATABASE_URL": db_urls.runtime, "GATEWAY_OIDC_ISSUER": idp.issuer,
                           "GATEWAY_OIDC_AUDIENCE": "api://gateway"})
        result = run_cli(["serve", "--port", "1"], env, tmp_path, timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "must be identical" in lines[0]


@pytest.mark.slow
def test_serve_starts_while_the_idp_is_down_and_answers_401(tmp_path, db_urls):
    key = SigningKey.rsa("k1")
    idp = StubIdp([key]).start()
    idp.stop()  # nothing listens on its port any more
    token = key.sign(access_claims(idp.issuer, "api://gateway"))
    env = gateway_env({"DATABASE_URL": db_urls.runtime, "GATEWAY_OIDC_ISSUER": idp.issuer,
                       "GATEWAY_OIDC_AUDIENCE": "api://gateway"})
    with running_gateway(env, tmp_path) as base:
        assert httpx.get(f"{base}/health/ready").status_code == 200
        response = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401

"""Role guards: authenticated callers lacking the gateway role get 403 insufficient_scope."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.auth.devkeys import mint_dev_token
from gateway.auth.guards import requires_role
from gateway.settings import Settings

pytestmark = pytest.mark.integration


@get("/v1/test-only/admin", guards=[requires_role("admin")], include_in_schema=False)
async def admin_only(request: Request[Any, Any, Any]) -> dict[str, str]:
    """A stand-in for the admin endpoints (policies, document access)."""
    return {"subject": request.user.subject}


@get("/v1/test-only/ingest-or-admin", guards=[requires_role("ingest", "admin")],
     include_in_schema=False)
async def ingest_or_admin() -> dict[str, str]:
    """A stand-in for document ingestion."""
    return {"ok": "yes"}


def guarded_app(settings: Settings) -> Litestar:
    """The real app, with the test-only guarded routes added the way routes are registered."""
    app = create_app(settings)
    app.register(admin_only)
    app.register(ingest_or_admin)
    return app


def call(client: TestClient, path: str, settings: Settings, **token: Any):
    headers = {"Authorization": f"Bearer {mint_dev_token(settings, sub='u1', **token)}"} if token else {}
    return client.get(path, headers=headers)


def test_caller_with_the_role_is_admitted(settings):
    with TestClient(guarded_app(settings)) as client:
        response = call(client, "/v1/test-only/admin", settings, roles=["admin"])
    assert response.status_code == 200
    assert response.json() == {"subject": "u1"}


def test_authenticated_caller_without_the_role_gets_403_insufficient_scope(settings):
    with TestClient(guarded_app(settings)) as client:
        response = call(client, "/v1/test-only/admin", settings, roles=["ingest", "auditor"],
                        groups=["admin"])  # a group named like the role is not the role
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == 'Bearer realm="gateway", error="insufficient_scope"'
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"] == "This operation requires the admin role."


def test_anonymous_caller_gets_401_not_403(settings):
    with TestClient(guarded_app(settings)) as client:
        response = call(client, "/v1/test-only/admin", settings)
    assert response.status_code == 401


def test_any_of_several_roles_is_enough(settings):
    with TestClient(guarded_app(settings)) as client:
        assert call(client, "/v1/test-only/ingest-or-admin", settings, roles=["ingest"]).status_code == 200
        assert call(client, "/v1/test-only/ingest-or-admin", settings, roles=["admin"]).status_code == 200
        assert call(client, "/v1/test-only/ingest-or-admin", settings, roles=["auditor"]).status_code == 403


def test_role_names_come_from_configuration(settings):
    custom = settings.replace(auth=dataclasses.replace(settings.auth, role_admin="Gateway.Admin"))
    with TestClient(guarded_app(custom)) as client:
        assert call(client, "/v1/test-only/admin", custom, roles=["Gateway.Admin"]).status_code == 200
        assert call(client, "/v1/test-only/admin", custom, roles=["admin"]).status_code == 403


def test_roles_claim_of_the_wrong_type_grants_no_role(settings):
    with TestClient(guarded_app(settings)) as client:
        response = call(client, "/v1/test-only/admin", settings, attributes={"roles": {"admin": True}})
    assert response.status_code == 403


def test_unknown_gateway_role_is_a_programming_error():
    with pytest.raises(ValueError, match="superuser"):
        requires_role("superuser")

"""Claims of the wrong type in otherwise valid tokens: a sensible principal or a 401, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.auth.devkeys import mint_dev_token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(module_settings) -> Iterator[TestClient]:
    with TestClient(create_app(module_settings), raise_server_exceptions=False) as test_client:
        yield test_client


def me(client: TestClient, settings, **claims: Any):
    token = mint_dev_token(settings, sub="alice", attributes=claims)
    return client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    ("claims", "field", "expected"),
    [
        ({"groups": "finance"}, "groups", ["finance"]),
        ({"groups": "Finance Team"}, "groups", ["Finance Team"]),
        ({"groups": {"finance": True}}, "groups", []),
        ({"groups": [["nested"], "ok", 7]}, "groups", ["ok", "7"]),
        ({"roles": {"admin": True}}, "roles", []),
        ({"roles": "ingest"}, "roles", ["ingest"]),
        ({"tenant": ["acme"]}, "tenant", "acme"),
        ({"tenant": 1234}, "tenant", "1234"),
        ({"clearance": None}, "clearance", None),
    ],
    ids=["groups-string", "groups-string-with-space", "groups-object", "groups-mixed-list",
         "roles-object", "roles-string", "tenant-one-item-list", "tenant-number", "clearance-null"],
)
def test_wrong_type_claims_map_conservatively(client, module_settings, claims, field, expected):
    response = me(client, module_settings, **claims)
    assert response.status_code == 200, response.text
    assert response.json()[field] == expected


@pytest.mark.parametrize(
    "claims",
    [{"tenant": ["acme", "globex"]}, {"tenant": {"id": "acme"}}, {"clearance": ["internal", "restricted"]},
     {"sub": ["alice", "bob"]}, {"sub": 12345}, {"sub": None}],
    ids=["tenant-list", "tenant-object", "clearance-list", "subject-list", "subject-number", "subject-null"],
)
def test_ambiguous_or_missing_identity_claims_are_401(client, module_settings, claims):
    response = me(client, module_settings, **claims)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]

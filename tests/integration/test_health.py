"""Readiness reflects the database and the migration head; errors are problem details."""

import psycopg
import pytest
from litestar.testing import TestClient

from gateway.app import create_app

pytestmark = pytest.mark.integration


def test_ready_when_database_is_migrated(settings):
    with TestClient(create_app(settings)) as client:
        response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
    assert response.headers["x-request-id"]


def test_not_ready_when_migrations_are_behind(settings, db_urls):
    with psycopg.connect(db_urls.owner, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0000'")
    with TestClient(create_app(settings)) as client:
        response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] == "Not ready"


def test_request_id_is_echoed_when_well_formed(settings):
    with TestClient(create_app(settings)) as client:
        kept = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
        replaced = client.get("/health/live", headers={"X-Request-ID": "bad id\nwith newline"})
    assert kept.headers["x-request-id"] == "abc-123"
    assert replaced.headers["x-request-id"] != "bad id\nwith newline"


def test_openapi_schema_is_served(settings):
    with TestClient(create_app(settings)) as client:
        response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert "/health/ready" in response.json()["paths"]


def test_unknown_route_is_a_problem_document(settings):
    with TestClient(create_app(settings)) as client:
        response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")

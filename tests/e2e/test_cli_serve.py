"""The `gateway` command as an operator runs it: embedded default, external database, bad config."""

import httpx
import psycopg
import pytest

from tests.support.process import gateway_env, run_cli, running_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WRITER_FOR_TENANT_T = (
    "SELECT set_config('gateway.tenant', 't', true), set_config('gateway.writer', 'on', true)"
)


def test_embedded_default_serves_ready_and_keeps_data_across_restarts(tmp_path):
    env = gateway_env({"GATEWAY_DATA_DIR": str(tmp_path / "gw")})
    with running_gateway(env, tmp_path) as base:
        assert httpx.get(f"{base}/health/ready").status_code == 200
    from gateway.db.embedded import EmbeddedDatabase

    server = EmbeddedDatabase(tmp_path / "gw")
    urls = server.prepare()
    with psycopg.connect(urls.owner) as conn:  # even the owner writes as a bound tenant writer
        conn.execute(WRITER_FOR_TENANT_T)
        conn.execute(
            "INSERT INTO documents (tenant, classification, external_id, title, content_type, body,"
            " content_sha256, access) VALUES ('t', 1, 'keep-me', 'Kept', 'text/plain', 'x', 'h', '{}')"
        )
    server.stop()
    with running_gateway(env, tmp_path) as base:
        assert httpx.get(f"{base}/health/ready").status_code == 200
    server = EmbeddedDatabase(tmp_path / "gw")
    with psycopg.connect(server.prepare().owner) as conn:
        conn.execute(WRITER_FOR_TENANT_T)
        assert conn.execute("SELECT title FROM documents").fetchall() == [("Kept",)]
    server.stop()


def test_database_url_is_used_and_no_embedded_server_starts(tmp_path, db_urls):
    data_dir = tmp_path / "data"
    env = gateway_env({"DATABASE_URL": db_urls.runtime, "GATEWAY_DATA_DIR": str(data_dir)})
    with running_gateway(env, tmp_path) as base:
        body = httpx.get(f"{base}/health/ready").json()
    assert body["database"] == "ok"
    assert not (data_dir / "pgdata").exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"GATEWAY_PORTT": "1"}, "GATEWAY_PORTT"),
        ({"GATEWAY_WORKERS": "many"}, "GATEWAY_WORKERS"),
        ({"DATABASE_URL": "postgresql://gateway_app@127.0.0.1:1/gateway"}, "cannot connect to DATABASE_URL"),
    ],
)
def test_bad_configuration_fails_with_one_line(tmp_path, extra, expected):
    result = run_cli(["serve"], gateway_env(extra), tmp_path, timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_external_database_behind_head_is_refused(tmp_path, db_urls):
    with psycopg.connect(db_urls.owner, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'old'")
    result = run_cli(["serve"], gateway_env({"DATABASE_URL": db_urls.runtime}), tmp_path)
    assert result.returncode != 0
    assert "gateway migrate" in result.stderr


def test_migrate_external_database_with_owner_url(tmp_path, db_urls):
    from gateway.db import migrate

    migrate.downgrade(db_urls.owner, "base")
    env = gateway_env({"DATABASE_URL": db_urls.runtime, "GATEWAY_MIGRATION_DATABASE_URL": db_urls.owner})
    result = run_cli(["migrate"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(db_urls.runtime) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (migrate.head_revision(),)

"""`gateway index tune` on a real database: catalog facts, per-tenant figures under row-level
security (a tenant's report counts only its own chunks), the planner's own plan choices."""

import psycopg
import pytest

from tests.support.process import gateway_env, run_cli
from tests.support.retrieval import corpus_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHUNKS = 3000


@pytest.fixture(scope="module")
def corpus(pg_server, template_urls):
    yield from corpus_database(pg_server, CHUNKS)


def counts(superuser_url):
    with psycopg.connect(superuser_url) as conn:
        tenants = dict(conn.execute("SELECT tenant, count(*) FROM chunks GROUP BY tenant").fetchall())
        staff = conn.execute("SELECT count(*) FROM chunks WHERE tenant = 'acme' "
                             "AND 'group:staff' = ANY(allow)").fetchone()[0]
    return tenants, staff


def test_tune_reports_the_index_the_tenants_and_the_planners_choices(corpus, tmp_path):
    env = gateway_env({"DATABASE_URL": corpus.runtime, "GATEWAY_DATA_DIR": str(tmp_path / "data")})
    result = run_cli(["index", "tune", "--tenant", "acme", "--tenant", "globex", "--k", "10"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    tenants, staff = counts(corpus.superuser)
    total = sum(tenants.values())
    assert f"chunks: {total:,} rows" in out
    assert "ef_construction 128" in out and "m 16" in out
    assert f"tenant acme: {tenants['acme']:,} chunks" in out
    assert f"tenant globex: {tenants['globex']:,} chunks" in out  # its own rows only
    acme = out.split("tenant acme:")[1].split("tenant globex:")[0]
    staff_line = next(line for line in acme.splitlines() if "group:staff" in line)
    assert f"{staff:,}" in staff_line and "hnsw (ef_search" in staff_line
    assert any(line.startswith("  group:dept-") and line.rstrip().endswith("exact") for line in acme.splitlines())
    globex = out.split("tenant globex:")[1].split("recommendations")[0]
    assert "group:sel-" not in globex and "group:dept-" not in globex  # acme's strings stay hidden
    assert "  100.0%" in out and "   0.1%" in out
    assert "recommendations: none" in out  # analysed, fits in memory, globex small enough for exact


def test_an_unknown_tenant_has_no_chunks(corpus, tmp_path):
    env = gateway_env({"DATABASE_URL": corpus.runtime, "GATEWAY_DATA_DIR": str(tmp_path / "data")})
    result = run_cli(["index", "tune", "--tenant", "nobody"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tenant nobody: 0 chunks" in result.stdout and "(no chunks)" in result.stdout

"""`gateway index tune` on a real database: catalog facts, per-tenant figures under row-level
security (a tenant's report counts only its own chunks), the planner's own plan choices;
and the principal index actions (`create-principal`, `list-principals`, `drop-principal`)."""

import contextlib
import time

import psycopg
import pytest

from gateway.retrieval import principal_indexes
from gateway.retrieval.principal_indexes import PrincipalIndexError, posting_key
from tests.support.process import gateway_env, run_cli
from tests.support.retrieval import corpus_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHUNKS = 3000


@pytest.fixture(scope="module")
def corpus(pg_server, template_urls):
    for urls in corpus_database(pg_server, CHUNKS):
        settle_statistics(urls.superuser)
        yield urls


def settle_statistics(superuser_url, timeout_s=30.0):
    """Analyse `chunks` once the loader's counts have reached the server, and keep autovacuum off it.

    What tune reports (pg_class.reltuples, rows changed since the last analyze) would
    otherwise depend on when the loading backend's statistics arrive (at most once a
    second, and at its exit) and on autovacuum runs racing the test.
    """
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE chunks SET (autovacuum_enabled = false)")
        deadline = time.monotonic() + timeout_s
        while True:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            (inserted,) = conn.execute(
                "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = 'chunks'::regclass").fetchone()
            if inserted >= CHUNKS:
                break
            assert time.monotonic() < deadline, f"only {inserted} of {CHUNKS} inserts counted"
            time.sleep(0.1)
        conn.execute("ANALYZE chunks")


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


def postings(superuser_url, tenant, principal):
    with psycopg.connect(superuser_url) as conn:
        return conn.execute("SELECT count(*) FROM chunk_postings WHERE key = %s",
                            (posting_key(tenant, principal),)).fetchone()[0]


def one_line_error(result, *words):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("gateway: error: ") and all(word in line for word in words), line


def test_principal_index_lifecycle_from_advice_to_drop(corpus, tmp_path):
    """Tune advises it, create builds it, list and tune show it (no more advice), drop removes it."""
    principal = "group:sel-10pct"
    count = postings(corpus.superuser, "acme", principal)
    assert count > 0
    # a threshold of 1 makes exact search dear, so the 3,000-chunk corpus plans like a large one
    env = gateway_env({"DATABASE_URL": corpus.runtime, "GATEWAY_MIGRATION_DATABASE_URL": corpus.owner,
                       "GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_EXACT_SCAN_THRESHOLD": "1"})
    advice = f"gateway index create-principal --tenant acme {principal}"
    tune = ["index", "tune", "--tenant", "acme", "--k", "10"]
    try:
        before = run_cli(tune, env, tmp_path)
        assert before.returncode == 0, before.stderr
        assert advice in before.stdout and "principal indexes of acme: none" in before.stdout

        created = run_cli(["index", "create-principal", "--tenant", "acme", principal], env, tmp_path)
        assert created.returncode == 0, created.stderr
        building, done = created.stdout.strip().splitlines()
        assert building.startswith("building the principal index of 'group:sel-10pct' in tenant 'acme'")
        name = principal_indexes.index_name("acme", principal)
        assert done.startswith(f"created {name}: {count:,} postings, ") and done.endswith(" MB")

        listed = run_cli(["index", "list-principals"], env, tmp_path)
        assert listed.returncode == 0, listed.stderr
        (line,) = listed.stdout.strip().splitlines()
        assert line.split()[:3] == ["acme", principal, f"{count:,}"] and line.endswith("valid")

        after = run_cli(tune, env, tmp_path)
        assert after.returncode == 0, after.stderr
        acme = after.stdout.split("tenant acme:")[1].split("recommendations")[0]
        assert any(line.split()[0] == principal and "principal index (ef_search" in line
                   for line in acme.splitlines())
        indexes = acme.split("principal indexes of acme:")[1].strip().splitlines()
        assert [line.split()[:2] for line in indexes] == [[principal, f"{count:,}"]]
        assert indexes[0].endswith("valid") and advice not in after.stdout

        again = run_cli(["index", "create-principal", "--tenant", "acme", principal], env, tmp_path)
        one_line_error(again, principal, "already has a principal index")

        dropped = run_cli(["index", "drop-principal", "--tenant", "acme", principal], env, tmp_path)
        assert dropped.returncode == 0, dropped.stderr
        empty = run_cli(["index", "list-principals", "--tenant", "acme"], env, tmp_path)
        assert empty.returncode == 0 and empty.stdout.strip() == "no principal indexes"
        with psycopg.connect(corpus.superuser) as conn:
            assert conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None

        missing = run_cli(["index", "drop-principal", "--tenant", "acme", principal], env, tmp_path)
        one_line_error(missing, principal, "has no principal index")
    finally:
        with contextlib.suppress(PrincipalIndexError):  # already dropped, as it should be
            principal_indexes.drop(corpus.owner, "acme", principal)


@pytest.mark.parametrize("action", [["create-principal", "--tenant", "acme", "group:sel-1pct"],
                                    ["drop-principal", "--tenant", "acme", "group:sel-1pct"],
                                    ["list-principals"]])
def test_principal_index_actions_need_the_owner_role(corpus, tmp_path, action):
    """With only the runtime role's URL (which row-level security shows no index) they fail with the fix."""
    env = gateway_env({"DATABASE_URL": corpus.runtime, "GATEWAY_DATA_DIR": str(tmp_path / "data")})
    one_line_error(run_cli(["index", *action], env, tmp_path), "owner role", "GATEWAY_MIGRATION_DATABASE_URL")

"""`gateway policy apply|list|explain` as an operator runs them, against a real database."""

import shutil
from pathlib import Path

import psycopg
import pytest

from policies.model import ClassificationLevels, parse_access
from tests.support.access import bind_writer, sync_engine, write_document
from tests.support.process import gateway_env, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "policies"


@pytest.fixture
def env(db_urls, tmp_path):
    return gateway_env({"DATABASE_URL": db_urls.runtime, "GATEWAY_DATA_DIR": str(tmp_path / "data")})


def stored_policies(db_urls):
    with psycopg.connect(db_urls.superuser) as conn:
        return dict(conn.execute("SELECT name, version FROM access_policies ORDER BY name").fetchall())


def test_example_files_dry_run_then_apply_then_nothing_to_do(env, db_urls, tmp_path):
    files = [str(p) for p in sorted(EXAMPLES.glob("*.yaml"))]
    dry = run_cli(["policy", "apply", *files], env, tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "+ default/finance-eu (create)" in dry.stdout
    assert "dry run: 4 to create, 0 to update, 0 unchanged; run again with --yes to apply" in dry.stdout
    assert stored_policies(db_urls) == {}
    applied = run_cli(["policy", "apply", *files, "--yes"], env, tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert "applied: 4 to create" in applied.stdout
    assert stored_policies(db_urls) == {"all-staff": 1, "board-papers": 1, "finance-eu": 1, "legal-hold": 1}
    again = run_cli(["policy", "apply", *files, "--yes"], env, tmp_path)
    assert "applied: 0 to create, 0 to update, 4 unchanged" in again.stdout
    listing = run_cli(["policy", "list"], env, tmp_path)
    assert listing.returncode == 0
    assert "finance-eu" in listing.stdout and "group:finance" in listing.stdout
    with psycopg.connect(db_urls.superuser) as conn:
        actions = conn.execute("SELECT action, subject FROM audit_events ORDER BY ts").fetchall()
    assert [a for a, _ in actions] == ["policy.create"] * 4
    assert all(subject.startswith("cli:") for _, subject in actions)


def test_changed_file_shows_the_diff_and_updates_a_version(env, db_urls, tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("tenant: acme\npolicies:\n  - {name: gate, allow: [group:finance]}\n")
    assert run_cli(["policy", "apply", str(policy), "--yes"], env, tmp_path).returncode == 0
    policy.write_text("tenant: acme\npolicies:\n  - {name: gate, allow: [group:hr]}\n")
    dry = run_cli(["policy", "apply", str(policy)], env, tmp_path)
    assert "~ acme/gate (update)" in dry.stdout
    assert "allow: ['group:finance'] -> ['group:hr']" in dry.stdout
    assert run_cli(["policy", "apply", str(policy), "--yes"], env, tmp_path).returncode == 0
    assert stored_policies(db_urls) == {"gate": 2}


def test_a_malformed_file_names_file_and_field_and_nothing_is_applied(env, db_urls, tmp_path):
    good = tmp_path / "good.yaml"
    shutil.copy(EXAMPLES / "finance.yaml", good)
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  - name: broken\n    allow: [everyone]\n    classification: secret\n")
    result = run_cli(["policy", "apply", str(good), str(bad), "--yes"], env, tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"gateway: error: {bad}: policies[0].classification: unknown level 'secret'; "
                     "expected one of public, internal, confidential, restricted (nothing was applied)"]
    assert stored_policies(db_urls) == {}


def test_explain_prints_the_trace_and_the_sql_verdicts(env, db_urls, tmp_path):
    levels = ClassificationLevels()
    owner = sync_engine(db_urls.owner)
    with owner.begin() as conn:
        bind_writer(conn, "default")
        doc = write_document(conn, "default", parse_access({"allow": ["group:finance"]}, levels), levels,
                             external_id="q3")
    owner.dispose()
    result = run_cli(["policy", "explain", "--document", str(doc.id), "--sub", "bob", "--groups", "hr"],
                     env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("DENIED: user:bob tenant=default groups=hr")
    assert "[FAIL] document  allow" in result.stdout
    assert "sql predicate: denied; row-level security: denied" in result.stdout
    allowed = run_cli(["policy", "explain", "--document", str(doc.id), "--sub", "alice",
                       "--groups", "finance"], env, tmp_path)
    assert allowed.stdout.startswith("ALLOWED: user:alice")

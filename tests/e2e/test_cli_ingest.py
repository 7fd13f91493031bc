"""`gateway ingest` as an operator runs it: folders, JSON Lines, sidecars, summary, exit code."""

from __future__ import annotations

import json
import random
import re

import psycopg
import pytest

from tests.support.process import gateway_env, run_cli
from tests.unit.test_extract import make_pdf

pytestmark = [pytest.mark.e2e]


def db_rows(url, query):
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def summary_numbers(stdout: str) -> dict[str, int]:
    return {
        "documents": int(re.search(r"documents: (\d+) ingested", stdout).group(1)),
        "chunks": int(re.search(r"(\d+) chunks", stdout).group(1)),
        "skipped": int(re.search(r"skipped unchanged: (\d+)", stdout).group(1)),
        "failed": int(re.search(r"failed: (\d+)", stdout).group(1)),
    }


@pytest.mark.slow
def test_ingest_loads_a_folder_and_jsonl_reports_failures_and_skips_unchanged_on_rerun(tmp_path, db_urls):
    corpus = tmp_path / "corpus"
    (corpus / "hr").mkdir(parents=True)
    (corpus / "hr" / "leave.md").write_text("# Leave\n\nEveryone gets 25 days of paid leave.")
    (corpus / "hr" / "access.json").write_text(json.dumps({"allow": ["group:hr"], "classification": "confidential"}))
    (corpus / "handbook.html").write_text("<h1>Handbook</h1><p>Welcome aboard.</p><script>x()</script>")
    (corpus / "report.pdf").write_bytes(make_pdf("Revenue grew nine percent."))
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7 nonsense")
    lines = tmp_path / "extra.jsonl"
    lines.write_text(json.dumps({"external_id": "faq-1", "title": "FAQ", "text": "Ask HR.",
                                 "access": {"allow": ["everyone"]}}) + "\n")
    env = gateway_env({"DATABASE_URL": db_urls.runtime, "GATEWAY_DATA_DIR": str(tmp_path / "gw"),
                       "GATEWAY_DEFAULT_TENANT": "acme"})
    args = ["ingest", str(corpus), str(lines), "--allow", "group:staff", "--classification", "internal"]

    first = run_cli(args, env, tmp_path, timeout=300)
    assert first.returncode == 1, first.stderr
    assert summary_numbers(first.stdout) == {"documents": 4, "chunks": 4, "skipped": 0, "failed": 1}
    assert "broken.pdf: the PDF could not be parsed" in first.stdout
    assert "ingesting" in first.stderr, "a progress bar is drawn"
    stored = dict(db_rows(db_urls.superuser, "SELECT external_id, allow FROM documents"))
    assert stored == {"hr/leave.md": ["group:hr"], "handbook.html": ["group:staff"],
                      "report.pdf": ["group:staff"], "faq-1": ["everyone"]}
    assert {r[0] for r in db_rows(db_urls.superuser, "SELECT DISTINCT tenant FROM chunks")} == {"acme"}

    (corpus / "broken.pdf").unlink()
    second = run_cli(args, env, tmp_path, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert summary_numbers(second.stdout) == {"documents": 0, "chunks": 0, "skipped": 4, "failed": 0}


def test_ingest_without_any_access_fails_every_document_and_exits_non_zero(tmp_path, db_urls):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("hello")
    env = gateway_env({"DATABASE_URL": db_urls.runtime, "GATEWAY_DATA_DIR": str(tmp_path / "gw")})
    result = run_cli(["ingest", str(tmp_path / "docs")], env, tmp_path, timeout=300)
    assert result.returncode == 1
    assert "a.txt: no access block" in result.stdout
    assert db_rows(db_urls.superuser, "SELECT count(*) FROM documents") == [(0,)]


_WORDS = ["policy", "budget", "leave", "travel", "invoice", "contract", "release", "incident", "customer", "revenue", "approval", "quarterly", "security", "onboarding", "audit", "vendor"]


@pytest.mark.slow
def test_ingest_a_thousand_generated_documents(tmp_path, db_urls):
    rng = random.Random(7)
    folder = tmp_path / "generated"
    for n in range(1000):
        sub = folder / f"team-{n % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        paragraphs = [f"# Note {n}\n"] + [
            " ".join(rng.choice(_WORDS) for _ in range(rng.randint(20, 60))).capitalize() + "."
            for _ in range(rng.randint(1, 4))
        ]
        (sub / f"note-{n:04d}.md").write_text("\n\n".join(paragraphs))
    env = gateway_env({"DATABASE_URL": db_urls.runtime, "GATEWAY_DATA_DIR": str(tmp_path / "gw")})
    result = run_cli(["ingest", str(folder), "--allow", "everyone", "--tenant", "bulk"], env, tmp_path,
                     timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    numbers = summary_numbers(result.stdout)
    chunk_count = db_rows(db_urls.superuser, "SELECT count(*) FROM chunks WHERE tenant = 'bulk'")[0][0]
    assert numbers == {"documents": 1000, "chunks": chunk_count, "skipped": 0, "failed": 0}
    assert chunk_count >= 1000
    assert "1000/1000" in result.stderr


def _answer_block(stdout: str, question: str, subject: str) -> str:
    """The lines printed for one user under one question."""
    section = stdout.split(f"Q: {question}", 1)[1].split("\nQ: ", 1)[0]
    [block] = [b for b in re.split(r"\n  (?=\S)", section) if b.startswith(f"{subject} (")]
    return block


@pytest.mark.slow
def test_demo_loads_both_tenants_and_answers_differ_by_access(tmp_path, db_urls):
    env = gateway_env({"DATABASE_URL": db_urls.runtime, "GATEWAY_DATA_DIR": str(tmp_path / "gw")})
    first = run_cli(["demo"], env, tmp_path, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "acme: 36 documents loaded" in first.stdout
    assert "globex: 4 documents loaded" in first.stdout
    tenants = dict(db_rows(db_urls.superuser, "SELECT tenant, count(*) FROM documents GROUP BY tenant"))
    assert tenants == {"acme": 36, "globex": 4}

    salaries = "How much will salaries increase in 2026?"
    alice = _answer_block(first.stdout, salaries, "alice")
    carol = _answer_block(first.stdout, salaries, "carol")
    assert "hr/compensation-review-2026.md" in carol and "3.8%" in carol
    assert "compensation-review" not in alice and "3.8%" not in alice
    leave = "How many weeks of paid parental leave do new parents get?"
    assert "16 weeks" in _answer_block(first.stdout, leave, "alice")
    dave = _answer_block(first.stdout, leave, "dave")
    assert "12 weeks" in dave and "16 weeks" not in dave
    events = db_rows(db_urls.superuser, "SELECT subject, count(*) FROM audit_events WHERE action = 'query'"
                                        " GROUP BY subject")
    assert dict(events) == {"alice": 2, "bob": 1, "carol": 1, "dave": 1}

    second = run_cli(["demo", "--load-only"], env, tmp_path, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "acme: 0 documents loaded (0 chunks), 36 unchanged" in second.stdout
    assert "Q: " not in second.stdout
    referenced = db_rows(db_urls.superuser, "SELECT DISTINCT policy_name FROM documents"
                         " WHERE policy_name IS NOT NULL AND policy_name NOT IN"
                         " (SELECT name FROM access_policies WHERE tenant = documents.tenant)")
    assert referenced == []  # every named policy the corpus refers to exists
    assert db_rows(db_urls.superuser, "SELECT DISTINCT version FROM access_policies") == [(1,)]

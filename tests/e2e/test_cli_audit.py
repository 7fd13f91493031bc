"""`gateway audit ...` as an operator runs it against an external database."""

import json

import pytest

from tests.support.audit import DOC_A, DOC_B, audit_kit, event, source, tamper
from tests.support.process import gateway_env, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
async def operator(settings, db_urls, tmp_path):
    """A trail of two tenants and the environment an operator would have."""
    async with audit_kit(settings) as kit:
        for n in range(8):
            await kit.log.record(event(subject=("alice", "bob")[n % 2], query=f"q{n}",
                                       sources=[source(1, DOC_A), source(2, DOC_B)] if n % 2 else [source(1, DOC_B)]))
        await kit.log.record(event(tenant="globex", subject="dave", sources=[source(1, DOC_A)]))
    env = gateway_env({"DATABASE_URL": db_urls.runtime, "GATEWAY_MIGRATION_DATABASE_URL": db_urls.owner,
                       "GATEWAY_DATA_DIR": str(settings.database.data_dir)})
    return env, tmp_path


def _json(result):
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def test_verify_export_and_offline_verify(operator, db_urls):
    env, cwd = operator
    verified = _json(run_cli(["audit", "verify"], env, cwd))
    assert verified["ok"] and verified["events_checked"] == 9
    out = cwd / "export.jsonl"
    summary = _json(run_cli(["audit", "export", "--out", str(out), "--tenant", "acme"], env, cwd))
    assert summary["events"] == 8
    manifest = json.loads((cwd / "export.jsonl.manifest.json").read_text())
    (cwd / "audit-key.jwk").write_text(json.dumps(manifest["public_key"]))
    offline = run_cli(["audit", "verify", "--file", str(out), "--public-key", str(cwd / "audit-key.jwk")], env, cwd)
    assert offline.returncode == 0 and _json(offline)["events_checked"] == 8
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:2] + lines[3:]))
    broken = run_cli(["audit", "verify", "--file", str(out)], env, cwd)
    assert broken.returncode == 1
    assert _json(broken)["first_bad_event"]["reason"] == "missing"
    tamper(db_urls.superuser, [("UPDATE audit_events SET subject = 'eve' WHERE tenant = 'acme' AND seq = 4", ())])
    online = run_cli(["audit", "verify", "--tenant", "acme"], env, cwd)
    assert online.returncode == 1
    bad = _json(online)["first_bad_event"]
    assert (bad["seq"], bad["reason"]) == (4, "edited")


def test_reports_checkpoint_and_prune(operator):
    env, cwd = operator
    report = _json(run_cli(["audit", "report", "--document", str(DOC_A), "--tenant", "acme"], env, cwd))
    assert [r["subject"] for r in report["recipients"]] == ["bob"]
    subject = _json(run_cli(["audit", "report", "--subject", "alice", "--tenant", "acme"], env, cwd))
    assert [e["query"] for e in subject["events"]] == ["q0", "q2", "q4", "q6"]
    checkpoints = _json(run_cli(["audit", "checkpoint"], env, cwd))
    assert [(c["tenant"], c["kind"]) for c in checkpoints] == [("acme", "manual"), ("globex", "manual")]
    pruned = run_cli(["audit", "prune", "--older-than", "30", "--archive", str(cwd / "old.jsonl")], env, cwd)
    assert pruned.returncode == 0, pruned.stderr
    assert _json(pruned) == []
    assert _json(run_cli(["audit", "verify"], env, cwd))["ok"]


def test_prune_needs_the_owner_role(operator):
    env, cwd = operator
    del env["GATEWAY_MIGRATION_DATABASE_URL"]
    result = run_cli(["audit", "prune", "--older-than", "30"], env, cwd)
    assert result.returncode == 2
    assert "GATEWAY_MIGRATION_DATABASE_URL" in result.stderr

"""Retention: archive, prune through the controlled path, and the chain still verifies."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from gateway.audit.offline import verify_file
from gateway.audit.retention import prune
from gateway.audit.verify import verify_tenant
from gateway.db.engine import create_engine, session_factory
from tests.support.audit import audit_kit, bind, bulk_chain, event, source

pytestmark = pytest.mark.integration

OLD = datetime.now(UTC) - timedelta(days=100)


async def _prune(settings, db_urls, kit, days=30, archive=None):
    engine = create_engine(db_urls.owner, settings.database)
    try:
        return await prune(session_factory(engine), kit.signer, older_than_days=days, archive=archive,
                           checkpoint_every=10)
    finally:
        await engine.dispose()


@pytest.fixture
async def aged(settings, db_urls):
    """acme: 200 events from 100 days ago, then 5 new ones; globex: 3 new ones."""
    async with audit_kit(settings, checkpoint_every=10) as kit:
        bulk_chain(db_urls.owner, kit.signer, tenant="acme", count=200, start=OLD, step=timedelta(hours=1),
                   checkpoint_every=50)
        for n in range(5):
            await kit.log.record(event(query=f"new {n}", sources=[source(1)]))
        for n in range(3):
            await kit.log.record(event(tenant="globex", query=f"g{n}"))
        yield kit


async def test_prune_archives_deletes_old_events_and_the_chain_still_verifies(settings, db_urls, aged, tmp_path):
    archive = tmp_path / "archive.jsonl"
    results = await _prune(settings, db_urls, aged, archive=archive)
    assert [(r["tenant"], r["pruned_through_seq"], r["events_deleted"]) for r in results] == [("acme", 200, 200)]
    offline = verify_file(archive, public_key=aged.signer.jwk)
    assert offline.ok and offline.as_dict()["events_checked"] == 200
    report = await verify_tenant(aged.store, "acme", aged.signer.jwk)
    assert report.ok, report.first_bad_event
    assert (report.first_seq, report.events_checked) == (201, 6)
    with psycopg.connect(db_urls.runtime) as conn:
        bind(conn, "acme")
        assert conn.execute("SELECT min(seq), count(*) FROM audit_events").fetchone() == (201, 6)
        action, detail = conn.execute("SELECT action, detail FROM audit_events WHERE seq = 206").fetchone()
        kinds = conn.execute("SELECT kind, seq FROM audit_checkpoints WHERE kind = 'prune'").fetchall()
    assert action == "audit.prune"
    assert (detail["pruned_through_seq"], detail["events_deleted"], detail["archive_sha256"]) == (
        200, 200, results[0]["archive_sha256"])
    assert kinds == [("prune", 200)]
    assert (await verify_tenant(aged.store, "globex", aged.signer.jwk)).ok


async def test_a_second_prune_finds_nothing_new_and_chains_keep_growing(settings, db_urls, aged):
    await _prune(settings, db_urls, aged)
    assert await _prune(settings, db_urls, aged) == []
    await aged.log.record(event(query="after the prune"))
    report = await verify_tenant(aged.store, "acme", aged.signer.jwk)
    assert report.ok and report.last_seq == 207


async def test_pruning_everything_keeps_the_chain_anchored_at_the_prune_checkpoint(settings, db_urls, aged):
    later = datetime.now(UTC) + timedelta(days=1)
    engine = create_engine(db_urls.owner, settings.database)
    try:
        results = await prune(session_factory(engine), aged.signer, older_than_days=1, archive=None,
                              checkpoint_every=10, now=later + timedelta(days=1))
    finally:
        await engine.dispose()
    assert {r["tenant"]: r["events_deleted"] for r in results} == {"acme": 205, "globex": 3}
    await aged.log.record(event(tenant="globex", query="fresh"))
    report = await verify_tenant(aged.store, "globex", aged.signer.jwk)
    assert report.ok and (report.first_seq, report.last_seq) == (4, 5)


async def test_the_prune_function_refuses_events_newer_than_the_cutoff(db_urls, aged):
    with psycopg.connect(db_urls.owner) as conn:
        head = conn.execute("SELECT hash FROM audit_events WHERE tenant = 'acme' AND seq = 205").fetchone()[0]
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("SELECT audit_prune('acme', 205, now() - interval '30 days', %s, now(), 'k', 's')", (head,))


async def test_a_forged_prune_checkpoint_is_caught(settings, db_urls, aged):
    """An owner who bypasses the function with a home-made prune checkpoint cannot sign it."""
    with psycopg.connect(db_urls.owner) as conn:
        conn.execute("INSERT INTO audit_checkpoints SELECT tenant, seq, 'prune', hash, ts, 'forged', 'AAAA'"
                     " FROM audit_events WHERE tenant = 'acme' AND seq = 100")
        conn.execute("SELECT set_config('gateway.audit_prune_tenant', 'acme', true),"
                     " set_config('gateway.audit_prune_seq', '100', true),"
                     " set_config('gateway.audit_prune_before', now()::text, true)")
        conn.execute("DELETE FROM audit_sources WHERE event_id IN"
                     " (SELECT id FROM audit_events WHERE tenant = 'acme' AND seq <= 100)")
        conn.execute("DELETE FROM audit_events WHERE tenant = 'acme' AND seq <= 100")
    report = await verify_tenant(aged.store, "acme", aged.signer.jwk)
    assert (report.first_bad_event.reason, report.first_bad_event.seq) == ("checkpoint_mismatch", 100)

"""The hash chain: concurrent appends stay one gapless chain; tampering is found and located."""

import asyncio
import logging
import time

import psycopg
import pytest
import structlog
from sqlalchemy import event as sa_event
from structlog.testing import capture_logs

from gateway.audit.canonical import document_hash
from gateway.audit.store import EventQuery, SeqRange
from gateway.audit.verify import verify_tenant
from tests.support.audit import DOC_A, DOC_B, audit_kit, bind, event, source, tamper

pytestmark = pytest.mark.integration


def _lock_figures(metrics) -> tuple[int, float, float]:
    """(count, mean seconds, bucket bound under which 99% of the lock holds fell)."""
    samples = {s.name: s for s in metrics.audit_chain_lock.collect()[0].samples if s.name.endswith(("_count", "_sum"))}
    count = int(samples["gateway_audit_chain_lock_seconds_count"].value)
    mean = samples["gateway_audit_chain_lock_seconds_sum"].value / count
    buckets = [(float(s.labels["le"]), s.value) for s in metrics.audit_chain_lock.collect()[0].samples
               if s.name.endswith("_bucket")]
    p99 = next(bound for bound, seen in buckets if seen >= 0.99 * count)
    return count, mean, p99


async def test_a_thousand_concurrent_appends_form_one_gapless_verifiable_chain(settings, db_urls):
    async with audit_kit(settings, pool_size=8, checkpoint_every=100) as kit:
        slots = asyncio.Semaphore(16)

        async def one(n: int):
            async with slots:
                return await kit.log.record(event(subject=f"user{n % 7}", query=f"q{n}",
                                                  sources=[source(1), source(2, DOC_B)]))

        started = time.perf_counter()
        ids = await asyncio.gather(*(one(n) for n in range(1000)))
        elapsed = time.perf_counter() - started
        report = await verify_tenant(kit.store, "acme", kit.signer.jwk)
        count, mean, p99 = _lock_figures(kit.metrics)
    print(f"\n1000 appends at concurrency 16: {1000 / elapsed:.0f} events/s; "
          f"chain lock held {mean * 1e3:.2f} ms on average, 99% under {p99 * 1e3:.2f} ms")
    assert len(set(ids)) == 1000 and count == 1000
    with psycopg.connect(db_urls.runtime) as conn:
        bind(conn, "acme")
        rows = conn.execute("SELECT seq, ts, prev_hash, hash FROM audit_events ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == list(range(1, 1001))
    assert all(a[3] == b[2] for a, b in zip(rows, rows[1:], strict=False))
    assert all(a[1] <= b[1] for a, b in zip(rows, rows[1:], strict=False))
    assert report.ok, report.first_bad_event
    assert (report.events_checked, report.checkpoints_checked) == (1000, 10)


@pytest.fixture
def info_logs():
    """Let info lines through even after an app configured a higher level."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    yield
    structlog.configure(**saved)


async def test_periodic_checkpoints_are_signed_stored_and_logged(settings, info_logs):
    async with audit_kit(settings, checkpoint_every=2) as kit:
        with capture_logs() as logs:
            for n in range(5):
                await kit.log.record(event(query=f"q{n}"))
        checkpoints = await kit.store.checkpoints("acme")
    assert [c.seq for c in checkpoints] == [2, 4]
    assert all(c.is_valid(kit.signer.jwk) for c in checkpoints)
    logged = [entry for entry in logs if entry["event"] == "audit_checkpoint"]
    assert [entry["checkpoint_seq"] for entry in logged] == [2, 4]
    assert logged[1]["checkpoint_signature"] == checkpoints[1].signature


async def test_only_events_that_close_an_interval_open_a_checkpoint_transaction(settings):
    # Every other event is one autocommitted statement: nothing else delays the answer.
    async with audit_kit(settings, checkpoint_every=3) as kit:
        statements = []
        sa_event.listen(kit.engine.sync_engine, "before_cursor_execute",
                        lambda conn, cursor, statement, *args: statements.append(statement))
        for n in range(5):
            statements.clear()
            await kit.log.record(event(query=f"q{n}"))
            binds = [s for s in statements if "gateway.audit_tenant" in s]
            assert len(binds) == (1 if n == 2 else 0), (n, statements)
        checkpoints = await kit.store.checkpoints("acme")
    assert [c.seq for c in checkpoints] == [3]


async def test_each_tenant_has_its_own_chain(settings):
    async with audit_kit(settings) as kit:
        for tenant in ("acme", "globex", "acme"):
            await kit.log.record(event(tenant=tenant))
        assert await kit.store.tenants() == ["acme", "globex"]
        assert (await kit.store.head("acme"))[0] == 2
        assert (await kit.store.head("globex"))[0] == 1


@pytest.fixture
async def chain(settings, db_urls):
    """30 events of acme (checkpoints every 10) and 5 of globex."""
    async with audit_kit(settings, checkpoint_every=10) as kit:
        for n in range(30):
            await kit.log.record(event(subject=f"user{n % 3}", query=f"q{n}",
                                       sources=[source(1), source(2, DOC_B)]))
        for n in range(5):
            await kit.log.record(event(tenant="globex", query=f"g{n}", sources=[source(1)]))
        yield kit


def _event_id(db_urls, seq: int):
    with psycopg.connect(db_urls.superuser) as conn:
        return conn.execute("SELECT id FROM audit_events WHERE tenant = 'acme' AND seq = %s", (seq,)).fetchone()[0]


def _delete(seqs) -> list[tuple[str, tuple]]:
    where = "tenant = 'acme' AND seq = ANY(%s)"
    return [(f"DELETE FROM audit_sources WHERE event_id IN (SELECT id FROM audit_events WHERE {where})", (seqs,)),
            (f"DELETE FROM audit_events WHERE {where}", (seqs,))]


async def _first_bad(kit):
    report = await verify_tenant(kit.store, "acme", kit.signer.jwk)
    assert not report.ok
    assert (await verify_tenant(kit.store, "globex", kit.signer.jwk)).ok
    bad = report.first_bad_event
    return bad.reason, bad.seq, bad.id


async def test_untouched_chain_verifies(chain):
    report = await verify_tenant(chain.store, "acme", chain.signer.jwk)
    assert report.ok
    assert (report.events_checked, report.checkpoints_checked, report.last_seq) == (30, 3, 30)


async def test_an_edited_field_is_found(chain, db_urls):
    tamper(db_urls.superuser, [("UPDATE audit_events SET subject = 'mallory' WHERE tenant = 'acme' AND seq = 12", ())])
    assert await _first_bad(chain) == ("edited", 12, str(_event_id(db_urls, 12)))


async def test_a_deleted_middle_event_is_found(chain, db_urls):
    tamper(db_urls.superuser, _delete([15]))
    assert await _first_bad(chain) == ("missing", 15, None)


async def test_a_deleted_source_row_is_found(chain, db_urls):
    victim = _event_id(db_urls, 7)
    tamper(db_urls.superuser, [("DELETE FROM audit_sources WHERE event_id = %s AND rank = 2", (victim,))])
    assert await _first_bad(chain) == ("edited", 7, str(victim))


async def test_an_edited_source_score_is_found(chain, db_urls):
    victim = _event_id(db_urls, 3)
    tamper(db_urls.superuser, [("UPDATE audit_sources SET score = 0.99 WHERE event_id = %s AND rank = 1", (victim,))])
    assert await _first_bad(chain) == ("edited", 3, str(victim))


async def test_two_swapped_events_are_found_as_reordered(chain, db_urls):
    moved = _event_id(db_urls, 21)
    tamper(db_urls.superuser, [
        ("UPDATE audit_events SET seq = 1000000 WHERE tenant = 'acme' AND seq = 20", ()),
        ("UPDATE audit_events SET seq = 20 WHERE tenant = 'acme' AND seq = 21", ()),
        ("UPDATE audit_events SET seq = 21 WHERE tenant = 'acme' AND seq = 1000000", ()),
    ])
    assert await _first_bad(chain) == ("reordered", 20, str(moved))


async def test_dropped_newest_events_are_found_by_the_checkpoint(chain, db_urls):
    tamper(db_urls.superuser, _delete(list(range(26, 31))))
    reason, seq, event_id = await _first_bad(chain)
    assert (reason, seq, event_id) == ("checkpoint_mismatch", 26, None)


async def test_a_rewritten_and_rehashed_suffix_is_found_by_the_next_checkpoint(chain, db_urls):
    """Recomputing every hash after an edit leaves a self-consistent chain; the signed checkpoint does not match."""
    edits = [("UPDATE audit_events SET query = 'nothing to see' WHERE tenant = 'acme' AND seq = 12", ())]
    tamper(db_urls.superuser, edits)
    prev = None
    async for stored in chain.store.events(EventQuery("acme"), SeqRange(11, 30)):
        document = dict(stored.document)
        if prev is not None:
            document["prev_hash"] = prev
        new_hash = document_hash(document)
        edits = [("UPDATE audit_events SET prev_hash = %s, hash = %s WHERE tenant = 'acme' AND seq = %s",
                  (document["prev_hash"], new_hash, document["seq"]))]
        tamper(db_urls.superuser, edits)
        prev = new_hash
    assert await _first_bad(chain) == ("checkpoint_mismatch", 20, str(_event_id(db_urls, 20)))


async def test_a_forged_checkpoint_is_found(chain, db_urls):
    tamper(db_urls.superuser, [("INSERT INTO audit_checkpoints SELECT tenant, seq, 'manual', hash, ts, 'forged', 'AAAA'"
                                " FROM audit_events WHERE tenant = 'acme' AND seq = 5", ())])
    assert await _first_bad(chain) == ("checkpoint_mismatch", 5, str(_event_id(db_urls, 5)))


async def test_verify_since_starts_from_that_time(chain, db_urls):
    with psycopg.connect(db_urls.superuser) as conn:
        since = conn.execute("SELECT ts FROM audit_events WHERE tenant = 'acme' AND seq = 21").fetchone()[0]
    tamper(db_urls.superuser, [("UPDATE audit_events SET subject = 'mallory' WHERE tenant = 'acme' AND seq = 12", ())])
    report = await verify_tenant(chain.store, "acme", chain.signer.jwk, since=since)
    assert report.ok
    assert (report.first_seq, report.events_checked) == (21, 10)


async def test_document_and_subject_filters_select_the_right_events(chain):
    query = EventQuery("acme", subject="user1", document_id=DOC_A)
    seqs = [e.seq async for e in chain.store.events(query, await chain.store.seq_range(query))]
    assert seqs == list(range(2, 31, 3))

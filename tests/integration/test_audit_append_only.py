"""PostgreSQL itself refuses UPDATE, DELETE and TRUNCATE on the audit tables, whoever asks."""

import psycopg
import pytest

from tests.support.audit import audit_kit, bind, event, source

pytestmark = pytest.mark.integration

TABLES = {
    "audit_events": "UPDATE audit_events SET status = 'forged'",
    "audit_sources": "UPDATE audit_sources SET score = 1.0",
    "audit_checkpoints": "UPDATE audit_checkpoints SET hash = repeat('0', 64)",
    "audit_chains": "UPDATE audit_chains SET created_at = now()",
}


async def _trail(settings) -> None:
    async with audit_kit(settings, checkpoint_every=1) as kit:
        for n in range(3):
            await kit.log.record(event(query=f"q{n}", sources=[source(1), source(2)]))


def _counts(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        bind(conn, "acme")
        return tuple(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES)


def _refusals(url: str) -> list[tuple[str, str, type, str]]:
    """Run every change on every table, each in its own rolled-back transaction."""
    outcomes = []
    with psycopg.connect(url) as conn:
        bind(conn, "acme")
        conn.commit()
        for table, update in TABLES.items():
            for op, sql in (("UPDATE", update), ("DELETE", f"DELETE FROM {table}"),
                            ("TRUNCATE", f"TRUNCATE {table} CASCADE")):
                try:
                    conn.execute(sql)
                    outcomes.append((table, op, type(None), "allowed"))
                except psycopg.Error as exc:
                    outcomes.append((table, op, type(exc), str(exc)))
                conn.rollback()
    return outcomes


async def test_runtime_role_cannot_update_delete_or_truncate_audit_tables(settings, db_urls):
    await _trail(settings)
    before = _counts(db_urls.runtime)
    for table, op, error, message in _refusals(db_urls.runtime):
        assert error is psycopg.errors.InsufficientPrivilege, (table, op, message)
    assert _counts(db_urls.runtime) == before == (3, 6, 3, 1)


@pytest.mark.parametrize("role", ["owner", "superuser"])
async def test_owner_and_superuser_are_refused_by_the_triggers(settings, db_urls, role):
    await _trail(settings)
    url = getattr(db_urls, role)
    before = _counts(url)
    for table, op, error, message in _refusals(url):
        assert error is psycopg.errors.InsufficientPrivilege, (table, op, message)
        assert "append-only" in message, (table, op, message)
    assert _counts(url) == before


async def test_owner_cannot_prune_by_setting_the_flag_without_a_prune_checkpoint(settings, db_urls):
    await _trail(settings)
    with psycopg.connect(db_urls.owner) as conn:
        conn.execute("SELECT set_config('gateway.audit_prune_tenant', 'acme', true),"
                     " set_config('gateway.audit_prune_seq', '3', true),"
                     " set_config('gateway.audit_prune_before', 'infinity', true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("DELETE FROM audit_sources")


def test_runtime_role_may_not_run_the_prune_function(db_urls):
    with psycopg.connect(db_urls.runtime) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT audit_prune('acme', 1, now(), repeat('0', 64), now(), 'k', 's')")

"""Audit events are committed with their sources; the query can be kept as a hash only."""

import psycopg
import pytest

from gateway.audit.service import query_digest
from gateway.errors import AuditUnavailableError
from tests.support.audit import audit_kit, bind, event, source

pytestmark = pytest.mark.integration


async def test_event_and_sources_are_committed(settings, db_urls):
    async with audit_kit(settings) as kit:
        event_id = await kit.log.record(event(query="what is our travel policy?", sources=[source(1)]))
    with psycopg.connect(db_urls.runtime) as conn:
        bind(conn, "acme")
        row = conn.execute("SELECT subject, tenant, query, query_sha256, seq FROM audit_events WHERE id = %s",
                           (event_id,)).fetchone()
        sources = conn.execute("SELECT rank, external_id, granted_by FROM audit_sources WHERE event_id = %s",
                               (event_id,)).fetchall()
    assert row == ("alice", "acme", "what is our travel policy?", query_digest("what is our travel policy?"), 1)
    assert sources == [(1, "ext-0a", "group:finance")]


async def test_query_kept_only_as_hash_when_configured(settings, db_urls):
    async with audit_kit(settings, store_query=False) as kit:
        event_id = await kit.log.record(event(query="secret merger plans"))
        assert (await kit.store.head("acme"))[0] == 1
    with psycopg.connect(db_urls.runtime) as conn:
        bind(conn, "acme")
        query, digest = conn.execute("SELECT query, query_sha256 FROM audit_events WHERE id = %s",
                                     (event_id,)).fetchone()
    assert query is None
    assert digest == query_digest("secret merger plans")


async def test_runtime_role_sees_no_audit_rows_without_binding_a_tenant(settings, db_urls):
    async with audit_kit(settings) as kit:
        await kit.log.record(event(tenant="acme", sources=[source(1)]))
        await kit.log.record(event(tenant="globex", sources=[source(1)]))
    with psycopg.connect(db_urls.runtime) as conn:
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone() == (0,)
        bind(conn, "globex")
        assert conn.execute("SELECT tenant FROM audit_events").fetchall() == [("globex",)]
        assert conn.execute("SELECT tenant FROM audit_sources").fetchall() == [("globex",)]


async def test_runtime_role_cannot_insert_into_another_tenants_chain(settings, db_urls):
    with psycopg.connect(db_urls.runtime) as conn:
        bind(conn, "acme")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO audit_checkpoints VALUES ('globex', 1, 'manual', %s, now(), 'k', 's')",
                         ("0" * 64,))


async def test_record_on_a_held_connection_commits_and_leaves_it_clean_for_the_pool(settings, db_urls):
    async with audit_kit(settings, pool_size=1) as kit:
        async with kit.engine.connect() as connection:
            event_id = await kit.log.record(event(sources=[source(1)]), connection=connection)
        async with kit.engine.connect() as connection:  # the same (only) pooled connection
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw.autocommit is False
    with psycopg.connect(db_urls.runtime) as conn:
        bind(conn, "acme")
        assert conn.execute("SELECT count(*) FROM audit_sources WHERE event_id = %s",
                            (event_id,)).fetchone() == (1,)


async def test_a_failed_append_on_a_held_connection_leaves_it_out_of_autocommit(settings, db_urls):
    async with audit_kit(settings, pool_size=1) as kit:
        async with kit.engine.connect() as connection:
            with pytest.raises(AuditUnavailableError):  # bigint overflow inside audit_append
                await kit.log.record(event(sources=[source(1, chunk_id=2**70)]), connection=connection)
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw.autocommit is False
            async with connection.begin():  # and usable for a transaction again
                bind_count = (await connection.exec_driver_sql("SELECT 1")).scalar_one()
        assert bind_count == 1
        assert await kit.store.head("acme") is None  # nothing written


async def test_append_is_prepared_once_per_connection_and_leaves_the_threshold_as_it_was(settings, db_urls):
    async with audit_kit(settings, pool_size=1) as kit:
        for _ in range(3):
            async with kit.engine.connect() as connection:
                await kit.log.record(event(sources=[source(1)]), connection=connection)
        async with kit.engine.connect() as connection:  # the same (only) pooled connection
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw.prepare_threshold is None
            prepared = (await connection.exec_driver_sql(
                "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")).all()
    assert [(statement.split("(", 1)[0], runs) for statement, runs in prepared] == [
        ("SELECT seq, hash, ts, held_s FROM audit_append", 3)]  # prepared by the first, run by all three


async def test_record_refuses_a_connection_inside_a_transaction_and_writes_nothing(settings, db_urls):
    async with audit_kit(settings) as kit:
        async with kit.engine.connect() as connection, connection.begin():
            with pytest.raises(AuditUnavailableError):
                await kit.log.record(event(), connection=connection)
        assert await kit.store.head("acme") is None

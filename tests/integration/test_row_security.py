"""Row-level security, the second lock: nothing without a bound principal, nothing leaks.

The access matrix and the property test show that row-level security alone admits
exactly what the reference evaluator admits; these tests cover what surrounds it: the
binding's lifetime, writers confined to their tenant, and the table owner obeying it.
"""

from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.db import migrate
from gateway.db.access import bind_principal, bind_writer, binding_statement, principal_settings
from gateway.db.engine import create_engine, session_factory
from gateway.settings import DatabaseSettings
from policies.model import AccessRule, ClassificationLevels, parse_access
from policies.principal import Principal
from tests.support.access import bind_reader, sync_engine, write_document, write_policy
from tests.support.access import bind_writer as bind_writer_sync

pytestmark = pytest.mark.integration

LEVELS = ClassificationLevels()
NOW = datetime(2026, 6, 1, tzinfo=UTC)
ALICE = Principal("alice", "acme", groups=("staff",))
TABLES = ("documents", "chunks", "access_policies", "access_policy_versions")
COUNT_ALL = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in TABLES)


@pytest.fixture
def content(db_urls):
    """One open document and one named policy in tenant acme, one document in globex."""
    owner = sync_engine(db_urls.owner)
    with owner.begin() as conn:
        bind_writer_sync(conn, "acme")
        write_policy(conn, "acme", "staff-only", AccessRule(allow=("group:staff",)), LEVELS)
        write_document(conn, "acme", parse_access({"allow": ["everyone"]}, LEVELS), LEVELS, external_id="memo")
        bind_writer_sync(conn, "globex")
        write_document(conn, "globex", parse_access({"allow": ["everyone"]}, LEVELS), LEVELS,
                       external_id="plan")
    owner.dispose()
    return db_urls


@pytest.mark.parametrize("role", ["runtime", "owner"])
def test_transaction_without_a_bound_principal_sees_nothing(content, role):
    with psycopg.connect(getattr(content, role)) as conn:
        assert conn.execute(COUNT_ALL).fetchone() == (0, 0, 0, 0)


def test_superuser_sees_everything_so_the_service_never_connects_as_one(content):
    with psycopg.connect(content.superuser) as conn:
        assert conn.execute(COUNT_ALL).fetchone() == (2, 2, 1, 1)


def test_bound_reader_sees_its_tenant_only(content):
    engine = sync_engine(content.runtime)
    with engine.begin() as conn:
        bind_reader(conn, ALICE, LEVELS, NOW)
        assert conn.execute(text(COUNT_ALL)).one() == (1, 1, 1, 1)
    engine.dispose()


async def test_binding_does_not_outlive_its_transaction_on_a_pooled_connection(content):
    engine = create_engine(content.runtime, DatabaseSettings(pool_size=1))
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            await bind_principal(session, ALICE, LEVELS, NOW)
            first_pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar()
            assert (await session.execute(text("SELECT count(*) FROM documents"))).scalar() == 1
        for ending in ("commit", "rollback"):
            async with sessions() as session:
                async with session.begin() as tx:
                    await bind_principal(session, ALICE, LEVELS, NOW)
                    if ending == "rollback":
                        await tx.rollback()
                async with session.begin():
                    pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar()
                    leftover = (await session.execute(text(
                        "SELECT current_setting('gateway.tenant', true),"
                        " current_setting('gateway.principals', true)"))).one()
                    seen = (await session.execute(text(COUNT_ALL))).one()
                assert pid == first_pid  # the same pooled connection
                assert tuple(leftover) == ("", "")
                assert tuple(seen) == (0, 0, 0, 0)
    finally:
        await engine.dispose()


async def test_writer_binding_is_transaction_local_too(content):
    engine = create_engine(content.runtime, DatabaseSettings(pool_size=1))
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            await bind_writer(session, "acme")
            assert (await session.execute(text(COUNT_ALL))).one() == (1, 1, 1, 1)
        async with sessions() as session, session.begin():
            assert (await session.execute(text(COUNT_ALL))).one() == (0, 0, 0, 0)
            with pytest.raises(DBAPIError, match="row-level security"):
                await session.execute(text(
                    "INSERT INTO access_policies (tenant, name, version, classification, body,"
                    " created_by, updated_by) VALUES ('acme', 'x', 1, 0, '{}', 'me', 'me')"))
    finally:
        await engine.dispose()


def test_writer_cannot_touch_another_tenant(content):
    with psycopg.connect(content.runtime) as conn:
        conn.execute("SELECT set_config('gateway.tenant', 'acme', true), set_config('gateway.writer', 'on', true)")
        assert conn.execute("UPDATE documents SET title = 'x' WHERE tenant = 'globex'").rowcount == 0
        assert conn.execute("DELETE FROM chunks WHERE tenant = 'globex'").rowcount == 0
        assert conn.execute("UPDATE documents SET title = 'renamed'").rowcount == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("UPDATE documents SET tenant = 'globex'")


def test_reader_cannot_write(content):
    with psycopg.connect(content.runtime) as conn:
        conn.execute("SELECT set_config('gateway.tenant', 'acme', true),"
                     " set_config('gateway.principals', '[\"everyone\"]', true),"
                     " set_config('gateway.clearance', '3', true),"
                     " set_config('gateway.now', '2026-06-01T00:00:00Z', true)")
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (1,)
        assert conn.execute("UPDATE documents SET title = 'x'").rowcount == 0
        assert conn.execute("DELETE FROM documents").rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("INSERT INTO access_policy_versions (tenant, name, version, action, changed_by)"
                         " VALUES ('acme', 'x', 1, 'create', 'me')")


def test_policy_history_is_append_only_for_the_service(content):
    with psycopg.connect(content.runtime) as conn:
        for statement in ("UPDATE access_policy_versions SET action = 'x'", "DELETE FROM access_policy_versions"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()


def test_row_security_is_enabled_and_forced(db_urls):
    with psycopg.connect(db_urls.owner) as conn:
        rows = conn.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE relname = ANY(%s) ORDER BY relname", (list(TABLES),)).fetchall()
    assert rows == [(t, True, True) for t in sorted(TABLES)]


def test_downgrade_to_0001_removes_policies_and_row_security(db_urls):
    migrate.downgrade(db_urls.owner, "0001")
    with psycopg.connect(db_urls.owner) as conn:
        security = conn.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
                                " WHERE relname = 'documents'").fetchone()
        policies = conn.execute("SELECT to_regclass('access_policies')").fetchone()
        conn.execute("INSERT INTO documents (tenant, classification, external_id, title, content_type,"
                     " body, content_sha256, access) VALUES ('t', 1, 'x', 'x', 'text/plain', 'x', 'h', '{}')")
    assert security == (False, False)
    assert policies == (None,)
    migrate.upgrade(db_urls.owner)
    with psycopg.connect(db_urls.owner) as conn:
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (0,)  # forced again


async def test_search_settings_bound_with_the_principal_are_transaction_local_and_cannot_rebind_it(content):
    engine = create_engine(content.runtime, DatabaseSettings(pool_size=1))
    sessions = session_factory(engine)
    read_back = text("SELECT current_setting('hnsw.ef_search', true), current_setting('enable_sort')")
    try:
        async with sessions() as session, session.begin():
            await bind_principal(session, ALICE, LEVELS, NOW, {"hnsw.ef_search": "321", "enable_sort": "off"})
            assert tuple((await session.execute(read_back)).one()) == ("321", "off")
            assert (await session.execute(text("SELECT count(*) FROM documents"))).scalar() == 1
        async with sessions() as session, session.begin():  # the same pooled connection
            ef_search, enable_sort = (await session.execute(read_back)).one()
        assert ef_search != "321" and enable_sort == "on"
        with pytest.raises(ValueError, match="rebind"):
            binding_statement(principal_settings(ALICE, LEVELS, NOW), {"gateway.tenant": "globex"})
    finally:
        await engine.dispose()

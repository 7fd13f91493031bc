"""Pooled connections are checked by their socket on checkout, and pinged only when it has news."""

import asyncio

import psycopg
import pytest
from sqlalchemy import text

from gateway.db.engine import create_engine
from gateway.db.liveness import is_quiet
from gateway.settings import DatabaseSettings

pytestmark = pytest.mark.integration


class PingSpy:
    """Counts the dialect's pings, which still do the real `SELECT 1`."""

    def __init__(self, engine, monkeypatch) -> None:
        dialect = engine.sync_engine.dialect
        self.count = 0
        ping = dialect.do_ping

        def counting(dbapi_connection):
            self.count += 1
            return ping(dbapi_connection)

        monkeypatch.setattr(dialect, "do_ping", counting)


async def _backend_pid(engine) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()


def _terminate(superuser_url: str, *pids: int) -> None:
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        for pid in pids:
            assert conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone() == (True,)


async def test_an_idle_pooled_connection_is_handed_out_without_a_ping(db_urls, monkeypatch):
    engine = create_engine(db_urls.runtime, DatabaseSettings(pool_size=1))
    spy = PingSpy(engine, monkeypatch)
    try:
        pids = {await _backend_pid(engine) for _ in range(5)}
    finally:
        await engine.dispose()
    assert len(pids) == 1  # the same pooled connection every time...
    assert spy.count == 0  # ...and not one SELECT 1 before its statements


async def test_a_terminated_backend_is_pinged_and_replaced_without_failing_the_checkout(db_urls, monkeypatch):
    engine = create_engine(db_urls.runtime, DatabaseSettings(pool_size=1))
    spy = PingSpy(engine, monkeypatch)
    try:
        before = await _backend_pid(engine)
        _terminate(db_urls.superuser, before)
        after = await _backend_pid(engine)
    finally:
        await engine.dispose()
    assert after != before
    assert spy.count == 1


async def test_a_failed_ping_drops_every_connection_opened_before_it(db_urls, monkeypatch):
    engine = create_engine(db_urls.runtime, DatabaseSettings(pool_size=2))
    spy = PingSpy(engine, monkeypatch)
    try:
        async with engine.connect() as first, engine.connect() as second:
            old = {(await c.execute(text("SELECT pg_backend_pid()"))).scalar_one() for c in (first, second)}
        _terminate(db_urls.superuser, *old)  # as a database restart does to every session
        async with engine.connect() as first, engine.connect() as second:
            new = {(await c.execute(text("SELECT pg_backend_pid()"))).scalar_one() for c in (first, second)}
    finally:
        await engine.dispose()
    assert len(new) == 2 and not new & old
    assert spy.count == 1  # the second connection was dropped with the pool, not pinged


async def test_a_connection_left_in_autocommit_is_never_handed_out(db_urls):
    engine = create_engine(db_urls.runtime, DatabaseSettings(pool_size=1))
    try:
        async with engine.connect() as connection:
            left = (await connection.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
            await connection.commit()
            await (await connection.get_raw_connection()).driver_connection.set_autocommit(True)
        async with engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            pid = (await connection.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
            autocommit = raw.autocommit
    finally:
        await engine.dispose()
    assert autocommit is False
    assert pid != left  # discarded, not reset and reused


async def test_a_connection_is_quiet_only_when_open_idle_and_nothing_waits_on_its_socket(db_urls):
    listener = await psycopg.AsyncConnection.connect(db_urls.runtime, autocommit=True)
    try:
        assert is_quiet(listener)
        await listener.execute("LISTEN gateway_liveness_test")
        assert is_quiet(listener)
        with psycopg.connect(db_urls.runtime, autocommit=True) as other:
            other.execute("NOTIFY gateway_liveness_test")
        await _until(lambda: not is_quiet(listener))  # a notification waits on the socket

        await listener.set_autocommit(False)
        await listener.execute("SELECT 1")
        assert not is_quiet(listener)  # inside a transaction
        await listener.rollback()
    finally:
        await listener.close()
    assert not is_quiet(listener)  # closed


async def _until(condition, within_s: float = 5.0) -> None:
    for _ in range(int(within_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")

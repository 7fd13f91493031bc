"""Pooled connections checked on checkout by their socket, pinged only when it has news.

SQLAlchemy's `pool_pre_ping` sends `SELECT 1` on every checkout: a round trip on every
request, to learn what the socket already says. A pooled connection is idle between
transactions, and PostgreSQL sends nothing on an idle session unless the session is
ending (an administrator's terminate, a shutdown or restart, a crash: an error message,
then end of file) or it has something asynchronous to report (a notice, a changed
parameter). So a checkout first looks at the socket without waiting: nothing to read,
and psycopg sees the connection open and idle, means the connection is handed out as
it is. Anything else (data or end of file waiting, an error or hang-up on the socket, a
closed connection, a transaction left open) gets the same `SELECT 1` the pool's pre-ping
sends, and a connection that fails it is a disconnect: the pool drops every connection
opened before it, as pre-ping does, and the checkout retries on a new one.

A connection is never handed out in autocommit, whatever left it so: the principal's
binding is transaction-local and would not reach the search. The pool discards it and
takes another.

What the socket cannot show is a peer that vanished without closing the connection (a
network partition to a remote database); there the ping would wait on the same dead
socket, and the request's statement fails instead, into the same 503 and the same pool
invalidation.
"""

from __future__ import annotations

import select
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine


def check_on_checkout(engine: AsyncEngine) -> None:
    """Check every connection `engine` hands out: by its socket, pinging only when that is not quiet."""
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        connection = dbapi_connection.driver_connection
        if connection.autocommit:  # each statement its own transaction: a binding would not last
            raise exc.DisconnectionError("a pooled connection was left in autocommit")
        if is_quiet(connection):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except psycopg.Error as error:
            raise exc.InvalidatePoolError(f"connection failed its ping on checkout: {error}") from error


def is_quiet(connection: psycopg.AsyncConnection[Any]) -> bool:
    """True when the connection is open, idle, and its socket has nothing to read."""
    if connection.closed or connection.info.transaction_status != TransactionStatus.IDLE:
        return False
    try:
        socket = connection.fileno()
    except psycopg.OperationalError:  # libpq has no socket: the connection is lost
        return False
    poller = select.poll()
    poller.register(socket, select.POLLIN | select.POLLPRI)
    return not poller.poll(0)

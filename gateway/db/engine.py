"""Async SQLAlchemy engines on psycopg 3.

Server-side prepared statements are off by default (`prepare_threshold=None`): psycopg
would otherwise prepare any statement run five times, and PostgreSQL may then switch it
to a generic plan that cannot see the access-control values. The only statements
prepared are named, explicitly (`prepared_statements`, `driver_prepares`): the
retrieval searches, whose plan the gateway chooses itself and whose shape the statement
pins (`gateway.retrieval.repository`), and the audit append, a call of one function.

Parallel query is off (`max_parallel_workers_per_gather=0`): the rows a search examined
are read from this backend's statistics counters, which do not include what parallel
workers read, and under concurrent requests on a few cores the workers compete with
other requests rather than speeding one up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg import _queries
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from gateway.db.liveness import check_on_checkout
from gateway.db.vectors import register_vector_type
from gateway.settings import DatabaseSettings

# psycopg converts a statement's `%(name)s` placeholders with a regular expression and
# caches the result only for statements up to 4,096 characters (for ORMs' one-off
# multi-row INSERTs). The search statements are 4.5-6 kB and run on every request: their
# conversion (0.12 ms each) is cached too. The statements' shapes are few and reused.
_queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, 16_384)


def sqlalchemy_url(url: str) -> str:
    """Normalise `postgres://` / `postgresql://` URLs to the psycopg 3 driver."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def create_engine(url: str, settings: DatabaseSettings) -> AsyncEngine:
    """Create the runtime engine with bounded pool, connect and statement timeouts."""
    engine = create_async_engine(
        sqlalchemy_url(url),
        pool_size=settings.pool_size,
        max_overflow=0,
        pool_timeout=settings.pool_timeout_s,
        pool_recycle=1800,
        connect_args={
            "prepare_threshold": None,
            "connect_timeout": settings.connect_timeout_s,
            "options": f"-c statement_timeout={settings.statement_timeout_ms} "
                       "-c max_parallel_workers_per_gather=0",
            "application_name": "gateway",
        },
    )
    register_vector_type(engine)
    check_on_checkout(engine)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    """Sessions that keep loaded values after commit (values cross stages frozen)."""
    return async_sessionmaker(engine, expire_on_commit=False)


Executor = AsyncSession | AsyncConnection
"""Where a statement runs: a session, or a Core connection (in the transaction it has begun)."""


async def core_connection(executor: Executor) -> AsyncConnection:
    """The Core connection a statement of `executor` runs on (a session's: in its transaction).

    Hot paths execute on the connection: the ORM's execution and row loading cost more
    per statement than a small search costs PostgreSQL.
    """
    return await executor.connection() if isinstance(executor, AsyncSession) else executor


@asynccontextmanager
async def prepared_statements(executor: Executor) -> AsyncIterator[None]:
    """Prepare the statements run inside on the server (once per connection) and reuse them.

    psycopg's prepare threshold is lowered to 0 for the block only, on this session's (or
    connection's) database connection; a statement prepared here is reused whenever it
    runs in such a block again.
    """
    with driver_prepares(await driver_connection(executor)):
        yield


async def driver_connection(executor: Executor) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under `executor`'s pooled connection."""
    connection = (await (await core_connection(executor)).get_raw_connection()).driver_connection
    if not isinstance(connection, psycopg.AsyncConnection):
        raise TypeError("expected a live psycopg connection")
    return connection


@contextmanager
def driver_prepares(connection: psycopg.AsyncConnection[Any]) -> Iterator[None]:
    """Let psycopg prepare on the server every statement `connection` runs in the block."""
    previous = connection.prepare_threshold
    connection.prepare_threshold = 0
    try:
        yield
    finally:
        connection.prepare_threshold = previous

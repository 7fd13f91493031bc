"""Appending to a tenant's hash chain: the one step that must be serialised, kept short.

Everything that does not depend on the chain's head is done before the lock: the rows
are built, JSON normalised, and the body hash computed here. Then one statement,
`audit_append(event, sources, body_sha256)`, run in autocommit, binds the tenant,
takes the chain's transaction-level advisory lock, reads the head, computes the link
hash (seq, ts, prev_hash), inserts the event and its sources and commits - the lock is
never held across a client round trip. Each tenant has its own chain and lock, so
tenants never wait for each other. The function reports how long it held the lock
(`gateway_audit_chain_lock_seconds`; the commit's WAL flush comes on top).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.audit.canonical import body_document, canonical_json, sha256_hex
from gateway.audit.checkpoints import Checkpoint, sign_checkpoint, store_checkpoint
from gateway.audit.signing import AuditSigner
from gateway.db.engine import (
    Executor,
    core_connection,
    driver_connection,
    driver_prepares,
    prepared_statements,
)

_APPEND = ("SELECT seq, hash, ts, held_s FROM audit_append("
           "CAST(%(event)s AS jsonb), CAST(%(sources)s AS jsonb), %(body_sha256)s)")


def _json(value: Any) -> str:
    return json.dumps(value, default=lambda v: str(v) if isinstance(v, uuid.UUID) else v)


@dataclass(frozen=True)
class PreparedEvent:
    """An event's columns (all but seq, ts, prev_hash, hash) and its source rows, ready to chain."""

    row: Mapping[str, Any]
    sources: Sequence[Mapping[str, Any]] = field(default_factory=tuple)

    @property
    def tenant(self) -> str:
        """The chain the event joins."""
        return str(self.row["tenant"])

    def body_sha256(self) -> str:
        """Hash of the part of the document that does not depend on the chain."""
        return sha256_hex(canonical_json(body_document(self.row, self.sources)))


@dataclass(frozen=True)
class Appended:
    """Where the event landed in its chain, and how long the chain was locked for it."""

    seq: int
    hash: str
    ts: datetime
    held_s: float


def _values(event: PreparedEvent) -> dict[str, str]:
    return {
        "event": _json(dict(event.row)),
        "sources": _json([dict(s) for s in event.sources]),
        "body_sha256": event.body_sha256(),
    }


async def append_event(executor: Executor, event: PreparedEvent) -> Appended:
    """Chain and insert `event` with one statement, in the caller's transaction (committed by it).

    The statement is prepared on the server once per connection: it only calls
    `audit_append`, so its plan depends on no value, and parsing and planning it on every
    request cost more than a tenth of the append.
    """
    connection = await core_connection(executor)
    async with prepared_statements(connection):
        row = (await connection.exec_driver_sql(_APPEND, _values(event))).one()
    return Appended(seq=int(row.seq), hash=str(row.hash), ts=row.ts, held_s=float(row.held_s))


async def append_committed(connection: AsyncConnection, event: PreparedEvent) -> Appended:
    """Chain and insert `event` with one statement of its own, committed when this returns.

    `connection` is one the caller holds, outside any transaction. The statement runs on
    the psycopg connection under it, in autocommit for that one statement only, prepared
    once per connection: SQLAlchemy's isolation-level switch (there and back) and its
    execution took 0.5 ms of the append's 2.4 on every request. The connection goes back
    out of autocommit before this returns or raises, so the pool never hands out one that
    would run a principal's binding and search as separate transactions (the pool's
    checkout refuses such a connection as well, `gateway.db.liveness`).
    """
    if connection.in_transaction():
        raise RuntimeError("a committed append needs a connection outside any transaction")
    values = _values(event)
    driver = await driver_connection(connection)
    await driver.set_autocommit(True)
    try:
        with driver_prepares(driver):
            row = await (await driver.execute(_APPEND, values)).fetchone()
    finally:
        await driver.set_autocommit(False)
    if row is None:
        raise RuntimeError("audit_append returned no row")
    seq, hash_, ts, held_s = row
    return Appended(seq=int(seq), hash=str(hash_), ts=ts, held_s=float(held_s))


def checkpoint_due(seq: int, every: int) -> bool:
    """Whether the event at `seq` closes a periodic checkpoint interval (seq a multiple of `every`)."""
    return seq % every == 0


async def checkpoint_if_due(session: AsyncSession, signer: AuditSigner, tenant: str, appended: Appended,
                            every: int) -> Checkpoint | None:
    """Sign and store a periodic checkpoint when the new seq is a multiple of `every`."""
    if not checkpoint_due(appended.seq, every):
        return None
    checkpoint = sign_checkpoint(signer, tenant=tenant, seq=appended.seq, kind="periodic",
                                 head_hash=appended.hash, ts=appended.ts)
    await store_checkpoint(session, checkpoint)
    return checkpoint

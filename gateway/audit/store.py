"""Reading the audit trail: one tenant's events in chain order, in bounded keyset batches.

Every read runs in a short transaction bound to one tenant (`gateway.audit_tenant`), so
row-level security keeps the runtime role inside that tenant; no read needs to bypass
it. Batches are fetched by `seq > last` on the (tenant, seq) index and released before
they are yielded, so a million events stream in constant memory and no transaction
stays open while a slow client reads.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, any_, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.canonical import event_document
from gateway.audit.checkpoints import Checkpoint, latest_prune, load_checkpoints, store_checkpoint
from gateway.db.audit_models import AuditChainRow, AuditEventRow, AuditSourceRow

EVENTS = AuditEventRow.__table__
SOURCES = AuditSourceRow.__table__


@dataclass(frozen=True)
class EventQuery:
    """Which events of one tenant: time range [since, until), subject, document, action."""

    tenant: str
    since: datetime | None = None
    until: datetime | None = None
    subject: str | None = None
    document_id: uuid.UUID | None = None
    action: str | None = None


@dataclass(frozen=True)
class SeqRange:
    """A stretch of one chain: after < seq <= through."""

    after: int
    through: int

    @property
    def empty(self) -> bool:
        """No event can fall inside."""
        return self.through <= self.after


@dataclass(frozen=True)
class StoredEvent:
    """An event's document (as hashed) and the hash stored with it."""

    document: dict[str, Any]
    hash: str

    @property
    def seq(self) -> int:
        """Position in its chain."""
        return int(self.document["seq"])


async def bind_tenant(session: AsyncSession, tenant: str) -> None:
    """Bind the transaction to one tenant's audit rows (row-level security for the runtime role)."""
    await session.execute(text("SELECT set_config('gateway.audit_tenant', :tenant, true)"),
                          {"tenant": tenant})


def _event_select(query: EventQuery, after: int, through: int, limit: int) -> Select[Any]:
    stmt = select(EVENTS).where(EVENTS.c.tenant == query.tenant, EVENTS.c.seq > after,
                                EVENTS.c.seq <= through)
    if query.since is not None:
        stmt = stmt.where(EVENTS.c.ts >= query.since)
    if query.until is not None:
        stmt = stmt.where(EVENTS.c.ts < query.until)
    if query.subject is not None:
        stmt = stmt.where(EVENTS.c.subject == query.subject)
    if query.action is not None:
        stmt = stmt.where(EVENTS.c.action == query.action)
    if query.document_id is not None:
        stmt = stmt.where(EVENTS.c.id.in_(
            select(SOURCES.c.event_id).where(SOURCES.c.tenant == query.tenant,
                                             SOURCES.c.document_id == query.document_id)))
    return stmt.order_by(EVENTS.c.seq).limit(limit)


class AuditStore:
    """Read access to the chains, through sessions of the runtime role (or the owner, for retention)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, batch_size: int = 1000) -> None:
        self._sessions = sessions
        self.batch_size = batch_size

    def session(self) -> AsyncSession:
        """A new session (callers bind a tenant before reading)."""
        return self._sessions()

    async def tenants(self) -> list[str]:
        """Every tenant whose chain has started."""
        async with self._sessions() as session:
            return list((await session.scalars(select(AuditChainRow.tenant).order_by("tenant"))).all())

    async def head(self, tenant: str) -> tuple[int, str] | None:
        """The newest event's (seq, hash)."""
        async with self._sessions() as session, session.begin():
            await bind_tenant(session, tenant)
            row = (await session.execute(
                select(EVENTS.c.seq, EVENTS.c.hash).where(EVENTS.c.tenant == tenant)
                .order_by(EVENTS.c.seq.desc()).limit(1))).first()
        return None if row is None else (int(row.seq), str(row.hash))

    async def _first_seq_from(self, session: AsyncSession, tenant: str, ts: datetime) -> int | None:
        return await session.scalar(
            select(EVENTS.c.seq).where(EVENTS.c.tenant == tenant, EVENTS.c.ts >= ts)
            .order_by(EVENTS.c.ts, EVENTS.c.seq).limit(1))

    async def seq_range(self, query: EventQuery) -> SeqRange:
        """The chain stretch a query covers, up to the head as of now.

        Timestamps never decrease along a chain, so a time range is a seq range.
        """
        async with self._sessions() as session, session.begin():
            await bind_tenant(session, query.tenant)
            head = await session.scalar(select(func.max(EVENTS.c.seq)).where(EVENTS.c.tenant == query.tenant))
            through = int(head or 0)
            after = 0
            if query.since is not None:
                first = await self._first_seq_from(session, query.tenant, query.since)
                after = through if first is None else first - 1
            if query.until is not None:
                end = await self._first_seq_from(session, query.tenant, query.until)
                through = through if end is None else end - 1
        return SeqRange(after=after, through=through)

    async def events(self, query: EventQuery, span: SeqRange) -> AsyncIterator[StoredEvent]:
        """The matching events inside `span`, in seq order, a batch at a time."""
        last = span.after
        while last < span.through:
            async with self._sessions() as session, session.begin():
                await bind_tenant(session, query.tenant)
                rows = (await session.execute(
                    _event_select(query, last, span.through, self.batch_size))).mappings().all()
                sources = await self._sources(session, [row["id"] for row in rows])
            for row in rows:
                yield StoredEvent(event_document(row, sources.get(row["id"], ())), row["hash"])
            if len(rows) < self.batch_size:
                return
            last = int(rows[-1]["seq"])

    @staticmethod
    async def _sources(session: AsyncSession,
                       event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
        grouped: dict[uuid.UUID, list[Any]] = defaultdict(list)
        if event_ids:
            ids = bindparam("ids", list(event_ids), type_=ARRAY(UUID(as_uuid=True)))
            rows = (await session.execute(
                select(SOURCES).where(SOURCES.c.event_id == any_(ids))
                .order_by(SOURCES.c.event_id, SOURCES.c.rank))).mappings().all()
            for row in rows:
                grouped[row["event_id"]].append(row)
        return grouped

    async def seq_of_hash(self, tenant: str, event_hash: str) -> int | None:
        """The highest seq of an event of `tenant` stored with this hash."""
        async with self._sessions() as session, session.begin():
            await bind_tenant(session, tenant)
            return await session.scalar(
                select(EVENTS.c.seq).where(EVENTS.c.tenant == tenant, EVENTS.c.hash == event_hash)
                .order_by(EVENTS.c.seq.desc()).limit(1))

    async def checkpoints(self, tenant: str, *, min_seq: int = 0,
                          max_seq: int | None = None) -> list[Checkpoint]:
        """A tenant's signed checkpoints in seq order."""
        async with self._sessions() as session, session.begin():
            await bind_tenant(session, tenant)
            return await load_checkpoints(session, tenant, min_seq=min_seq, max_seq=max_seq)

    async def latest_prune(self, tenant: str) -> Checkpoint | None:
        """Where a pruned chain now starts."""
        async with self._sessions() as session, session.begin():
            await bind_tenant(session, tenant)
            return await latest_prune(session, tenant)

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint (idempotent)."""
        async with self._sessions() as session, session.begin():
            await bind_tenant(session, checkpoint.tenant)
            await store_checkpoint(session, checkpoint)

"""Reports for people: what one user asked and was shown, and who received a document's content.

The subject report answers access requests; the document report answers incident
response ("who saw D?").

Both are one JSON object streamed in chunks: a summary computed by one aggregate
query first, then the events themselves from the store's keyset batches, so a heavy
user's or a popular document's report does not have to fit in memory.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, distinct, func, select

from gateway.audit.canonical import format_ts
from gateway.audit.store import EVENTS, SOURCES, AuditStore, EventQuery, StoredEvent, bind_tenant

_CHUNK_BYTES = 64 * 1024


def _summary_columns() -> list[Any]:
    return [
        func.count(distinct(SOURCES.c.event_id)).label("events"),
        func.count().label("chunks"),
        func.min(EVENTS.c.ts).label("first_ts"),
        func.max(EVENTS.c.ts).label("last_ts"),
        func.array_agg(distinct(SOURCES.c.document_version)).label("versions"),
    ]


def _summary(row: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {**{k: str(row[k]) for k in keys}, "events": row["events"], "chunks": row["chunks"],
            "first_ts": format_ts(row["first_ts"]), "last_ts": format_ts(row["last_ts"]),
            "versions": sorted(row["versions"])}


async def _aggregate(store: AuditStore, tenant: str, query: Select[Any]) -> list[Mapping[str, Any]]:
    async with store.session() as session, session.begin():
        await bind_tenant(session, tenant)
        return list((await session.execute(query)).mappings().all())


async def _stream(head: dict[str, Any], events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    opening = json.dumps(head, ensure_ascii=False)
    buffer = bytearray((opening[:-1] + ',"events":[').encode("utf-8"))
    count = 0
    async for event in events:
        buffer += (b"," if count else b"") + json.dumps(event, ensure_ascii=False).encode("utf-8")
        count += 1
        if len(buffer) >= _CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    buffer += f'],"event_count":{count}}}'.encode()
    yield bytes(buffer)


def _event_view(event: StoredEvent, *fields: str) -> dict[str, Any]:
    document = event.document
    return {k: document[k] for k in ("id", "seq", "ts", "request_id", "action", "status", *fields)}


async def subject_report(store: AuditStore, tenant: str, subject: str) -> AsyncIterator[bytes]:
    """Everything `subject` asked and was shown: per-document summary, then every event."""
    documents = await _aggregate(store, tenant, select(
        SOURCES.c.document_id, SOURCES.c.external_id, *_summary_columns())
        .select_from(SOURCES.join(EVENTS, EVENTS.c.id == SOURCES.c.event_id))
        .where(EVENTS.c.tenant == tenant, EVENTS.c.subject == subject)
        .group_by(SOURCES.c.document_id, SOURCES.c.external_id).order_by(SOURCES.c.document_id))
    head = {"report": "subject", "tenant": tenant, "subject": subject,
            "generated_at": format_ts(datetime.now(UTC)),
            "documents": [_summary(row, "document_id", "external_id") for row in documents]}
    query = EventQuery(tenant, subject=subject)
    span = await store.seq_range(query)

    async def events() -> AsyncIterator[dict[str, Any]]:
        async for event in store.events(query, span):
            yield {**_event_view(event, "query", "query_sha256", "sources"), "hash": event.hash}

    return _stream(head, events())


async def document_report(store: AuditStore, tenant: str, document_id: uuid.UUID) -> AsyncIterator[bytes]:
    """Every user who received content from the document: per-user summary, then every event."""
    recipients = await _aggregate(store, tenant, select(
        EVENTS.c.subject, EVENTS.c.issuer, *_summary_columns())
        .select_from(SOURCES.join(EVENTS, EVENTS.c.id == SOURCES.c.event_id))
        .where(SOURCES.c.tenant == tenant, SOURCES.c.document_id == document_id)
        .group_by(EVENTS.c.subject, EVENTS.c.issuer).order_by(EVENTS.c.subject, EVENTS.c.issuer))
    head = {"report": "document", "tenant": tenant, "document_id": str(document_id),
            "generated_at": format_ts(datetime.now(UTC)),
            "recipients": [_summary(row, "subject", "issuer") for row in recipients]}
    query = EventQuery(tenant, document_id=document_id)
    span = await store.seq_range(query)
    wanted = str(document_id)

    async def events() -> AsyncIterator[dict[str, Any]]:
        async for event in store.events(query, span):
            shown = [s for s in event.document["sources"] if s["document_id"] == wanted]
            yield {**_event_view(event, "subject", "issuer"), "sources": shown, "hash": event.hash}

    return _stream(head, events())

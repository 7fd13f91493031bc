"""The SQL of ingestion: one transaction writes a batch of documents and their chunks.

Within the caller's transaction, `write_batch` locks the batch's existing documents,
decides per document whether its content changed, and then writes everything in a few
set-based statements: new documents inserted, changed ones bumped to a new version with
their old chunks deleted, unchanged ones given their new metadata and access, and all
new chunks inserted with one executemany. If the stored state no longer matches what
the caller embedded for (a concurrent writer got there first), it raises StaleWrite and
the caller retries; the rolled-back transaction leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.access import access_column_values
from gateway.db.models import Chunk, Document
from gateway.ingestion.chunking import TextChunk
from gateway.ingestion.documents import PreparedDocument
from policies.model import ClassificationLevels

DOCUMENTS: Table = Document.__table__  # type: ignore[assignment]
CHUNKS: Table = Chunk.__table__  # type: ignore[assignment]
ACCESS_COLUMNS = ("tenant", "allow", "deny", "classification", "conditions", "valid_from",
                  "valid_until", "policy_name")


class StaleWriteError(Exception):
    """The stored documents changed between planning and writing; plan again."""


@dataclass(frozen=True)
class EmbeddedChunk:
    """A chunk with its vector, ready to insert."""

    chunk: TextChunk
    embedding: Sequence[float]


@dataclass(frozen=True)
class Written:
    """What happened to one document: its id, version, chunk count, and status."""

    id: uuid.UUID
    external_id: str
    version: int
    chunks: int
    status: str  # created | new_version | metadata_updated | unchanged


def _document_values(doc: PreparedDocument, levels: ClassificationLevels) -> dict[str, Any]:
    """The document row: the shared access columns (and canonical `access`), then content."""
    return {
        **access_column_values(doc.access, levels, tenant=doc.tenant),
        "external_id": doc.external_id,
        "title": doc.source.title,
        "source_uri": doc.source.source_uri,
        "content_type": doc.extracted.content_type,
        "metadata": dict(doc.source.metadata),
        "body": doc.extracted.text,
        "content_sha256": doc.content_sha256,
    }


async def current_hashes(session: AsyncSession, tenant: str, external_ids: Sequence[str]) -> dict[str, str]:
    """The stored content hash of each of these documents that exists (no lock taken)."""
    rows = await session.execute(
        select(DOCUMENTS.c.external_id, DOCUMENTS.c.content_sha256)
        .where(DOCUMENTS.c.tenant == tenant, DOCUMENTS.c.external_id.in_(list(external_ids)))
    )
    return {row.external_id: row.content_sha256 for row in rows}


async def _lock_existing(session: AsyncSession, tenant: str, ids: list[str]) -> dict[str, Any]:
    rows = await session.execute(
        select(DOCUMENTS.c.id, DOCUMENTS.c.external_id, DOCUMENTS.c.content_sha256,
               DOCUMENTS.c.version, DOCUMENTS.c.title, DOCUMENTS.c.source_uri,
               DOCUMENTS.c.metadata, DOCUMENTS.c.access, DOCUMENTS.c.content_type)
        .where(DOCUMENTS.c.tenant == tenant, DOCUMENTS.c.external_id.in_(ids))
        .order_by(DOCUMENTS.c.external_id)
        .with_for_update()
    )
    return {row.external_id: row for row in rows}


async def write_batch(
    session: AsyncSession,
    tenant: str,
    documents: Sequence[PreparedDocument],
    embedded: Mapping[str, Sequence[EmbeddedChunk]],
    levels: ClassificationLevels,
) -> list[Written]:
    """Write documents of one tenant (unique external ids) in the caller's transaction."""
    existing = await _lock_existing(session, tenant, [d.external_id for d in documents])
    values = {d.external_id: _document_values(d, levels) for d in documents}
    fresh = [d for d in documents if d.external_id not in existing]
    changed = [d for d in documents if d.external_id in existing
               and existing[d.external_id].content_sha256 != d.content_sha256]
    same = [d for d in documents if d.external_id in existing
            and existing[d.external_id].content_sha256 == d.content_sha256]
    if any(d.external_id not in embedded for d in (*fresh, *changed)):
        raise StaleWriteError("content changed since it was embedded")
    ids = await _insert_documents(session, [values[d.external_id] for d in fresh])
    if len(ids) != len(fresh):
        raise StaleWriteError("a document was created concurrently")
    versions = {external_id: 1 for external_id in ids}
    for d in changed:
        ids[d.external_id] = existing[d.external_id].id
        versions[d.external_id] = existing[d.external_id].version + 1
    await _replace_versions(session, [(ids[d.external_id], versions[d.external_id],
                                       values[d.external_id]) for d in changed])
    written_chunks = await _insert_chunks(session, [
        (ids[d.external_id], versions[d.external_id], values[d.external_id], embedded[d.external_id])
        for d in (*fresh, *changed)
    ])
    statuses = await _refresh_unchanged(session, [(existing[d.external_id], values[d.external_id])
                                                  for d in same])
    counts = await _chunk_counts(session, [existing[d.external_id].id for d in same])
    created = {d.external_id for d in fresh}
    results = {d.external_id: Written(ids[d.external_id], d.external_id, versions[d.external_id],
                                      written_chunks[ids[d.external_id]],
                                      "created" if d.external_id in created else "new_version")
               for d in (*fresh, *changed)}
    for d in same:
        row = existing[d.external_id]
        results[d.external_id] = Written(row.id, d.external_id, row.version, counts.get(row.id, 0),
                                         statuses[row.id])
    return [results[d.external_id] for d in documents]


async def _insert_documents(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[str, uuid.UUID]:
    if not rows:
        return {}
    statement = (pg_insert(DOCUMENTS).on_conflict_do_nothing(index_elements=["tenant", "external_id"])
                 .returning(DOCUMENTS.c.id, DOCUMENTS.c.external_id))
    result = await session.execute(statement, rows)
    return {row.external_id: row.id for row in result}


async def _replace_versions(session: AsyncSession, rows: list[tuple[uuid.UUID, int, dict[str, Any]]]) -> None:
    """A new version: new content and access on the document, its old chunks deleted."""
    if not rows:
        return
    params = [{**_without(values, "tenant", "external_id"), "_id": doc_id, "version": version}
              for doc_id, version, values in rows]
    await session.execute(_update_by(DOCUMENTS.c.id), params)
    await session.execute(delete(CHUNKS).where(CHUNKS.c.document_id.in_([r[0] for r in rows])))


async def _insert_chunks(
    session: AsyncSession,
    documents: list[tuple[uuid.UUID, int, dict[str, Any], Sequence[EmbeddedChunk]]],
) -> dict[uuid.UUID, int]:
    """All chunks of the batch in one executemany, each carrying its document's access."""
    rows: list[dict[str, Any]] = []
    for doc_id, version, values, chunks in documents:
        access = {name: values[name] for name in ACCESS_COLUMNS}
        rows.extend({
            **access, "document_id": doc_id, "document_version": version,
            "ordinal": item.chunk.ordinal, "text": item.chunk.text,
            "content_sha256": hashlib.sha256(item.chunk.text.encode("utf-8")).hexdigest(),
            "char_start": item.chunk.start, "char_end": item.chunk.end,
            "heading_path": list(item.chunk.heading_path), "embedding": list(item.embedding),
        } for item in chunks)
    if rows:
        await session.execute(insert(CHUNKS), rows)
    return {doc_id: len(chunks) for doc_id, _, _, chunks in documents}


async def _refresh_unchanged(
    session: AsyncSession, pairs: list[tuple[Any, dict[str, Any]]]
) -> dict[uuid.UUID, str]:
    """Same content: keep version and chunks, but apply new metadata and access."""
    statuses: dict[uuid.UUID, str] = {}
    documents: list[dict[str, Any]] = []
    chunk_access: list[dict[str, Any]] = []
    for row, values in pairs:
        described = {"title": values["title"], "source_uri": values["source_uri"],
                     "metadata": values["metadata"], "access": values["access"],
                     "content_type": values["content_type"]}
        if all(getattr(row, name) == value for name, value in described.items()):
            statuses[row.id] = "unchanged"
            continue
        statuses[row.id] = "metadata_updated"
        access = _without({name: values[name] for name in ACCESS_COLUMNS}, "tenant")
        documents.append({**described, **access, "_id": row.id})
        if row.access != values["access"]:
            chunk_access.append({**access, "_id": row.id})
    if documents:
        await session.execute(_update_by(DOCUMENTS.c.id), documents)
    if chunk_access:
        await session.execute(_update_by(CHUNKS.c.document_id), chunk_access)
    return statuses


def _without(values: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in names}


def _update_by(key: Any) -> Any:
    """An executemany UPDATE: SET from each parameter set's column keys, WHERE key = :_id."""
    statement = update(key.table).where(key == bindparam("_id"))
    return statement.values(updated_at=func.now()) if key.table is DOCUMENTS else statement


async def _chunk_counts(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not ids:
        return {}
    rows = await session.execute(
        select(CHUNKS.c.document_id, func.count()).where(CHUNKS.c.document_id.in_(ids))
        .group_by(CHUNKS.c.document_id)
    )
    return {row[0]: int(row[1]) for row in rows}


async def delete_document(session: AsyncSession, tenant: str, document_id: uuid.UUID) -> bool:
    """Delete a document of `tenant` and (by cascade) its chunks; False if there is none."""
    result = await session.execute(
        delete(DOCUMENTS).where(DOCUMENTS.c.id == document_id, DOCUMENTS.c.tenant == tenant)
        .returning(DOCUMENTS.c.id)
    )
    return result.first() is not None

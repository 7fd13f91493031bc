"""Ingestion for a principal: prepare, chunk and embed only what changed, write atomically.

The order for a batch of documents of one tenant:
1. prepare each (access block, tenant, size, type, text): a bad one fails alone;
2. read the stored content hashes; only new or changed documents are chunked and
   embedded, outside any transaction (embedding is slow; locks must not wait on it);
3. one transaction locks the documents and writes them (`store.write_batch`); if the
   stored state moved meanwhile, plan again. If the batch transaction fails, each
   document is retried on its own, so one bad row cannot sink the others and no
   document is ever half-written.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.service import AuditLog
from gateway.db.access import bind_writer
from gateway.domain import AuditEvent
from gateway.errors import (
    ConflictError,
    GatewayError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)
from gateway.ingestion import store
from gateway.ingestion.chunking import Chunker, Tokenizer
from gateway.ingestion.documents import DocumentInput, PreparedDocument, prepare
from gateway.ingestion.embedders import Embedder
from gateway.ingestion.store import EmbeddedChunk, Written
from gateway.ingestion.tokens import WordPieceTokenizer
from gateway.settings import Settings
from policies.principal import Principal

log = structlog.get_logger("gateway.ingestion")
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class IngestFailure:
    """A document that was not ingested, and why (the error says which 4xx/5xx it is)."""

    external_id: str
    error: GatewayError


IngestOutcome = Written | IngestFailure


class _DatabaseWriteError(UnavailableError):
    """Writing a batch failed in the database: worth retrying its documents one by one."""


class IngestionService:
    """Writes documents with their chunks, embeddings and access for ingesting principals."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], embedder: Embedder, settings: Settings,
                 *, audit: AuditLog | None = None, tokenizer: Tokenizer | None = None) -> None:
        self._sessions = sessions
        self._embedder = embedder
        self._audit = audit
        self._levels = settings.policy.classification_levels()
        self._max_bytes = settings.ingestion.max_document_bytes
        self._chunker = Chunker(tokenizer or WordPieceTokenizer(), settings.ingestion.chunk_tokens,
                                settings.ingestion.chunk_overlap_tokens)

    async def ingest(self, principal: Principal, document: DocumentInput, *, request_id: str = "") -> Written:
        """Ingest one document (the API path); a failure is raised as the domain error it is.

        Only a success is audited here: the HTTP layer audits every failed request.
        """
        outcome = (await self._ingest(principal, [document]))[0]
        if isinstance(outcome, IngestFailure):
            raise outcome.error
        await self._record_ingest(principal, [outcome], request_id)
        return outcome

    async def ingest_many(
        self, principal: Principal, documents: Sequence[DocumentInput], *, request_id: str = ""
    ) -> list[IngestOutcome]:
        """Ingest a batch (the bulk path); one outcome per document, in order.

        The batch is audited as one `document.ingest` event listing every outcome.
        """
        results = await self._ingest(principal, documents)
        await self._record_ingest(principal, results, request_id)
        return results

    async def _ingest(self, principal: Principal, documents: Sequence[DocumentInput]) -> list[IngestOutcome]:
        """Prepare each document, then write in rounds; repeated external ids apply in order."""
        outcomes: list[IngestOutcome | None] = [None] * len(documents)
        prepared: list[tuple[int, PreparedDocument]] = []
        for position, document in enumerate(documents):
            try:
                prepared.append((position, await asyncio.to_thread(
                    prepare, document, principal, self._levels, max_bytes=self._max_bytes)))
            except GatewayError as exc:
                outcomes[position] = IngestFailure(document.external_id, exc)
        for batch in _rounds(prepared):
            written = await self._write_isolated([document for _, document in batch])
            for (position, _), outcome in zip(batch, written, strict=True):
                outcomes[position] = outcome
        return [outcome for outcome in outcomes if outcome is not None]

    async def delete(self, principal: Principal, document_id: uuid.UUID, *, request_id: str = "") -> None:
        """Delete a document of the principal's tenant with its chunks; 404 if there is none."""
        async with self._sessions() as session, session.begin():
            await bind_writer(session, principal.tenant)
            deleted = await store.delete_document(session, principal.tenant, document_id)
        if not deleted:
            raise NotFoundError("No such document.")  # audited by the HTTP layer, like every 404
        await self._record(principal, request_id, "document.delete", "ok", {"document_id": str(document_id)})

    async def _record_ingest(
        self, principal: Principal, results: list[IngestOutcome], request_id: str
    ) -> None:
        entries = [
            {"external_id": r.external_id, "error": r.error.status_code} if isinstance(r, IngestFailure)
            else {"external_id": r.external_id, "document_id": str(r.id), "version": r.version,
                  "status": r.status}
            for r in results
        ]
        failures = [r for r in results if isinstance(r, IngestFailure)]
        if any(isinstance(f.error, PermissionDeniedError) for f in failures):
            status = "denied"
        else:
            status = "ok" if not failures else "failed" if len(failures) == len(results) else "partial"
        await self._record(principal, request_id, "document.ingest", status, {"documents": entries})

    async def _record(self, principal: Principal, request_id: str, action: str, status: str,
                      detail: dict[str, Any]) -> None:
        """Commit an audit event (when the service has an audit log); failure is a 503."""
        if self._audit is not None:
            await self._audit.record(AuditEvent(request_id=request_id or uuid.uuid4().hex, action=action,
                                                principal=principal, status=status, detail=detail))

    async def _write_isolated(self, documents: list[PreparedDocument]) -> list[IngestOutcome]:
        try:
            return list(await self._write(documents))
        except _DatabaseWriteError as exc:
            if len(documents) == 1:
                return [IngestFailure(documents[0].external_id, exc)]
        except GatewayError as exc:  # the embedder failed: every document of the batch did
            return [IngestFailure(document.external_id, exc) for document in documents]
        log.warning("ingest_batch_failed_retrying_singly", documents=len(documents))
        results: list[IngestOutcome] = []
        for document in documents:
            results.extend(await self._write_isolated([document]))
        return results

    async def _write(self, documents: list[PreparedDocument]) -> list[Written]:
        """Plan, embed what changed, write in one transaction; replan if the state moved."""
        tenant = documents[0].tenant
        embedded: dict[str, list[EmbeddedChunk]] = {}
        for _ in range(MAX_ATTEMPTS):
            try:
                async with self._sessions() as session, session.begin():
                    await bind_writer(session, tenant)
                    stored = await store.current_hashes(session, tenant, [d.external_id for d in documents])
                need = [d for d in documents if stored.get(d.external_id) != d.content_sha256
                        and d.external_id not in embedded]
                embedded.update(await asyncio.to_thread(self._chunk_and_embed, need))
                async with self._sessions() as session, session.begin():
                    await bind_writer(session, tenant)
                    return await store.write_batch(session, tenant, documents, embedded, self._levels)
            except store.StaleWriteError:
                continue
            except DBAPIError as exc:
                reason = type(exc.orig).__name__
                raise _DatabaseWriteError(f"the database refused the write ({reason})") from None
            except SQLAlchemyError as exc:
                raise _DatabaseWriteError(f"the database is unavailable ({type(exc).__name__})") from None
        raise ConflictError("the documents kept changing while they were ingested; try again")

    def _chunk_and_embed(self, documents: list[PreparedDocument]) -> dict[str, list[EmbeddedChunk]]:
        """Chunk every document, embed all chunks in the embedder's batches (runs in a thread)."""
        chunked = {d.external_id: self._chunker.chunk(d.extracted) for d in documents}
        texts = [chunk.text for chunks in chunked.values() for chunk in chunks]
        vectors = iter(self._embedder.embed_documents(texts) if texts else [])
        return {external_id: [EmbeddedChunk(chunk, next(vectors)) for chunk in chunks]
                for external_id, chunks in chunked.items()}


def _rounds(prepared: list[tuple[int, PreparedDocument]]) -> list[list[tuple[int, PreparedDocument]]]:
    """Split a batch so no round holds one external id twice: the k-th copy goes in round k."""
    rounds: list[list[tuple[int, PreparedDocument]]] = []
    copies: Counter[str] = Counter()
    for item in prepared:
        depth = copies[item[1].external_id]
        copies[item[1].external_id] += 1
        if depth == len(rounds):
            rounds.append([])
        rounds[depth].append(item)
    return rounds

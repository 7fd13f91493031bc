"""The order of stages, written once (SPEC §1, STYLE "the shape").

principal -> access predicate -> retrieval (one SQL statement, in a principal-bound
transaction) -> audit record COMMITTED -> generation (sees only the audited chunks)
-> checked citations. Each stage gets immutable values and never calls back.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.service import AuditLog
from gateway.domain import Answer, AuditEvent, AuditSource, Principal, Retrieval
from gateway.errors import GatewayError, InvalidInputError
from gateway.generation.base import Generator
from gateway.generation.citations import StreamingCitationFilter, check_citations, filtered
from gateway.ingestion.embedders import Embedder, query_embedding
from gateway.metrics import Metrics
from gateway.retrieval.service import Retriever
from gateway.settings import Settings


@dataclass(frozen=True)
class Question:
    """A validated query from one request."""

    text: str
    top_k: int
    request_id: str
    action: str


@dataclass(frozen=True)
class Retrieved:
    """What was retrieved for a question and the id of its committed audit event."""

    retrieval: Retrieval
    audit_id: uuid.UUID


@dataclass(frozen=True)
class StreamedAnswer:
    """An answer being streamed: audited sources first, then checked text deltas."""

    retrieved: Retrieved
    deltas: AsyncIterator[str]
    guard: StreamingCitationFilter


def make_question(text: str, top_k: int | None, request_id: str, action: str,
                  settings: Settings) -> Question:
    """Validate query length and top_k against the configured limits (422 otherwise)."""
    limits = settings.retrieval
    text = text.strip()
    if not text:
        raise InvalidInputError("query must not be empty", field="query")
    if len(text) > limits.max_query_chars:
        raise InvalidInputError(f"query is longer than {limits.max_query_chars} characters",
                                field="query")
    k = limits.default_top_k if top_k is None else top_k
    if not 1 <= k <= limits.max_top_k:
        raise InvalidInputError(f"top_k must be between 1 and {limits.max_top_k}", field="top_k")
    return Question(text=text, top_k=k, request_id=request_id, action=action)


def _sources(retrieval: Retrieval) -> tuple[AuditSource, ...]:
    return tuple(
        AuditSource(
            rank=rank, document_id=c.document_id, external_id=c.external_id,
            document_version=c.document_version, chunk_id=c.chunk_id,
            content_sha256=c.content_sha256, score=c.score, granted_by=c.granted_by,
            policy_name=c.policy_name, policy_version=c.policy_version,
        )
        for rank, c in enumerate(retrieval.chunks, start=1)
    )


class QueryPipeline:
    """Runs search and answer requests through the stages in their one fixed order."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: AsyncEngine,
        encoder: Embedder,
        retriever: Retriever,
        audit: AuditLog,
        generator: Generator,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._embed_query = query_embedding(encoder)
        self._retriever = retriever
        self._audit = audit
        self._generator = generator
        self._metrics = metrics
        self._clock = clock

    async def retrieve(self, principal: Principal, question: Question) -> Retrieved:
        """Embed, retrieve under the caller's access, and commit the audit record."""
        vector = await self._embed_query(question.text)
        now = self._clock()
        # One pooled connection for both steps: the retrieval transaction commits, then
        # the audit append runs on the same connection in its own (autocommit) statement.
        # Both on the Core connection: an ORM session around them cost 0.4 ms per request.
        async with self._engine.connect() as connection:
            async with connection.begin():
                retrieval = await self._retriever.retrieve(
                    connection, vector, principal=principal, now=now, k=question.top_k
                )
            audit_id = await self._audit.record(AuditEvent(
                request_id=question.request_id, action=question.action, principal=principal,
                status="retrieved", query=question.text, sources=_sources(retrieval),
                detail={"top_k": question.top_k, "plan": retrieval.plan,
                        "candidates": retrieval.candidates, "estimate": retrieval.estimate,
                        "complete": retrieval.complete},
            ), connection=connection)
        return Retrieved(retrieval, audit_id)

    async def answer(self, principal: Principal, question: Question) -> tuple[Retrieved, Answer]:
        """Retrieve (audited), then generate from exactly the audited chunks."""
        retrieved = await self.retrieve(principal, question)
        chunks = retrieved.retrieval.chunks
        try:
            text = await self._generator.generate(question.text, chunks)
        except GatewayError as exc:
            exc.extra["audit_id"] = str(retrieved.audit_id)
            raise
        answer = check_citations(text, chunks)
        self._metrics.citations_removed.inc(answer.removed_citations)
        return retrieved, answer

    async def answer_stream(self, principal: Principal, question: Question) -> StreamedAnswer:
        """Retrieve and audit before returning; the deltas start generation lazily."""
        retrieved = await self.retrieve(principal, question)
        guard = StreamingCitationFilter(retrieved.retrieval.chunks)
        deltas = filtered(self._generator.stream(question.text, retrieved.retrieval.chunks), guard)
        return StreamedAnswer(retrieved, deltas, guard)

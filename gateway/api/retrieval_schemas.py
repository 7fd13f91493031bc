"""Wire structs for search, query and chat (SPEC §12 names; more fields may be added)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec

from gateway.domain import Citation, RetrievedChunk

Query = Annotated[str, msgspec.Meta(
    min_length=1, max_length=100_000,
    description="At most GATEWAY_MAX_QUERY_CHARS characters (default 2000); longer is 422.")]
TopK = Annotated[int, msgspec.Meta(
    ge=1, le=1000, description="At most GATEWAY_MAX_TOP_K (default 50); more is 422.")]


class SearchRequest(msgspec.Struct):
    """`POST /v1/search` body."""

    query: Query
    top_k: TopK | None = None


class QueryRequest(msgspec.Struct):
    """`POST /v1/query` body."""

    query: Query
    top_k: TopK | None = None
    stream: bool = False


class SearchHit(msgspec.Struct):
    """One ranked chunk the caller may see."""

    document_id: uuid.UUID
    external_id: str
    chunk_id: int
    title: str
    text: str
    score: float
    source_uri: str | None
    char_start: int
    char_end: int
    heading_path: list[str]
    version: int


class SearchResponse(msgspec.Struct):
    """Ranked results, whether k were found, and the audit event id.

    How the results were found (plan, rows examined) is in the audit event, not here: an
    `ann+exact` plan would tell a caller that hidden chunks crowd its query.
    """

    results: list[SearchHit]
    audit_id: uuid.UUID
    complete: bool


class CitationView(msgspec.Struct):
    """A numbered source of an answer."""

    n: int
    document_id: uuid.UUID
    external_id: str
    chunk_id: int
    title: str
    source_uri: str | None
    score: float
    char_start: int
    char_end: int


class QueryResponse(msgspec.Struct):
    """A cited answer and the audit event id of the sources it was built from."""

    answer: str
    citations: list[CitationView]
    audit_id: uuid.UUID
    complete: bool
    removed_citations: int = 0


class ChatMessage(msgspec.Struct):
    """An OpenAI chat message; content may be a string or a list of content parts."""

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(msgspec.Struct):
    """OpenAI chat-completions request; unknown fields are accepted and ignored."""

    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1, max_length=200)]
    model: str = "gateway"
    stream: bool = False
    top_k: TopK | None = None


def hit(chunk: RetrievedChunk) -> SearchHit:
    """A retrieved chunk as a search result."""
    return SearchHit(
        document_id=chunk.document_id, external_id=chunk.external_id, chunk_id=chunk.chunk_id,
        title=chunk.title, text=chunk.text, score=chunk.score, source_uri=chunk.source_uri,
        char_start=chunk.char_start, char_end=chunk.char_end,
        heading_path=list(chunk.heading_path), version=chunk.document_version,
    )


def citation(c: Citation) -> CitationView:
    """A citation as sent to clients."""
    ch = c.chunk
    return CitationView(n=c.n, document_id=ch.document_id, external_id=ch.external_id,
                        chunk_id=ch.chunk_id, title=ch.title, source_uri=ch.source_uri,
                        score=ch.score, char_start=ch.char_start, char_end=ch.char_end)

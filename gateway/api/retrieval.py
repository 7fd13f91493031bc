"""`POST /v1/search` and `POST /v1/query`: thin controllers over the pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import structlog
from litestar import Request, post
from litestar.datastructures import State
from litestar.response import ServerSentEventMessage

from gateway.api.openapi import StreamingOperation, problem_responses
from gateway.api.retrieval_schemas import (
    QueryRequest,
    QueryResponse,
    SearchRequest,
    SearchResponse,
    citation,
    hit,
)
from gateway.api.sse import EventStream
from gateway.errors import GatewayError
from gateway.pipeline import StreamedAnswer, make_question


def request_id() -> str:
    """The id the request middleware bound for this request."""
    return str(structlog.contextvars.get_contextvars().get("request_id", ""))


@post("/v1/search", tags=["retrieval"], status_code=200, opt={"audit_action": "search"})
async def search(data: SearchRequest, request: Request[Any, Any, Any], state: State) -> SearchResponse:
    """Rank the chunks the caller may see; the sources are audited before responding."""
    question = make_question(data.query, data.top_k, request_id(), "search", state.settings)
    retrieved = await state.pipeline.retrieve(request.user, question)
    return SearchResponse(
        results=[hit(c) for c in retrieved.retrieval.chunks], audit_id=retrieved.audit_id,
        complete=retrieved.retrieval.complete,
    )


@post("/v1/query", tags=["retrieval"], status_code=200, opt={"audit_action": "query"},
      responses=problem_responses(502, 504), operation_class=StreamingOperation)
async def query(
    data: QueryRequest, request: Request[Any, Any, Any], state: State
) -> QueryResponse | EventStream:
    """Answer with citations; `stream: true` sends server-sent events after the audit commit."""
    question = make_question(data.query, data.top_k, request_id(), "query", state.settings)
    if data.stream:
        streamed = await state.pipeline.answer_stream(request.user, question)
        return EventStream(_query_events(streamed, request.user, state))
    retrieved, answer = await state.pipeline.answer(request.user, question)
    return QueryResponse(
        answer=answer.text, citations=[citation(c) for c in answer.citations],
        audit_id=retrieved.audit_id, complete=retrieved.retrieval.complete,
        removed_citations=answer.removed_citations,
    )


async def _query_events(
    streamed: StreamedAnswer, principal: Any, state: State
) -> AsyncIterator[ServerSentEventMessage]:
    try:
        async for delta in streamed.deltas:
            yield ServerSentEventMessage(data=msgspec.json.encode({"text": delta}).decode(),
                                         event="delta")
    except GatewayError as exc:
        await state.failure_auditor.stream_failed(streamed.retrieved.audit_id, exc,
                                                  principal=principal)
        body = {"status": exc.status_code, "title": exc.title, "detail": exc.detail,
                "audit_id": str(streamed.retrieved.audit_id)}
        yield ServerSentEventMessage(data=msgspec.json.encode(body).decode(), event="error")
        return
    answer = streamed.guard.answer()
    state.metrics.citations_removed.inc(answer.removed_citations)
    final = {
        "citations": [msgspec.to_builtins(citation(c)) for c in answer.citations],
        "audit_id": str(streamed.retrieved.audit_id),
        "complete": streamed.retrieved.retrieval.complete,
        "removed_citations": answer.removed_citations,
    }
    yield ServerSentEventMessage(data=msgspec.json.encode(final).decode(), event="citations")
    yield ServerSentEventMessage(data="[DONE]", event="done")


ROUTES = [search, query]

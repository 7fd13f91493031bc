"""`POST /v1/chat/completions`: OpenAI-compatible, so the openai SDK works unchanged.

The last user message is the query. Citations and the audit id ride in extra fields.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, post
from litestar.datastructures import State
from litestar.response import ServerSentEventMessage

from gateway.api.openapi import StreamingOperation, problem_responses
from gateway.api.retrieval import request_id
from gateway.api.retrieval_schemas import ChatMessage, ChatRequest, citation
from gateway.api.sse import EventStream
from gateway.domain import Answer
from gateway.errors import GatewayError, InvalidInputError
from gateway.pipeline import StreamedAnswer, make_question


def last_user_text(messages: list[ChatMessage]) -> str:
    """The text of the last user message (string content or text parts)."""
    for message in reversed(messages):
        if message.role != "user":
            continue
        if isinstance(message.content, str):
            return message.content
        if isinstance(message.content, list):
            parts = [p.get("text", "") for p in message.content
                     if isinstance(p, dict) and p.get("type") == "text"]
            return " ".join(p for p in parts if isinstance(p, str))
    raise InvalidInputError("messages must contain a user message with text", field="messages")


def _completion(answer: Answer, model: str, audit_id: uuid.UUID, complete: bool) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": answer.text}}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "citations": [msgspec.to_builtins(citation(c)) for c in answer.citations],
        "audit_id": str(audit_id),
        "complete": complete,
    }


@post("/v1/chat/completions", tags=["retrieval"], status_code=200, opt={"audit_action": "chat"},
      responses=problem_responses(502, 504), operation_class=StreamingOperation)
async def chat_completions(
    data: ChatRequest, request: Request[Any, Any, Any], state: State
) -> dict[str, Any] | EventStream:
    """Answer the last user message from the caller's permitted documents, with citations."""
    text = last_user_text(data.messages)
    question = make_question(text, data.top_k, request_id(), "chat", state.settings)
    if data.stream:
        streamed = await state.pipeline.answer_stream(request.user, question)
        return EventStream(_chunks(streamed, data.model, request.user, state))
    retrieved, answer = await state.pipeline.answer(request.user, question)
    return _completion(answer, data.model, retrieved.audit_id, retrieved.retrieval.complete)


def _chunk(cid: str, model: str, delta: dict[str, Any], finish: str | None,
           **extra: Any) -> ServerSentEventMessage:
    body = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra}
    return ServerSentEventMessage(data=msgspec.json.encode(body).decode())


async def _chunks(streamed: StreamedAnswer, model: str, principal: Any,
                  state: State) -> AsyncIterator[ServerSentEventMessage]:
    cid = f"chatcmpl-{uuid.uuid4().hex}"
    audit_id = str(streamed.retrieved.audit_id)
    yield _chunk(cid, model, {"role": "assistant", "content": ""}, None)
    try:
        async for delta in streamed.deltas:
            yield _chunk(cid, model, {"content": delta}, None)
    except GatewayError as exc:
        await state.failure_auditor.stream_failed(streamed.retrieved.audit_id, exc,
                                                  principal=principal)
        error = {"message": exc.detail, "type": exc.title, "code": exc.status_code}
        yield ServerSentEventMessage(data=msgspec.json.encode({"error": error}).decode())
        yield ServerSentEventMessage(data="[DONE]")
        return
    answer = streamed.guard.answer()
    state.metrics.citations_removed.inc(answer.removed_citations)
    cites = [msgspec.to_builtins(citation(c)) for c in answer.citations]
    yield _chunk(cid, model, {}, "stop", citations=cites, audit_id=audit_id)
    yield ServerSentEventMessage(data="[DONE]")

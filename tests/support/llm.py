"""A stand-in OpenAI-compatible chat-completions server on loopback (the edge we do not own)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, post
from litestar.response import Stream

from tests.support.server import serve_in_thread


@dataclass
class StandInLLM:
    """Behaviour switches and a record of what the stand-in received."""

    mode: str = "answer"  # answer | hang | garbage | error
    delay_s: float = 0.0  # answer, but only after this long
    reply: str = "The travel budget is 500 EUR per trip [1]."
    received: list[dict[str, Any]] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    on_request: Callable[[dict[str, Any]], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, body: dict[str, Any]) -> None:
        with self.lock:
            self.received.append(body)
            self.received_at.append(time.time())
        if self.on_request is not None:
            self.on_request(body)


def _completion(text: str) -> dict[str, Any]:
    return {"id": "cmpl-1", "object": "chat.completion", "created": int(time.time()),
            "model": "stand-in", "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}]}


async def _sse(text: str) -> AsyncIterator[bytes]:
    for word in text.split(" "):
        chunk = {"choices": [{"index": 0, "delta": {"content": word + " "}}]}
        yield f"data: {json.dumps(chunk)}\n\n".encode()
        await asyncio.sleep(0)
    yield b"data: [DONE]\n\n"


def build_app(llm: StandInLLM) -> Litestar:
    @post("/v1/chat/completions", status_code=200)
    async def completions(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        body = await request.json()
        await asyncio.to_thread(llm.record, body)
        if llm.mode == "hang":
            await asyncio.sleep(120)
        if llm.delay_s:
            await asyncio.sleep(llm.delay_s)
        if llm.mode == "garbage":
            return Response(content=b"<html>definitely not json", media_type="text/html")
        if llm.mode == "error":
            return Response(content={"error": "overloaded"}, status_code=500)
        if body.get("stream"):
            return Stream(_sse(llm.reply), media_type="text/event-stream")
        return Response(content=_completion(llm.reply))

    return Litestar(route_handlers=[completions], logging_config=None)


@contextmanager
def stand_in_llm() -> Iterator[tuple[str, StandInLLM]]:
    """Yield the stand-in's base URL (ending in /v1) and its control object."""
    llm = StandInLLM()
    with serve_in_thread(build_app(llm)) as base:
        yield f"{base}/v1", llm

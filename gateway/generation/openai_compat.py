"""Answers from any OpenAI-compatible chat completions endpoint (vLLM, Ollama, OpenAI...).

Upstream timeouts become UpstreamTimeoutError (504); anything unparseable becomes
UpstreamError (502). The prompt holds only the audited chunks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from gateway.domain import RetrievedChunk
from gateway.errors import UpstreamError, UpstreamTimeoutError
from gateway.generation.prompt import build_messages
from gateway.metrics import Metrics
from gateway.settings import LLMSettings


class OpenAIChatGenerator:
    """Chat completions over httpx, non-streaming and streaming (SSE)."""

    def __init__(self, settings: LLMSettings, metrics: Metrics,
                 client: httpx.AsyncClient | None = None) -> None:
        if not settings.base_url:
            raise ValueError("GATEWAY_LLM_BASE_URL is required")
        self._settings = settings
        self._metrics = metrics
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._client = client or httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/") + "/", headers=headers,
            timeout=httpx.Timeout(settings.timeout_s),
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    def _body(self, query: str, chunks: Sequence[RetrievedChunk], stream: bool) -> dict[str, Any]:
        return {"model": self._settings.model, "messages": build_messages(query, chunks),
                "max_tokens": self._settings.max_tokens, "temperature": 0, "stream": stream}

    async def generate(self, query: str, chunks: Sequence[RetrievedChunk]) -> str:
        """One completion; the whole answer text."""
        started = time.perf_counter()
        try:
            # httpx times each read; a slow drip of bytes must not outlast the LLM timeout.
            async with asyncio.timeout(self._settings.timeout_s):
                response = await self._client.post("chat/completions",
                                                   json=self._body(query, chunks, False))
            data = response.json() if response.status_code == 200 else None
        except (httpx.TimeoutException, TimeoutError):
            raise self._timeout() from None
        except httpx.TransportError:
            raise self._garbage("connection failed", kind="connection") from None
        except (httpx.HTTPError, ValueError):
            raise self._garbage("unreadable response") from None
        finally:
            self._metrics.llm_latency.observe(time.perf_counter() - started)
        if data is None:
            raise self._garbage(f"status {response.status_code}")
        content = _content(data)
        if content is None:
            raise self._garbage("no message content")
        return content

    async def stream(self, query: str, chunks: Sequence[RetrievedChunk]) -> AsyncIterator[str]:
        """Yield content deltas from the upstream's server-sent events."""
        started = time.perf_counter()
        try:
            async with self._client.stream("POST", "chat/completions",
                                           json=self._body(query, chunks, True)) as response:
                if response.status_code != 200:
                    raise self._garbage(f"status {response.status_code}")
                async for line in response.aiter_lines():
                    delta = _stream_delta(line)
                    if delta is None:
                        break
                    if delta:
                        yield delta
        except httpx.TimeoutException:
            raise self._timeout() from None
        except httpx.HTTPError:
            raise self._garbage("connection failed mid-stream", kind="connection") from None
        except _UnusableChunk:
            raise self._garbage("unusable stream") from None
        finally:
            self._metrics.llm_latency.observe(time.perf_counter() - started)

    def _timeout(self) -> UpstreamTimeoutError:
        self._metrics.llm_errors.labels("timeout").inc()
        return UpstreamTimeoutError("The language model did not answer in time.")

    def _garbage(self, why: str, kind: str = "bad_response") -> UpstreamError:
        self._metrics.llm_errors.labels(kind).inc()
        return UpstreamError(f"The language model returned an unusable response ({why}).")


class _UnusableChunk(ValueError):
    """A server-sent event of the upstream's stream that is not a chat completion chunk."""


def _content(data: Any) -> str | None:
    """The answer text of a completion, or None when the body is not a completion."""
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _stream_delta(line: str) -> str | None:
    """The content delta of one SSE line; '' for non-content lines, None at [DONE]."""
    if not line.startswith("data:"):
        return ""
    payload = line[5:].strip()
    if payload == "[DONE]":
        return None
    try:
        choice = json.loads(payload)["choices"][0]
        content = (choice.get("delta") or {}).get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise _UnusableChunk(payload[:40]) from None
    return content if isinstance(content, str) else ""

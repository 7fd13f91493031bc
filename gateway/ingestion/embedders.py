"""Embedders: text to unit vectors, behind one Protocol (SPEC §7).

`LocalEmbedder` runs the bundled all-MiniLM-L6-v2 with sentence-transformers, offline;
the model is loaded on first use and kept for the life of the embedder, which the
composition root creates once per process. `OpenAIEmbedder` calls any OpenAI-compatible
`/v1/embeddings` endpoint (vLLM, TEI, Ollama, LiteLLM, OpenAI, Azure) over httpx.

Both embed synchronously (callers run them in a worker thread) and return L2-normalised
vectors of exactly `dimension` floats. An embedder that can also embed a query without
blocking (`AsyncQueryEmbedder`, as `OpenAIEmbedder` does: the wait is the network's) is
awaited on the query path instead (`query_embedding`): handing a query to a worker
thread and back costs a search 0.2-0.5 ms here, which a local model's milliseconds of
CPU hide and a remote call's need not pay. The dimension must equal the schema's
`vector(384)` column: `build_embedder` refuses anything else at startup, because a
mismatch would otherwise surface as a database error on the first ingestion.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from gateway.db.models import EMBEDDING_DIMENSION
from gateway.errors import ConfigurationError, UnavailableError, UpstreamError
from gateway.ingestion.tokens import bundled_model_path
from gateway.settings import EmbeddingSettings

__all__ = ["AsyncQueryEmbedder", "Embedder", "LocalEmbedder", "OpenAIEmbedder", "build_embedder",
           "check_dimension", "query_embedding"]


@runtime_checkable
class Embedder(Protocol):
    """Turns passages and queries into normalised vectors of `dimension` floats."""

    dimension: int

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per passage, in order."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The vector of one search query."""
        ...


@runtime_checkable
class AsyncQueryEmbedder(Protocol):
    """An embedder whose query embedding waits without holding the event loop's thread."""

    async def aembed_query(self, text: str) -> list[float]:
        """The vector of one search query, awaited on the event loop."""
        ...


def query_embedding(embedder: Embedder) -> Callable[[str], Awaitable[list[float]]]:
    """How the query path embeds with `embedder`: awaited when it can be, else in a worker thread.

    A local model holds the CPU for milliseconds per query, so it runs off the event loop.
    """
    if isinstance(embedder, AsyncQueryEmbedder):
        return embedder.aembed_query

    async def in_worker_thread(text: str) -> list[float]:
        return await asyncio.to_thread(embedder.embed_query, text)

    return in_worker_thread


def check_dimension(dimension: int, source: str) -> None:
    """Refuse an embedding size the schema cannot store, naming where it came from."""
    if dimension != EMBEDDING_DIMENSION:
        raise ConfigurationError(
            f"{source} is {dimension}, but the database stores vector({EMBEDDING_DIMENSION}) "
            f"embeddings (chunks.embedding): use a {EMBEDDING_DIMENSION}-dimension embedding "
            "model, or change the column with a migration and re-embed every chunk"
        )


class LocalEmbedder:
    """The bundled all-MiniLM-L6-v2 on this machine's CPU or GPU, never the network."""

    def __init__(self, model_path: Path | None = None, *, batch_size: int = 64,
                 device: str | None = None) -> None:
        self.model_path = model_path or bundled_model_path()
        self.batch_size = batch_size
        self.device = device
        pooling = json.loads((self.model_path / "1_Pooling" / "config.json").read_text("utf-8"))
        self.dimension = int(pooling["word_embedding_dimension"])
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._model: Any = None

    def load(self) -> Any:
        """Load the model once (thread-safe); later calls return the same instance."""
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # no bars on servers' stderr

                self._model = SentenceTransformer(
                    str(self.model_path), device=self.device, local_files_only=True
                )
            return self._model

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Encode passages in batches of `batch_size`."""
        if not texts:
            return []
        model = self.load()
        # One encode at a time: the Rust tokenizer refuses concurrent reconfiguration
        # ("Already borrowed"), and torch already uses every core for one batch.
        with self._encode_lock:
            vectors = model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return [[float(x) for x in row] for row in vectors.tolist()]

    def embed_query(self, text: str) -> list[float]:
        """Encode one query (the model uses no query prefix)."""
        return self.embed_documents([text])[0]


class OpenAIEmbedder:
    """An OpenAI-compatible `/v1/embeddings` endpoint, called in batches over one client.

    Passages are embedded with a blocking client (ingestion runs in worker threads);
    queries also with an asynchronous one (`aembed_query`, awaited on the event loop).
    """

    def __init__(self, settings: EmbeddingSettings, *, transport: httpx.BaseTransport | None = None,
                 async_transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not settings.base_url:
            raise ConfigurationError("GATEWAY_EMBEDDING_BASE_URL is required when GATEWAY_EMBEDDER=openai")
        self.dimension = settings.dimension
        self.model = settings.model
        self.batch_size = settings.batch_size
        self.url = embeddings_url(settings.base_url)
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._client = httpx.Client(timeout=settings.timeout_s, headers=headers, transport=transport)
        self._async_client = httpx.AsyncClient(timeout=settings.timeout_s, headers=headers,
                                               transport=async_transport)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Encode passages, `batch_size` per request."""
        vectors: list[list[float]] = []
        for first in range(0, len(texts), self.batch_size):
            vectors.extend(self._request(list(texts[first:first + self.batch_size])))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Encode one query."""
        return self._request([text])[0]

    async def aembed_query(self, text: str) -> list[float]:
        """Encode one query without a worker thread: the wait is the network's."""
        with _service_errors():
            response = await self._async_client.post(self.url, json=self._body([text]))
        return self._parse(response, 1)[0]

    async def aclose(self) -> None:
        """Release both clients' connection pools."""
        self._client.close()
        await self._async_client.aclose()

    def _body(self, batch: list[str]) -> dict[str, object]:
        return {"model": self.model, "input": batch, "encoding_format": "float"}

    def _request(self, batch: list[str]) -> list[list[float]]:
        with _service_errors():
            response = self._client.post(self.url, json=self._body(batch))
        return self._parse(response, len(batch))

    def _parse(self, response: httpx.Response, expected: int) -> list[list[float]]:
        if response.status_code >= 500 or response.status_code == 429:
            raise UnavailableError(f"the embedding service answered {response.status_code}")
        if response.status_code != 200:
            raise UpstreamError(f"the embedding service refused the request ({response.status_code})")
        try:
            items = sorted(response.json()["data"], key=lambda item: int(item["index"]))
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (ValueError, KeyError, TypeError):
            raise UpstreamError("the embedding service answered with an unreadable body") from None
        if len(vectors) != expected:
            raise UpstreamError(f"the embedding service returned {len(vectors)} vectors for {expected} texts")
        if any(len(vector) != self.dimension for vector in vectors):
            raise UpstreamError(
                f"the embedding service returned vectors that are not {self.dimension}-dimensional"
            )
        return [_normalised(vector) for vector in vectors]


@contextmanager
def _service_errors() -> Iterator[None]:
    """The embedding service's transport failures as the gateway's 503s."""
    try:
        yield
    except httpx.TimeoutException:
        raise UnavailableError("the embedding service did not answer in time") from None
    except httpx.HTTPError as exc:
        raise UnavailableError(f"the embedding service is unreachable ({type(exc).__name__})") from None


def embeddings_url(base_url: str) -> str:
    """The embeddings endpoint under a base URL given with or without its `/v1` suffix."""
    base = base_url.rstrip("/")
    return f"{base}/embeddings" if base.endswith("/v1") else f"{base}/v1/embeddings"


def _normalised(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0 or not math.isfinite(norm):
        raise UpstreamError("the embedding service returned a zero or non-finite vector")
    return [x / norm for x in vector]


def build_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder the settings name, after checking it fits the schema (no model loaded yet)."""
    check_dimension(settings.dimension, "GATEWAY_EMBEDDING_DIMENSION")
    if settings.kind == "openai":
        return OpenAIEmbedder(settings)
    embedder = LocalEmbedder(batch_size=settings.batch_size)
    check_dimension(embedder.dimension, f"the local model's dimension ({embedder.model_path})")
    return embedder

"""Embedders: text to unit vectors, behind one Protocol (SPEC §7).

`LocalEmbedder` runs the bundled all-MiniLM-L6-v2 with sentence-transformers, offline;
the model is loaded on first use and kept for the life of the embedder, which the
composition root creates once per process. `OpenAIEmbedder` calls any OpenAI-compatible
`/v1/embeddings` endpoint (vLLM, TEI, Ollama, LiteLLM, OpenAI, Azure) over httpx.

Both are synchronous (callers run them in a worker thread) and return L2-normalised
vectors of exactly `dimension` floats. The dimension must equal the schema's
`vector(384)` column: `build_embedder` refuses anything else at startup, because a
mismatch would otherwise surface as a database error on the first ingestion.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from gateway.db.models import EMBEDDING_DIMENSION
from gateway.errors import ConfigurationError, UnavailableError, UpstreamError
from gateway.ingestion.tokens import bundled_model_path
from gateway.settings import EmbeddingSettings

__all__ = ["Embedder", "LocalEmbedder", "OpenAIEmbedder", "build_embedder", "check_dimension"]


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
    """An OpenAI-compatible `/v1/embeddings` endpoint, called in batches over one client."""

    def __init__(self, settings: EmbeddingSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        if not settings.base_url:
            raise ConfigurationError("GATEWAY_EMBEDDING_BASE_URL is required when GATEWAY_EMBEDDER=openai")
        self.dimension = settings.dimension
        self.model = settings.model
        self.batch_size = settings.batch_size
        self.url = embeddings_url(settings.base_url)
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._client = httpx.Client(timeout=settings.timeout_s, headers=headers, transport=transport)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Encode passages, `batch_size` per request."""
        vectors: list[list[float]] = []
        for first in range(0, len(texts), self.batch_size):
            vectors.extend(self._request(list(texts[first:first + self.batch_size])))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Encode one query."""
        return self._request([text])[0]

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    def _request(self, batch: list[str]) -> list[list[float]]:
        try:
            response = self._client.post(
                self.url, json={"model": self.model, "input": batch, "encoding_format": "float"}
            )
        except httpx.TimeoutException:
            raise UnavailableError("the embedding service did not answer in time") from None
        except httpx.HTTPError as exc:
            raise UnavailableError(f"the embedding service is unreachable ({type(exc).__name__})") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise UnavailableError(f"the embedding service answered {response.status_code}")
        if response.status_code != 200:
            raise UpstreamError(f"the embedding service refused the request ({response.status_code})")
        return self._parse(response, len(batch))

    def _parse(self, response: httpx.Response, expected: int) -> list[list[float]]:
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

"""Embedder wrappers for tests: count the work done, or fail on purpose."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from gateway.errors import UnavailableError
from gateway.ingestion.embedders import Embedder


class CountingEmbedder:
    """Delegates to a real embedder and counts how many passages and queries it embedded."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.dimension = inner.dimension
        self.documents = 0
        self.queries = 0
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            self.documents += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            self.queries += 1
        return self.inner.embed_query(text)


class FailingEmbedder:
    """An embedding service that is down."""

    dimension = 384

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        raise UnavailableError("the embedding service is unreachable (ConnectError)")

    def embed_query(self, text: str) -> list[float]:
        raise UnavailableError("the embedding service is unreachable (ConnectError)")


class WrongSizeEmbedder:
    """Claims 384 dimensions but returns 383: the database refuses the chunks."""

    dimension = 384

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [[0.05] * 383 for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return [0.05] * 383

"""Extractive answers (no LLM): the retrieved sentences most similar to the query, cited.

Every sentence of the answer is copied from one audited chunk and carries its `[n]`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import numpy as np

from gateway.domain import RetrievedChunk
from gateway.generation.base import NO_CONTEXT_ANSWER

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}|\n(?=[-*#\d])")
_MIN_SENTENCE_CHARS = 25


class SentenceEncoder(Protocol):
    """The part of an embedder the extractive generator needs."""

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed passages."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """Embed a query."""
        ...


def split_sentences(text: str) -> list[str]:
    """Split a passage into sentences, dropping headings, bullets' markers and fragments."""
    parts = (p.strip().lstrip("#*- ").strip() for p in _SENTENCE_END.split(text))
    return [p for p in parts if len(p) >= _MIN_SENTENCE_CHARS]


class ExtractiveGenerator:
    """Picks up to `max_sentences` sentences by embedding similarity to the query."""

    def __init__(self, encoder: SentenceEncoder, *, max_sentences: int = 3,
                 min_similarity: float = 0.15) -> None:
        self._encoder = encoder
        self._max_sentences = max_sentences
        self._min_similarity = min_similarity

    async def generate(self, query: str, chunks: Sequence[RetrievedChunk]) -> str:
        """Compose the answer; say so plainly when nothing permitted matches."""
        return await asyncio.to_thread(self._compose, query, chunks)

    async def stream(self, query: str, chunks: Sequence[RetrievedChunk]) -> AsyncIterator[str]:
        """Yield the answer sentence by sentence."""
        text = await self.generate(query, chunks)
        for i, sentence in enumerate(re.split(r"(?<=\][.!?])\s+", text)):
            yield sentence if i == 0 else " " + sentence

    def _compose(self, query: str, chunks: Sequence[RetrievedChunk]) -> str:
        candidates = [(n, s) for n, chunk in enumerate(chunks, start=1)
                      for s in dict.fromkeys(split_sentences(chunk.text))]
        if not candidates:
            return NO_CONTEXT_ANSWER
        vectors = np.asarray(self._encoder.embed_documents([s for _, s in candidates]))
        q = np.asarray(self._encoder.embed_query(query))
        similarity = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q) + 1e-12)
        order = [i for i in np.argsort(-similarity) if similarity[i] >= self._min_similarity]
        if not order:
            return NO_CONTEXT_ANSWER
        picked = sorted(order[: self._max_sentences], key=lambda i: (candidates[i][0], i))
        return " ".join(_cite(candidates[i][1], candidates[i][0]) for i in picked)


def _cite(sentence: str, n: int) -> str:
    """Put the citation marker before the closing punctuation."""
    text = " ".join(sentence.split())
    body, end = (text[:-1], text[-1]) if text[-1] in ".!?" else (text, ".")
    return f"{body} [{n}]{end}"

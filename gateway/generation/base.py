"""The Generator protocol: text from a query and the audited chunks, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from gateway.domain import RetrievedChunk

NO_CONTEXT_ANSWER = (
    "None of the documents you have access to answer this question."
)


class Generator(Protocol):
    """Produces an answer citing sources as [n], n being the 1-based position in `chunks`."""

    async def generate(self, query: str, chunks: Sequence[RetrievedChunk]) -> str:
        """Return the whole answer text."""
        ...

    def stream(self, query: str, chunks: Sequence[RetrievedChunk]) -> AsyncIterator[str]:
        """Yield the answer text in pieces."""
        ...

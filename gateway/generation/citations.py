"""Citations are checked against the audited sources: `[n]` must name one of them.

A citation to anything else (an unknown number, a made-up source) is removed from the
text and counted, so an answer can only ever point at what the audit trail recorded.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

from gateway.domain import Answer, Citation, RetrievedChunk

_MARKER = re.compile(r"\[(\d{1,4})\]")
_MAX_PENDING = 8


def check_citations(text: str, chunks: Sequence[RetrievedChunk]) -> Answer:
    """Strip markers that do not name an audited source; cite the ones that do, in order."""
    removed = 0
    cited: list[int] = []

    def keep_or_drop(match: re.Match[str]) -> str:
        nonlocal removed
        n = int(match.group(1))
        if 1 <= n <= len(chunks):
            if n not in cited:
                cited.append(n)
            return match.group(0)
        removed += 1
        return ""

    cleaned = _MARKER.sub(keep_or_drop, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned).strip()
    citations = tuple(Citation(n=n, chunk=chunks[n - 1]) for n in sorted(cited))
    return Answer(text=cleaned, citations=citations, removed_citations=removed)


class StreamingCitationFilter:
    """Applies the same check to a stream of deltas, holding back only a possible marker."""

    def __init__(self, chunks: Sequence[RetrievedChunk]) -> None:
        self._chunks = chunks
        self._pending = ""
        self.full_text = ""

    def feed(self, delta: str) -> str:
        """Return the text that is safe to emit now."""
        text = self._pending + delta
        cut = text.rfind("[")
        if cut != -1 and "]" not in text[cut:] and len(text) - cut <= _MAX_PENDING:
            text, self._pending = text[:cut], text[cut:]
        else:
            self._pending = ""
        return self._emit(text)

    def flush(self) -> str:
        """Return whatever is still held back."""
        text, self._pending = self._pending, ""
        return self._emit(text)

    def _emit(self, text: str) -> str:
        def keep_or_drop(match: re.Match[str]) -> str:
            return match.group(0) if 1 <= int(match.group(1)) <= len(self._chunks) else ""

        safe = _MARKER.sub(keep_or_drop, text)
        self.full_text += text
        return safe

    def answer(self) -> Answer:
        """The checked answer for everything streamed so far."""
        return check_citations(self.full_text, self._chunks)


async def filtered(deltas: AsyncIterator[str], guard: StreamingCitationFilter) -> AsyncIterator[str]:
    """Pass a delta stream through the citation filter."""
    async for delta in deltas:
        safe = guard.feed(delta)
        if safe:
            yield safe
    rest = guard.flush()
    if rest:
        yield rest

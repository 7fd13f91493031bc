"""Split extracted text into chunks the embedding model reads whole, with exact offsets.

Pure: text, headings and a tokenizer in, chunks out. The text is cut into sections at
headings (a chunk never spans two sections, so its heading path is exact), sections
into paragraphs, paragraphs that are too long into sentences, and sentences that are
too long into windows of word pieces. Consecutive pieces are then packed into chunks
of at most `max_tokens` word pieces, preferring to end a chunk at a paragraph break,
and, within a paragraph, the next chunk starts up to `overlap_tokens` earlier, on a piece
boundary (a chunk that starts a paragraph carries no overlap from the one before).

Every chunk satisfies `text[chunk.start:chunk.end] == chunk.text`, and its token count
is measured on the chunk text on its own, exactly as the model will see it.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import ConfigurationError
from gateway.ingestion.extract import ExtractedText, Heading

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…。！？])|(?<=[.!?…。！？][\"'”’)\]]))\s+|\n\s*")


class Tokenizer(Protocol):
    """What chunking needs from a tokenizer."""

    window: int

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of `text`."""
        ...

    def count(self, texts: Sequence[str]) -> list[int]:
        """Token counts of each text on its own."""
        ...


@dataclass(frozen=True)
class TextChunk:
    """A passage: its place in the text, its words, its heading path and size in tokens."""

    ordinal: int
    start: int
    end: int
    text: str
    heading_path: tuple[str, ...]
    tokens: int


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    tokens: int
    paragraph_start: bool


class _TokenIndex:
    """Token spans of the whole text, to count the tokens inside any whitespace-bounded span."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self.starts = [start for start, _ in spans]
        self.ends = [end for _, end in spans]

    def between(self, start: int, end: int) -> range:
        """Indexes of the tokens that start inside [start, end)."""
        return range(bisect_left(self.starts, start), bisect_left(self.starts, end))


@dataclass(frozen=True)
class Chunker:
    """Chunking parameters, checked against the model's window when built."""

    tokenizer: Tokenizer
    max_tokens: int
    overlap_tokens: int

    def __post_init__(self) -> None:
        window = self.tokenizer.window
        if not 0 < self.max_tokens <= window:
            raise ConfigurationError(
                f"GATEWAY_CHUNK_TOKENS={self.max_tokens} must be between 1 and {window}, "
                "the embedding model's window less its special tokens"
            )
        if not 0 <= self.overlap_tokens < self.max_tokens:
            raise ConfigurationError(
                f"GATEWAY_CHUNK_OVERLAP_TOKENS={self.overlap_tokens} must be at least 0 and "
                f"less than GATEWAY_CHUNK_TOKENS={self.max_tokens}"
            )

    def chunk(self, extracted: ExtractedText) -> list[TextChunk]:
        """All chunks of one document, in order."""
        text = extracted.text
        index = _TokenIndex(self.tokenizer.spans(text))
        chunks: list[TextChunk] = []
        for start, end, path in _sections(text, extracted.headings):
            pieces = list(self._pieces(text, start, end, index))
            for chunk_start, chunk_end, tokens in self._pack(text, pieces):
                chunks.append(TextChunk(len(chunks), chunk_start, chunk_end,
                                        text[chunk_start:chunk_end], path, tokens))
        return chunks

    def _pieces(self, text: str, start: int, end: int, index: _TokenIndex) -> Iterator[_Piece]:
        """Paragraphs that fit; otherwise their sentences; otherwise windows of tokens."""
        for para_start, para_end in _split(text, start, end, _PARAGRAPH_BREAK):
            tokens = len(index.between(para_start, para_end))
            if tokens <= self.max_tokens:
                yield _Piece(para_start, para_end, tokens, True)
                continue
            first = True
            for sent_start, sent_end in _split(text, para_start, para_end, _SENTENCE_END):
                tokens = len(index.between(sent_start, sent_end))
                if tokens <= self.max_tokens:
                    yield _Piece(sent_start, sent_end, tokens, first)
                else:
                    for piece in self._windows(text, sent_start, sent_end, index):
                        yield _Piece(piece.start, piece.end, piece.tokens, first)
                        first = False
                first = False

    def _windows(self, text: str, start: int, end: int, index: _TokenIndex) -> Iterator[_Piece]:
        """Cut an over-long sentence into token windows, at word starts where possible."""
        tokens = index.between(start, end)
        i, last = tokens.start, tokens.stop
        while i < last:
            cut = min(i + self.max_tokens, last)
            if cut < last:
                word_starts = [k for k in range(cut, i, -1) if text[index.starts[k] - 1].isspace()]
                cut = word_starts[0] if word_starts else cut
            while True:
                span_end = index.ends[cut - 1]
                size = self.tokenizer.count([text[index.starts[i]:span_end]])[0]
                if size <= self.max_tokens or cut == i + 1:
                    break
                cut -= 1
            yield _Piece(index.starts[i], span_end, size, False)
            i = cut

    def _pack(self, text: str, pieces: list[_Piece]) -> Iterator[tuple[int, int, int]]:
        """Greedy packing of consecutive pieces, then overlap by whole trailing pieces."""
        i = fresh = 0  # fresh: the first piece no chunk holds yet; every chunk must take it
        while i < len(pieces):
            j, total = i, 0
            while j < len(pieces) and total + pieces[j].tokens <= self.max_tokens:
                total += pieces[j].tokens
                j += 1
            j = max(j, fresh + 1)
            if j < len(pieces):
                j = max(self._paragraph_end(pieces, i, j), fresh + 1)
            while True:
                start, end = pieces[i].start, pieces[j - 1].end
                size = self.tokenizer.count([text[start:end]])[0]
                if size <= self.max_tokens:
                    break
                if j > fresh + 1:
                    j -= 1
                elif i < fresh:
                    i += 1  # give up overlap before giving up text
                else:
                    break  # one piece: windows were measured, whole words add up exactly
            yield start, end, size
            if j >= len(pieces):
                return
            fresh = j
            i = self._overlap_start(pieces, i, j)

    def _overlap_start(self, pieces: list[_Piece], i: int, j: int) -> int:
        """Where the chunk after pieces[i:j] starts (overlap by whole trailing pieces).

        At most `overlap_tokens`, always leaving room for pieces[j], and none at all when
        pieces[j] opens a paragraph.
        """
        if pieces[j].paragraph_start:
            return j
        budget = min(self.overlap_tokens, self.max_tokens - pieces[j].tokens)
        k, overlap = j, 0
        while k - 1 > i and overlap + pieces[k - 1].tokens <= budget:
            overlap += pieces[k - 1].tokens
            k -= 1
        return k

    def _paragraph_end(self, pieces: list[_Piece], i: int, j: int) -> int:
        """End a full chunk at its last paragraph break if that keeps it at least half full."""
        total = sum(piece.tokens for piece in pieces[i:j])
        for k in range(j - 1, i, -1):
            total -= pieces[k].tokens
            if pieces[k].paragraph_start:
                return k if total >= self.max_tokens // 2 else j
        return j


def _split(text: str, start: int, end: int, separator: re.Pattern[str]) -> Iterator[tuple[int, int]]:
    """Spans of `text[start:end]` between separator matches, stripped, non-empty."""
    position = start
    for match in separator.finditer(text, start, end):
        yield from _stripped(text, position, match.start())
        position = match.end()
    yield from _stripped(text, position, end)


def _stripped(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end


def _sections(text: str, headings: Sequence[Heading]) -> Iterator[tuple[int, int, tuple[str, ...]]]:
    """(start, end, heading path) of the text before the first heading and under each one."""
    stack: list[Heading] = []
    bounds = sorted({h.offset for h in headings if 0 < h.offset < len(text)} | {0, len(text)})
    by_offset: dict[int, list[Heading]] = {}
    for heading in headings:
        by_offset.setdefault(heading.offset, []).append(heading)
    for start, end in zip(bounds, bounds[1:], strict=False):
        for heading in by_offset.get(start, ()):
            while stack and stack[-1].level >= heading.level:
                stack.pop()
            stack.append(heading)
        yield start, end, tuple(h.title for h in stack)

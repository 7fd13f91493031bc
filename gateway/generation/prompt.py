"""Build chat messages: the template (a text file) plus the audited chunks, numbered."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources

from gateway.domain import RetrievedChunk


@cache
def template(name: str = "answer.txt") -> str:
    """The prompt template shipped in gateway/generation/prompts/."""
    return resources.files("gateway.generation").joinpath("prompts", name).read_text("utf-8")


def format_sources(chunks: Sequence[RetrievedChunk]) -> str:
    """Number each chunk; its text is fenced so it reads as quoted data."""
    blocks = []
    for n, chunk in enumerate(chunks, start=1):
        body = chunk.text.replace("<<<", "< < <").replace(">>>", "> > >")
        blocks.append(f"[{n}] {chunk.title}\n<<<\n{body}\n>>>")
    return "\n\n".join(blocks) if blocks else "(no sources: the user may see no matching documents)"


def build_messages(query: str, chunks: Sequence[RetrievedChunk]) -> list[dict[str, str]]:
    """System message with the sources, user message with the question."""
    system = template().replace("{sources}", format_sources(chunks))
    return [{"role": "system", "content": system}, {"role": "user", "content": query}]

"""Chunking: token limits, paragraph and sentence boundaries, exact offsets, heading paths."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import ConfigurationError
from gateway.ingestion.chunking import Chunker
from gateway.ingestion.extract import ExtractedText, Heading, extract

LIMIT = 10_000_000


def chunks_of(chunker, text, content_type="text/plain"):
    return chunker.chunk(extract(text, content_type, max_bytes=LIMIT))


def assert_exact_offsets(extracted_text, chunks, chunker):
    for chunk in chunks:
        assert extracted_text[chunk.start:chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunk.tokens <= chunker.max_tokens
        assert chunker.tokenizer.count([chunk.text])[0] == chunk.tokens


def test_short_document_is_one_chunk_covering_all_of_it(wordpiece):
    chunker = Chunker(wordpiece, max_tokens=200, overlap_tokens=40)
    chunks = chunks_of(chunker, "Holiday requests go to your manager.\n\nApproval takes two days.")
    assert len(chunks) == 1
    assert chunks[0].text == "Holiday requests go to your manager.\n\nApproval takes two days."
    assert (chunks[0].start, chunks[0].heading_path, chunks[0].ordinal) == (0, (), 0)


def test_paragraphs_are_packed_and_chunks_end_at_paragraph_breaks(wordpiece):
    chunker = Chunker(wordpiece, max_tokens=40, overlap_tokens=0)
    paragraphs = [f"Paragraph {n} says that the expense policy covers item number {n} only." for n in range(12)]
    text = "\n\n".join(paragraphs)
    chunks = chunks_of(chunker, text)
    assert len(chunks) > 1
    assert_exact_offsets(text, chunks, chunker)
    for chunk in chunks:
        assert chunk.text.startswith("Paragraph") and chunk.text.endswith("only.")


def test_long_paragraph_is_split_on_sentence_boundaries_with_overlap(wordpiece):
    chunker = Chunker(wordpiece, max_tokens=50, overlap_tokens=20)
    sentences = [f"Sentence {n} explains rule {n} of the travel policy." for n in range(30)]
    text = " ".join(sentences)
    chunks = chunks_of(chunker, text)
    assert_exact_offsets(text, chunks, chunker)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text.startswith("Sentence") and chunk.text.endswith("policy.")
    for previous, following in zip(chunks, chunks[1:], strict=False):
        assert following.start < previous.end, "consecutive chunks overlap"
        assert following.start > previous.start


def test_one_enormous_word_is_cut_into_windows_the_model_can_read(wordpiece):
    chunker = Chunker(wordpiece, max_tokens=30, overlap_tokens=5)
    text = "Start " + "x9q" * 400 + " end."
    chunks = chunks_of(chunker, text)
    assert_exact_offsets(text, chunks, chunker)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


def test_markdown_heading_paths_follow_the_heading_levels(wordpiece):
    chunker = Chunker(wordpiece, max_tokens=200, overlap_tokens=0)
    md = "Preface.\n\n# Handbook\n\nIntro.\n\n## Leave\n\nTwenty days.\n\n### Sick leave\n\nCall in.\n\n## Pay\n\nMonthly."
    chunks = chunks_of(chunker, md, "text/markdown")
    paths = {chunk.text.split("\n")[-1]: chunk.heading_path for chunk in chunks}
    assert paths == {
        "Preface.": (),
        "Intro.": ("Handbook",),
        "Twenty days.": ("Handbook", "Leave"),
        "Call in.": ("Handbook", "Leave", "Sick leave"),
        "Monthly.": ("Handbook", "Pay"),
    }
    assert all(chunk.text.startswith("#") for chunk in chunks[1:]), "a heading opens its section's chunk"


def test_html_heading_paths_come_from_h_elements(wordpiece):
    chunker = Chunker(wordpiece, max_tokens=200, overlap_tokens=0)
    extracted = extract("<h1>Finance</h1><p>Budget.</p><h2>Q3</h2><p>Numbers.</p>", "text/html", max_bytes=LIMIT)
    chunks = chunker.chunk(extracted)
    assert [(c.text, c.heading_path) for c in chunks] == [
        ("Finance\n\nBudget.", ("Finance",)), ("Q3\n\nNumbers.", ("Finance", "Q3"))
    ]


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (255, 10), (100, 100), (100, -1)])
def test_impossible_chunk_settings_are_configuration_errors(wordpiece, max_tokens, overlap):
    with pytest.raises(ConfigurationError, match="GATEWAY_CHUNK"):
        Chunker(wordpiece, max_tokens=max_tokens, overlap_tokens=overlap)


def test_the_model_window_is_256_word_pieces_less_special_tokens(wordpiece):
    assert wordpiece.window == 254
    Chunker(wordpiece, max_tokens=254, overlap_tokens=0)


_WORDS = st.sampled_from([
    "the", "policy", "Budget", "naïve", "café", "x", "Ω", "東京", "re-org", "2024-01-05", "e.g.",
    "Hello!", "why?", "end.", '"quoted."', "(aside.)", "supercalifragilisticexpialidocious", "🙂",
    "a" * 60, "\n", "\n\n", "  ", "\t", "#", "## Heading", "\n# Top\n", "\n### Deep\n",
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(_WORDS, min_size=1, max_size=400),
    max_tokens=st.integers(min_value=8, max_value=254),
    overlap_ratio=st.floats(min_value=0, max_value=0.9),
    content_type=st.sampled_from(["text/plain", "text/markdown"]),
)
def test_chunk_offsets_are_exact_sizes_fit_and_every_word_is_covered(
    wordpiece, words, max_tokens, overlap_ratio, content_type
):
    chunker = Chunker(wordpiece, max_tokens=max_tokens, overlap_tokens=int(max_tokens * overlap_ratio))
    text = " ".join(words)
    if not text.strip():
        return
    extracted = extract(text, content_type, max_bytes=LIMIT)
    chunks = chunker.chunk(extracted)
    assert_exact_offsets(extracted.text, chunks, chunker)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    covered = [False] * len(extracted.text)
    for chunk in chunks:
        covered[chunk.start:chunk.end] = [True] * (chunk.end - chunk.start)
    assert all(covered[i] for i, ch in enumerate(extracted.text) if not ch.isspace())
    for previous, following in zip(chunks, chunks[1:], strict=False):
        assert following.start > previous.start and following.end > previous.end, "each chunk adds text"
    for chunk in chunks:
        expected = _path_at(extracted.headings, chunk.start)
        assert chunk.heading_path == expected


def _path_at(headings: tuple[Heading, ...], offset: int) -> tuple[str, ...]:
    stack: list[Heading] = []
    for heading in headings:
        if heading.offset > offset:
            break
        while stack and stack[-1].level >= heading.level:
            stack.pop()
        stack.append(heading)
    return tuple(h.title for h in stack)


def test_chunks_never_span_two_sections(wordpiece):
    chunker = Chunker(wordpiece, max_tokens=200, overlap_tokens=50)
    extracted = ExtractedText("Alpha text.\n\nBeta text.", "text/plain",
                              headings=(Heading(13, 1, "Beta"),))
    chunks = chunker.chunk(extracted)
    assert [(c.text, c.heading_path) for c in chunks] == [("Alpha text.", ()), ("Beta text.", ("Beta",))]

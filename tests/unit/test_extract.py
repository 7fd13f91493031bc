"""Text extraction per content type, and the limits that refuse a document."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaError
from gateway.ingestion.extract import extract, media_type

LIMIT = 1_000_000


def make_pdf(*pages: str) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    for page in pages:
        y = 800
        for line in page.split("\n"):
            pdf.drawString(72, y, line)
            y -= 14
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def test_plain_text_is_kept_with_normalised_line_endings_and_no_nuls():
    result = extract(b"  First line\r\nSecond\x00 line\r\n\r\n", "text/plain; charset=utf-8", max_bytes=LIMIT)
    assert result.text == "First line\nSecond line"
    assert result.content_type == "text/plain"
    assert result.headings == ()


def test_markdown_keeps_its_text_and_reports_atx_headings_outside_code_fences():
    md = "# Handbook\n\nIntro.\n\n## Leave ##\n\nText.\n\n```\n# not a heading\n```\n### Sick days\nMore."
    result = extract(md, "text/markdown", max_bytes=LIMIT)
    assert result.text == md
    assert [(h.level, h.title) for h in result.headings] == [(1, "Handbook"), (2, "Leave"), (3, "Sick days")]
    for heading in result.headings:
        assert result.text[heading.offset:].lstrip("# ").startswith(heading.title)


def test_html_drops_scripts_styles_and_comments_and_keeps_headings_and_paragraphs():
    html = b"""<!doctype html><html><head><title>Ignored</title>
    <style>p { color: red }</style><script>var secret = "</p>nope";</script></head>
    <body><h1>Expense   policy</h1><p>Claims are paid <b>monthly</b>.</p><!-- hidden -->
    <h2>Travel</h2><p>Book economy.<br>Trains preferred &amp; cheaper.</p>
    <noscript>enable js</noscript><ul><li>One</li><li>Two</li></ul></body></html>"""
    result = extract(html, "text/html", max_bytes=LIMIT)
    assert result.text == (
        "Expense policy\n\nClaims are paid monthly.\n\nTravel\n\n"
        "Book economy.\nTrains preferred & cheaper.\n\nOne\n\nTwo"
    )
    assert [(h.level, h.title) for h in result.headings] == [(1, "Expense policy"), (2, "Travel")]
    for heading in result.headings:
        assert result.text[heading.offset:].startswith(heading.title)


def test_blocks_inside_a_heading_still_separate_its_words():
    result = extract("<h2>Pay<p>and leave</h2>", "text/html", max_bytes=LIMIT)
    assert result.text == "Pay\n\nand leave"
    assert [h.title for h in result.headings] == ["Pay and leave"]


def test_a_heading_offset_points_at_its_first_word_even_in_preformatted_text():
    result = extract("<pre>code<h2>  Title here</h2></pre>", "text/html", max_bytes=LIMIT)
    [heading] = result.headings
    assert result.text[heading.offset:].startswith("Title here")


def test_html_preformatted_text_keeps_its_whitespace():
    result = extract("<p>Run:</p><pre>  make   test\n  make lint</pre>", "text/html", max_bytes=LIMIT)
    assert result.text == "Run:\n\n  make   test\n  make lint"


def test_html_charset_from_the_content_type_is_honoured():
    result = extract("<p>Café</p>".encode("latin-1"), "text/html; charset=ISO-8859-1", max_bytes=LIMIT)
    assert result.text == "Café"


def test_pdf_text_is_extracted_page_by_page():
    result = extract(make_pdf("Quarterly revenue grew.", "Page two text."), "application/pdf", max_bytes=LIMIT)
    assert "Quarterly revenue grew." in result.text
    assert result.text.index("Quarterly") < result.text.index("Page two")


def test_unparseable_pdf_is_invalid_input():
    with pytest.raises(InvalidInputError, match="PDF"):
        extract(b"%PDF-1.7\nthis is not really a pdf", "application/pdf", max_bytes=LIMIT)


def test_unsupported_content_type_is_refused_with_415():
    with pytest.raises(UnsupportedMediaError) as info:
        extract(b"\x89PNG", "image/png", max_bytes=LIMIT)
    assert info.value.status_code == 415


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b"   \n\t ", "text/plain"), ("<script>x()</script><p> </p>", "text/html"), ("", "text/markdown")],
)
def test_document_without_text_is_refused_with_422(content, content_type):
    with pytest.raises(InvalidInputError, match="no text"):
        extract(content, content_type, max_bytes=LIMIT)


def test_document_over_the_size_limit_is_refused_with_413_before_parsing():
    with pytest.raises(PayloadTooLargeError) as info:
        extract(b"x" * 101, "application/pdf", max_bytes=100)
    assert info.value.status_code == 413


def test_text_limit_counts_utf8_bytes_not_characters():
    with pytest.raises(PayloadTooLargeError):
        extract("é" * 60, "text/plain", max_bytes=100)


def test_invalid_utf8_is_refused():
    with pytest.raises(InvalidInputError, match="UTF-8"):
        extract(b"\xff\xfe\xfa", "text/plain", max_bytes=LIMIT)


def test_media_type_aliases_and_parameters_are_normalised():
    assert media_type("Text/X-Markdown; charset=UTF-8") == ("text/markdown", "utf-8")
    assert media_type("application/xhtml+xml") == ("text/html", None)


_FRAGMENTS = ["<p>", "</p>", "<h2>", "</h2>", "<h1>", "</h1>", "<br>", "<div>", "</div>", "<b>",
              "</b>", "<script>", "</script>", "<pre>", "</pre>", " ", "\n", "word", "Zeta é",
              "&amp;", "<!-- c -->", "<li>", "</li>", "<style>", "</style>"]


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=40))
def test_any_tag_soup_yields_trimmed_text_and_headings_that_point_at_their_titles(fragments):
    try:
        result = extract("".join(fragments), "text/html", max_bytes=LIMIT)
    except InvalidInputError:
        return
    assert result.text == result.text.strip()
    if "<pre>" not in fragments:
        assert "\n\n\n" not in result.text and "  " not in result.text
    for heading in result.headings:
        assert 0 <= heading.offset < len(result.text)
        assert result.text[heading.offset:].startswith(heading.title.split(" ")[0])
        assert not result.text[heading.offset].isspace()

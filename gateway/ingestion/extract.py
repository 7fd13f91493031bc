"""Plain text out of the content types the gateway accepts, with the headings it found.

The extracted text is what gets chunked, hashed, stored as the document body, and what
chunk offsets point into, so citations can quote it exactly. Markdown is kept as written
(its `#` headings are read, not removed); HTML is reduced to its visible text with block
elements as paragraph breaks; PDF text comes from pypdf page by page.

Errors are the domain's: too big -> PayloadTooLargeError (413), unknown type ->
UnsupportedMediaError (415), unreadable or empty -> InvalidInputError (422).
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from gateway.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaError

PLAIN = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
SUPPORTED_TYPES = (PLAIN, MARKDOWN, HTML, PDF)
_ALIASES = {
    "text/x-markdown": MARKDOWN,
    "text/md": MARKDOWN,
    "application/xhtml+xml": HTML,
}
_MARKDOWN_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


@dataclass(frozen=True)
class Heading:
    """A heading of the extracted text: where it starts, its level (1-6) and its words."""

    offset: int
    level: int
    title: str


@dataclass(frozen=True)
class ExtractedText:
    """The text of a document, normalised, and its headings in order."""

    text: str
    content_type: str
    headings: tuple[Heading, ...] = ()


def media_type(content_type: str) -> tuple[str, str | None]:
    """Split `type/subtype; charset=...` into the canonical media type and the charset."""
    base, _, params = content_type.partition(";")
    media = base.strip().lower()
    charset = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"').lower()
    return _ALIASES.get(media, media), charset


def extract(content: bytes | str, content_type: str, *, max_bytes: int) -> ExtractedText:
    """Extract the text of one document, enforcing the size limit before any parsing."""
    size = len(content.encode("utf-8")) if isinstance(content, str) else len(content)
    if size > max_bytes:
        raise PayloadTooLargeError(f"the document is {size} bytes; the limit is {max_bytes} bytes")
    media, charset = media_type(content_type)
    if media not in SUPPORTED_TYPES:
        raise UnsupportedMediaError(
            f"content type {media!r} is not supported; use one of {', '.join(SUPPORTED_TYPES)}"
        )
    headings: tuple[Heading, ...] = ()
    if media == PDF:
        if isinstance(content, str):
            raise InvalidInputError("PDF content must be sent as bytes (content_base64)")
        text = _pdf_text(content)
    else:
        decoded = content if isinstance(content, str) else _decode(content, charset)
        if media == HTML:
            text, headings = _html_text(decoded)
        else:
            text = _normalise(decoded)
            headings = _markdown_headings(text) if media == MARKDOWN else ()
    if not text.strip():
        raise InvalidInputError("the document has no text")
    return ExtractedText(text=text, content_type=media, headings=headings)


def _decode(content: bytes, charset: str | None) -> str:
    encoding = charset or "utf-8"
    if encoding.replace("-", "") == "utf8":
        encoding = "utf-8-sig"  # tolerate a byte order mark
    try:
        return content.decode(encoding)
    except LookupError:
        raise InvalidInputError(f"unknown charset {charset!r}") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"the document is not valid {charset or 'UTF-8'} text") from None


def _normalise(text: str) -> str:
    """Unify line endings, drop NULs (PostgreSQL text cannot hold them), trim the ends."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").strip()


def _markdown_headings(text: str) -> tuple[Heading, ...]:
    """ATX headings (`# Title`) outside fenced code blocks, with their offsets."""
    headings: list[Heading] = []
    offset = 0
    fence: str | None = None
    for line in text.split("\n"):
        marker = _FENCE.match(line)
        if marker and (fence is None or marker.group(1) == fence):
            fence = None if fence else marker.group(1)
        elif fence is None and (match := _MARKDOWN_HEADING.match(line)):
            headings.append(Heading(offset, len(match.group(1)), match.group(2).strip()))
        offset += len(line) + 1
    return tuple(headings)


def _pdf_text(content: bytes) -> str:
    """Page texts joined by blank lines; any parser failure means the PDF is unusable."""
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed input is reported, not logged
    try:
        reader = PdfReader(io.BytesIO(content), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidInputError("the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
    except InvalidInputError:
        raise
    except Exception as exc:  # pypdf raises many unrelated types on hostile input
        raise InvalidInputError(f"the PDF could not be parsed ({type(exc).__name__})") from None
    return "\n\n".join(_normalise(page) for page in pages if page.strip())


_SKIPPED = frozenset({"script", "style", "noscript", "template", "title", "svg", "math",
                      "iframe", "object", "canvas", "select", "textarea"})
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "body", "dd", "details", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre", "section", "summary",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SPACE = re.compile(r"\s+")


@dataclass
class _OpenHeading:
    """A heading being read: its level, its words so far, where its first word starts."""

    level: int
    words: list[str] = field(default_factory=list)
    offset: int | None = None


class _HTMLText(HTMLParser):
    """Visible text with paragraph breaks; scripts, styles and other non-text dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.headings: list[Heading] = []
        self._skip_depth = 0
        self._pre_depth = 0
        self._heading: _OpenHeading | None = None

    def _emit(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def _tail(self) -> str:
        return self.parts[-1][-1:] if self.parts else ""

    def _break(self, newlines: int) -> None:
        """End the current line or paragraph: drop trailing spaces, ensure `newlines` newlines."""
        if self._heading is not None:
            self._heading.words.append(" ")  # a block inside a heading still separates its words
        while self.parts and self.parts[-1].endswith(" "):
            stripped = self.parts[-1].rstrip(" ")
            self.length -= len(self.parts[-1]) - len(stripped)
            if stripped:
                self.parts[-1] = stripped
            else:
                self.parts.pop()
        if not self.parts:
            return
        have = 0
        for part in reversed(self.parts):
            trailing = len(part) - len(part.rstrip("\n"))
            have += trailing
            if trailing < len(part) or have >= newlines:
                break
        if newlines > have:
            self._emit("\n" * (newlines - have))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip_depth += 1
        elif self._skip_depth:
            return
        elif tag == "br":
            self._break(1)
        elif tag in _BLOCKS:
            self._break(2)
            self._pre_depth += tag == "pre"
            if tag in _HEADINGS:
                self._heading = _OpenHeading(_HEADINGS[tag])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _SKIPPED:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif self._skip_depth:
            return
        elif tag in _BLOCKS:
            self._pre_depth = max(0, self._pre_depth - (tag == "pre"))
            if tag in _HEADINGS and self._heading is not None:
                title = _SPACE.sub(" ", "".join(self._heading.words)).strip()
                if title and self._heading.offset is not None:
                    self.headings.append(Heading(self._heading.offset, self._heading.level, title))
                self._heading = None
            self._break(2)

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        data = data.replace("\x00", "")
        if not self._pre_depth:
            data = _SPACE.sub(" ", data)
            if self._tail() in ("", " ", "\n"):
                data = data.lstrip(" ")
        if not data:
            return
        if self._heading is not None:
            if self._heading.offset is None and data.strip():
                self._heading.offset = self.length + len(data) - len(data.lstrip())
            self._heading.words.append(data)
        self._emit(data)


def _html_text(markup: str) -> tuple[str, tuple[Heading, ...]]:
    parser = _HTMLText()
    parser.feed(markup.replace("\r\n", "\n").replace("\r", "\n"))
    parser.close()
    joined = "".join(parser.parts)
    text = joined.strip()
    lead = len(joined) - len(joined.lstrip())
    headings = tuple(
        Heading(h.offset - lead, h.level, h.title)
        for h in parser.headings
        if lead <= h.offset < lead + len(text)
    )
    return text, headings

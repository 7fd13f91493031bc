"""Documents from the file system for bulk loading: folders of files, and JSON Lines files.

A folder is walked recursively for .txt, .md, .html and .pdf files; each becomes a
document whose external id is its path relative to the folder given. A `.jsonl` file
holds one document per line in the wire shape of `POST /v1/documents`.

Access comes from the most specific place that has it: the document's own `access`
(JSON Lines only), then a sidecar `<file>.access.json`, then the nearest `access.json`
in the file's folder or a parent folder up to the one given, then the default block
(the command-line options). A document with none of these is refused, never defaulted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError, InvalidInputError, PayloadTooLargeError, UnsupportedMediaError
from gateway.ingestion.documents import DocumentInput, document_from_wire
from gateway.ingestion.extract import HTML, MARKDOWN, PDF, PLAIN

FILE_TYPES = {".txt": PLAIN, ".text": PLAIN, ".md": MARKDOWN, ".markdown": MARKDOWN,
              ".html": HTML, ".htm": HTML, ".pdf": PDF}
JSONL_SUFFIXES = (".jsonl", ".ndjson")
FOLDER_ACCESS = "access.json"
NO_ACCESS = ("no access block: give the document one, add <file>.access.json or an access.json "
             "in its folder, or pass --allow/--policy")
_MD_TITLE = re.compile(rb"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_HTML_TITLE = re.compile(rb"<(title|h1)[^>]*>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class SourceItem:
    """One document found on disk (or why it could not be read), labelled for reports."""

    label: str
    document: DocumentInput | None = None
    error: GatewayError | None = None


def count_documents(paths: list[Path]) -> int:
    """How many items `iter_documents` will yield (for a progress bar's total)."""
    total = 0
    for path in paths:
        if path.is_dir():
            total += sum(1 for _ in _files(path))
        elif path.suffix.lower() in JSONL_SUFFIXES:
            with path.open("rb") as handle:
                total += sum(1 for line in handle if line.strip())
        else:
            total += 1
    return total


def iter_documents(paths: list[Path], *, default_access: Any, max_bytes: int) -> Iterator[SourceItem]:
    """Every document under `paths`, in a stable order, with its access resolved."""
    for path in paths:
        if path.is_dir():
            for file in _files(path):
                yield _file_item(file, path, default_access, max_bytes)
        elif not path.exists():
            yield SourceItem(str(path), error=InvalidInputError("no such file or folder"))
        elif path.suffix.lower() in JSONL_SUFFIXES:
            yield from _jsonl_items(path, default_access)
        else:
            yield _file_item(path, path.parent, default_access, max_bytes)


def _files(folder: Path) -> Iterator[Path]:
    for file in sorted(folder.rglob("*")):
        if file.is_file() and file.suffix.lower() in FILE_TYPES and not file.name.startswith("."):
            yield file


def read_access_file(path: Path) -> Any:
    """The JSON access block in `path`; unreadable JSON is an error naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: not a readable JSON access block ({exc})") from None


def access_for(file: Path, root: Path, default_access: Any) -> Any:
    """The sidecar, else the nearest folder access.json up to `root`, else the default."""
    sidecar = file.with_name(file.name + ".access.json")
    if sidecar.is_file():
        return read_access_file(sidecar)
    folder = file.parent
    while True:
        candidate = folder / FOLDER_ACCESS
        if candidate.is_file():
            return read_access_file(candidate)
        if folder == root or folder == folder.parent or root not in folder.parents:
            return default_access
        folder = folder.parent


def _file_item(file: Path, root: Path, default_access: Any, max_bytes: int) -> SourceItem:
    label = file.relative_to(root).as_posix() if file != root else file.name
    try:
        if file.suffix.lower() not in FILE_TYPES:
            raise UnsupportedMediaError(f"{file.suffix or 'files without an extension'} is not supported; "
                                        f"use {', '.join(FILE_TYPES)} or {', '.join(JSONL_SUFFIXES)}")
        size = file.stat().st_size
        if size > max_bytes:
            raise PayloadTooLargeError(f"the document is {size} bytes; the limit is {max_bytes} bytes")
        access = access_for(file, root, default_access)
        if access is None:
            raise InvalidInputError(NO_ACCESS, field="access")
        content = file.read_bytes()
        document = DocumentInput(
            external_id=label, title=guess_title(file, content), content=content,
            content_type=FILE_TYPES[file.suffix.lower()], source_uri=file.resolve().as_uri(),
            access=access,
        )
    except GatewayError as exc:
        return SourceItem(label, error=exc)
    except OSError as exc:
        return SourceItem(label, error=InvalidInputError(f"cannot read the file ({exc.strerror})"))
    return SourceItem(label, document=document)


def guess_title(file: Path, content: bytes) -> str:
    """A markdown `# heading`, an HTML <title> or <h1>, else the file name in words."""
    suffix = file.suffix.lower()
    found: bytes | None = None
    if FILE_TYPES.get(suffix) == MARKDOWN and (md := _MD_TITLE.search(content[:65536])):
        found = md.group(1)
    elif FILE_TYPES.get(suffix) == HTML and (html := _HTML_TITLE.search(content[:65536])):
        found = html.group(2)
    if found:
        title = " ".join(_TAG.sub(" ", found.decode("utf-8", "replace")).split())
        if title:
            return title[:1000]
    return file.stem.replace("_", " ").replace("-", " ").strip() or file.name


def _jsonl_items(path: Path, default_access: Any) -> Iterator[SourceItem]:
    try:
        file_access = access_for(path, path.parent, default_access)
    except GatewayError as exc:
        yield SourceItem(path.name, error=exc)
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            label = f"{path.name}:{number}"
            try:
                data = json.loads(raw)
                if isinstance(data, Mapping) and isinstance(data.get("external_id"), str):
                    label = f"{label} ({data['external_id']})"
                document = document_from_wire(data, default_access=file_access)
                if document.access is None:
                    raise InvalidInputError(NO_ACCESS, field="access")
                yield SourceItem(label, document=document)
            except (json.JSONDecodeError, UnicodeDecodeError):
                yield SourceItem(label, error=InvalidInputError("the line is not valid JSON"))
            except GatewayError as exc:
                yield SourceItem(label, error=exc)

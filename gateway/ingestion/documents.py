"""A document as submitted, and as prepared for storage: validated, extracted, hashed.

`document_from_wire` reads the wire shape of SPEC §12 (shared by `POST /v1/documents`
and the JSON Lines files of `gateway ingest`); `prepare` checks the access block and the
tenant for the ingesting principal and extracts the text. Nothing here touches the
database or the embedder, so a bad document is refused before any work is done.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidInputError, PermissionDeniedError
from gateway.ingestion.extract import PLAIN, ExtractedText, extract
from policies.model import AccessBlockError, ClassificationLevels, DocumentAccess, parse_access
from policies.principal import Principal

MAX_EXTERNAL_ID_CHARS = 512  # it is a unique-index key: btree rows must stay small
MAX_TITLE_CHARS = 1000
MAX_URI_CHARS = 4096
_WIRE_FIELDS = {"external_id", "title", "text", "content_base64", "content_type", "source_uri",
                "metadata", "access"}


@dataclass(frozen=True)
class DocumentInput:
    """One document as a client submits it: text or bytes of a content type, and access."""

    external_id: str
    title: str
    content: str | bytes
    content_type: str = PLAIN
    source_uri: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    access: Any = None


@dataclass(frozen=True)
class PreparedDocument:
    """A document ready to store: its tenant, parsed access, extracted text and content hash."""

    source: DocumentInput
    tenant: str
    access: DocumentAccess
    extracted: ExtractedText
    content_sha256: str

    @property
    def external_id(self) -> str:
        """The client's identifier, unique within the tenant."""
        return self.source.external_id


def content_hash(title: str, text: str) -> str:
    """SHA-256 of the title and the extracted text: equal hashes need no re-embedding."""
    return hashlib.sha256(json.dumps([title, text], ensure_ascii=False).encode("utf-8")).hexdigest()


def _string(data: Mapping[str, Any], name: str, *, limit: int, required: bool) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string", field=name)
    if len(value) > limit or "\x00" in value:
        raise InvalidInputError(f"{name} must be at most {limit} characters, without NUL", field=name)
    return value.strip()


def _check_json(value: Any, where: str) -> None:
    """Metadata is stored as jsonb, which cannot hold NUL characters."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInputError(f"{where} must not contain NUL characters", field="metadata")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_json(key, where)
            _check_json(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for item in value:
            _check_json(item, where)


def document_from_wire(data: Any, *, default_access: Any = None) -> DocumentInput:
    """Read one document in the wire shape; `default_access` applies when it has none."""
    if not isinstance(data, Mapping):
        raise InvalidInputError("a document must be a JSON object")
    unknown = sorted(set(data) - _WIRE_FIELDS)
    if unknown:
        raise InvalidInputError(f"unknown field {unknown[0]}", field=unknown[0])
    external_id = _string(data, "external_id", limit=MAX_EXTERNAL_ID_CHARS, required=True)
    title = _string(data, "title", limit=MAX_TITLE_CHARS, required=True)
    text, encoded = data.get("text"), data.get("content_base64")
    if (text is None) == (encoded is None):
        raise InvalidInputError("give exactly one of text or content_base64", field="text")
    content: str | bytes
    if text is not None:
        if not isinstance(text, str):
            raise InvalidInputError("text must be a string", field="text")
        content, default_type = text, PLAIN
    else:
        try:
            if not isinstance(encoded, str):
                raise ValueError("not a string")
            content = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInputError("content_base64 is not valid base64", field="content_base64") from None
        default_type = ""
    content_type = data.get("content_type") or default_type
    if not isinstance(content_type, str) or not content_type:
        raise InvalidInputError("content_type is required with content_base64", field="content_type")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputError("metadata must be an object", field="metadata")
    _check_json(metadata, "metadata")
    access = data.get("access")
    return DocumentInput(
        external_id=external_id or "", title=title or "", content=content, content_type=content_type,
        source_uri=_string(data, "source_uri", limit=MAX_URI_CHARS, required=False),
        metadata=dict(metadata),
        access=default_access if access is None else access,
    )


def resolve_access(
    raw: Any, principal: Principal, levels: ClassificationLevels
) -> tuple[str, DocumentAccess]:
    """Parse the access block; the tenant defaults to the principal's and may not differ."""
    try:
        access = parse_access(raw, levels)
    except AccessBlockError as exc:
        field_name = exc.field if exc.field.startswith("access") else f"access.{exc.field}"
        raise InvalidInputError(f"invalid access block: {field_name}: {exc.message}",
                                field=field_name) from None
    tenant = access.tenant or principal.tenant
    if tenant != principal.tenant:
        raise PermissionDeniedError(f"documents may only be ingested into your own tenant "
                                    f"({principal.tenant!r})")
    return tenant, access


def prepare(document: DocumentInput, principal: Principal, levels: ClassificationLevels,
            *, max_bytes: int) -> PreparedDocument:
    """Validate access and tenant, then extract the text; raises the domain's 4xx errors."""
    tenant, access = resolve_access(document.access, principal, levels)
    extracted = extract(document.content, document.content_type, max_bytes=max_bytes)
    return PreparedDocument(
        source=document, tenant=tenant, access=access, extracted=extracted,
        content_sha256=content_hash(document.title, extracted.text),
    )

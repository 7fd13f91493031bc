"""Documents (SPEC §7, §12): ingest (upsert by external id), read, delete.

Thin controllers: validate the body, call the ingestion service once, shape the reply.
Writers need the ingest or admin role and stay in their own tenant; a read answers 404
for anything the caller's access does not admit, never 403, so existence is not leaked.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

import msgspec
import structlog
from litestar import Request, delete, get, post
from litestar.datastructures import State

from gateway.api.openapi import problem_responses
from gateway.auth.guards import requires_role
from gateway.domain import Principal
from gateway.ingestion.documents import document_from_wire

WRITERS = [requires_role("ingest", "admin")]


class DocumentIn(msgspec.Struct, forbid_unknown_fields=True):
    """A document to ingest: `text`, or `content_base64` with its `content_type`, and access."""

    external_id: str
    title: str
    text: str | None = None
    content_base64: str | None = None
    content_type: str | None = None
    source_uri: str | None = None
    metadata: dict[str, Any] | None = None
    access: dict[str, Any] | None = None


class DocumentWritten(msgspec.Struct):
    """The stored document: id, version, chunk count, and what the upsert did."""

    id: uuid.UUID
    external_id: str
    version: int
    chunks: int
    status: str


def _request_id() -> str:
    return str(structlog.contextvars.get_contextvars().get("request_id") or uuid.uuid4().hex)


@post("/v1/documents", guards=WRITERS, tags=["documents"], status_code=201,
      opt={"audit_action": "document.ingest", "deadline": "ingest"})
async def ingest_document(request: Request[Principal, Any, Any], state: State,
                          data: DocumentIn) -> DocumentWritten:
    """Ingest or update a document; unchanged content keeps its version and is not re-embedded."""
    wire = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
    written = await state.ingestion.ingest(request.user, document_from_wire(wire),
                                           request_id=_request_id())
    return DocumentWritten(id=written.id, external_id=written.external_id, version=written.version,
                           chunks=written.chunks, status=written.status)


class DocumentOut(msgspec.Struct):
    """A document the caller may read."""

    id: uuid.UUID
    external_id: str
    title: str
    text: str
    content_type: str
    source_uri: str | None
    metadata: dict[str, Any]
    version: int
    classification: str
    tenant: str
    content_sha256: str
    updated_at: datetime


@get("/v1/documents/{document_id:uuid}", tags=["documents"], opt={"audit_action": "document.read"},
     responses=problem_responses(404))
async def read_document(
    request: Request[Principal, Any, Any], state: State, document_id: uuid.UUID
) -> DocumentOut:
    """Return a document the caller's access admits; 404 otherwise (never 403)."""
    view = await state.documents.read(request.user, document_id, _request_id())
    return DocumentOut(**dataclasses.asdict(view))


@delete("/v1/documents/{document_id:uuid}", guards=WRITERS, tags=["documents"], status_code=204,
        opt={"audit_action": "document.delete"}, responses=problem_responses(404))
async def delete_document(
    request: Request[Principal, Any, Any], state: State, document_id: uuid.UUID
) -> None:
    """Delete a document of the caller's tenant and all its chunks."""
    await state.ingestion.delete(request.user, document_id, request_id=_request_id())


ROUTES = [ingest_document, read_document, delete_document]

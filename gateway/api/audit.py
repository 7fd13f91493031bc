"""Audit endpoints (auditor role, the caller's own tenant only): export, verify, reports, checkpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import structlog
from litestar import Request, get, post
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.response import Stream

from gateway.api.openapi import problem_responses, streamed_as
from gateway.audit.export import MEDIA_TYPES
from gateway.audit.trail import ExportFilters
from gateway.auth.guards import requires_role
from gateway.domain import Principal

AUDITOR = [requires_role("auditor")]
JSON = "application/json"


def _request_id() -> str:
    return str(structlog.contextvars.get_contextvars().get("request_id") or uuid.uuid4().hex)


@get("/v1/audit/events", guards=AUDITOR, tags=["audit"], responses=problem_responses(422),
     operation_class=streamed_as(*MEDIA_TYPES.values()))
async def export_events(
    request: Request[Principal, Any, Any],
    state: State,
    since: datetime | None = None,
    until: datetime | None = None,
    subject: str | None = None,
    document_id: uuid.UUID | None = None,
    action: str | None = None,
    tenant: str | None = None,
    fmt: str = Parameter(query="format", default="jsonl"),
) -> Stream:
    """Stream the caller's tenant's events, one per line (JSON Lines) or record (CSV), in chain order."""
    filters = ExportFilters(since=since, until=until, subject=subject, document_id=document_id,
                            action=action, tenant=tenant)
    body = await state.audit_trail.export(request.user, filters, fmt, _request_id())
    return Stream(body, media_type=MEDIA_TYPES[fmt],
                  headers={"Content-Disposition": f'attachment; filename="audit-events.{fmt}"'})


@get("/v1/audit/verify", guards=AUDITOR, tags=["audit"])
async def verify_chain(request: Request[Principal, Any, Any], state: State,
                       since: datetime | None = None) -> dict[str, Any]:
    """Recompute the caller's tenant's chain: `{ok, events_checked, first_bad_event}`."""
    result: dict[str, Any] = await state.audit_trail.verify(request.user, since)
    return result


@get("/v1/audit/reports/subject/{subject:str}", guards=AUDITOR, tags=["audit"])
async def subject_report(request: Request[Principal, Any, Any], state: State, subject: str) -> Stream:
    """Everything one user asked and was shown."""
    body = await state.audit_trail.subject_report(request.user, subject, _request_id())
    return Stream(body, media_type=JSON)


@get("/v1/audit/reports/document/{document_id:uuid}", guards=AUDITOR, tags=["audit"])
async def document_report(request: Request[Principal, Any, Any], state: State,
                          document_id: uuid.UUID) -> Stream:
    """Every user who received content from one document."""
    body = await state.audit_trail.document_report(request.user, document_id, _request_id())
    return Stream(body, media_type=JSON)


@get("/v1/audit/checkpoints", guards=AUDITOR, tags=["audit"])
async def list_checkpoints(request: Request[Principal, Any, Any], state: State) -> dict[str, Any]:
    """The audit public key and the signed checkpoints of the caller's tenant."""
    result: dict[str, Any] = await state.audit_trail.checkpoints(request.user)
    return result


@post("/v1/audit/checkpoints", guards=AUDITOR, tags=["audit"], status_code=201)
async def create_checkpoint(request: Request[Principal, Any, Any], state: State) -> dict[str, Any]:
    """Sign the chain's current head now (before taking an export, say)."""
    result: dict[str, Any] = await state.audit_trail.checkpoint(request.user)
    return result


ROUTES = [export_events, verify_chain, subject_report, document_report, list_checkpoints,
          create_checkpoint]

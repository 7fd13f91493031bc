"""Document access (admin): `PUT /v1/documents/{id}/access` and `POST /v1/access/explain`.

Thin controllers: validate the body's shape, call the access services, shape the response.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from litestar import post, put
from litestar.datastructures import State

from gateway.access.documents import DocumentAccessChange
from gateway.access.explain import Explanation, target_principal
from gateway.api.openapi import problem_responses
from gateway.api.policies import ADMIN, AdminRequest


class AccessBody(msgspec.Struct, forbid_unknown_fields=True):
    """A document's access block (SPEC §12); omitted fields take their defaults."""

    tenant: str | None = None
    allow: list[str] | None = None
    deny: list[str] | None = None
    classification: str | None = None
    policy: str | None = None
    conditions: dict[str, list[str]] | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def fields(self) -> dict[str, Any]:
        """The fields that were given."""
        return {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}


class DocumentAccessView(msgspec.Struct):
    """The document after the change; `chunks` now carry the same access."""

    id: uuid.UUID
    external_id: str
    title: str
    version: int
    access: dict[str, Any]
    chunks: int
    updated_at: datetime

    @classmethod
    def of(cls, change: DocumentAccessChange) -> DocumentAccessView:
        """Shape a document access change."""
        return cls(change.id, change.external_id, change.title, change.version, dict(change.access),
                   change.chunks, change.updated_at)


class ExplainPrincipal(msgspec.Struct, forbid_unknown_fields=True):
    """Whom to explain for: token-like `claims`, or a subject with memberships (tenant defaults to yours)."""

    claims: dict[str, Any] | None = None
    subject: str | None = None
    tenant: str | None = None
    groups: list[str] | None = None
    roles: list[str] | None = None
    clearance: str | None = None
    attributes: dict[str, list[str]] | None = None


class ExplainRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A document, a principal (default: the caller) and a time (default: now)."""

    document_id: uuid.UUID
    principal: ExplainPrincipal | None = None
    at: datetime | None = None


class ExplainView(msgspec.Struct):
    """The reference decision, rule by rule, and what the database's two locks said."""

    allowed: bool
    granted_by: str | None
    reasons: list[dict[str, Any]]
    sql: dict[str, Any]
    document: dict[str, Any]
    principal: dict[str, Any]
    at: datetime
    explanation: str

    @classmethod
    def of(cls, e: Explanation) -> ExplainView:
        """Shape an explanation."""
        p = e.principal
        return cls(
            allowed=e.decision.allowed, granted_by=e.decision.granted_by,
            reasons=[r.to_json() for r in e.decision.reasons],
            sql={"predicate": e.predicate_allows, "row_security": e.row_security_allows,
                 "agree": e.agree, "chunks_total": e.chunks_total, "chunks_visible": e.chunks_visible},
            document={"id": str(e.document_id), "external_id": e.external_id, "title": e.title},
            principal={"subject": p.subject, "tenant": p.tenant, "groups": list(p.groups),
                       "roles": list(p.roles), "clearance": p.clearance,
                       "attributes": {k: list(v) for k, v in p.attributes.items()}},
            at=e.at, explanation=e.text(),
        )


@put("/v1/documents/{document_id:uuid}/access", guards=ADMIN, tags=["access"])
async def set_document_access(document_id: uuid.UUID, data: AccessBody, request: AdminRequest,
                              state: State) -> DocumentAccessView:
    """Replace one document's access (its chunks too); the next query sees it, nothing is re-embedded."""
    change = await state.document_access.set_access(request.user, document_id, data.fields())
    return DocumentAccessView.of(change)


@post("/v1/access/explain", guards=ADMIN, tags=["access"], status_code=200,
      responses=problem_responses(404))
async def explain_access(data: ExplainRequest, request: AdminRequest, state: State) -> ExplainView:
    """Whether a principal may see a document, why (rule by rule), and the SQL locks' verdicts."""
    spec = msgspec.structs.asdict(data.principal) if data.principal else None
    target = target_principal(request.user, spec, state.settings.auth)
    explanation = await state.access_explainer.explain(request.user, data.document_id, target, data.at)
    return ExplainView.of(explanation)


ROUTES = [set_document_access, explain_access]

"""Why can or can't principal P see document D: the reference evaluator and both SQL locks.

The document's access is read back from its stored columns, so the reference evaluator
judges exactly what the database holds. The SQL verdicts come from the database itself:
the access predicate alone (in a writer transaction, where row-level security admits
the whole tenant) and row-level security alone (with P bound to a read transaction).
All three must agree; `agree` says whether they did.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func, select

from gateway.access.service import AccessAdministration, current_request_id
from gateway.auth.claims import principal_from_claims
from gateway.db.access import (
    access_from_columns,
    bind_principal,
    chunk_access_predicate,
    document_access_predicate,
    rule_from_columns,
)
from gateway.db.models import Chunk, Document
from gateway.db.policy_models import AccessPolicy
from gateway.domain import AuditEvent
from gateway.errors import AuthenticationError, InvalidInputError, NotFoundError
from gateway.settings import AuthSettings
from policies.evaluate import Decision, decide
from policies.explain import explain_text
from policies.principal import Principal

_DOCUMENT = Document.__table__.c


@dataclass(frozen=True)
class Explanation:
    """The reference decision with its reasons, and the database's two verdicts."""

    document_id: uuid.UUID
    external_id: str
    title: str
    principal: Principal
    at: datetime
    decision: Decision
    predicate_allows: bool
    row_security_allows: bool
    chunks_total: int
    chunks_visible: int

    @property
    def agree(self) -> bool:
        """The reference evaluator, the SQL predicate and row-level security said the same."""
        return self.decision.allowed == self.predicate_allows == self.row_security_allows

    def text(self) -> str:
        """The readable rule-by-rule trace, with the SQL verdicts."""
        verdict = {True: "allowed", False: "denied"}
        return "\n".join([
            explain_text(self.decision, self.principal, f"{self.external_id} ({self.document_id})"),
            f"  sql predicate: {verdict[self.predicate_allows]}; row-level security: "
            f"{verdict[self.row_security_allows]}; chunks visible: {self.chunks_visible}/{self.chunks_total}",
            "  the reference evaluator and both SQL locks agree" if self.agree
            else "  DISAGREEMENT between the reference evaluator and SQL: report this as a bug",
        ])


def target_principal(admin: Principal, spec: Mapping[str, Any] | None, auth: AuthSettings) -> Principal:
    """The principal to explain for: claims (mapped as tokens are), explicit fields, or the caller."""
    if not spec:
        return admin
    if spec.get("claims") is not None:
        if any(spec.get(k) for k in ("subject", "groups", "roles", "tenant", "clearance", "attributes")):
            raise InvalidInputError("principal: give either claims or subject and memberships, not both",
                                    field="principal")
        try:
            return principal_from_claims(spec["claims"], auth)
        except AuthenticationError:
            raise InvalidInputError("principal.claims: no usable subject claim "
                                    f"({auth.claim_subject!r})", field="principal.claims") from None
    subject = spec.get("subject")
    if not isinstance(subject, str) or not subject.strip() or any(c.isspace() for c in subject):
        raise InvalidInputError("principal.subject: required (or give claims)", field="principal.subject")
    return Principal(subject=subject, tenant=spec.get("tenant") or admin.tenant,
                     groups=tuple(spec.get("groups") or ()), roles=tuple(spec.get("roles") or ()),
                     clearance=spec.get("clearance"),
                     attributes={k: tuple(v) for k, v in (spec.get("attributes") or {}).items()})


class AccessExplainer(AccessAdministration):
    """`POST /v1/access/explain` and `gateway policy explain`."""

    async def explain(self, admin: Principal, document_id: uuid.UUID, target: Principal,
                      at: datetime | None = None) -> Explanation:
        """Explain `target`'s access to a document of the administrator's tenant (404 otherwise)."""
        now = at or datetime.now(UTC)
        if now.tzinfo is None:
            raise InvalidInputError("at: must include a time zone", field="at")
        async with self.writer(admin.tenant) as session:
            row = (await session.execute(select(*_DOCUMENT).where(_DOCUMENT.id == document_id))).one_or_none()
            if row is None:
                raise NotFoundError("No such document.")
            named = None
            if row.policy_name is not None:
                named = (await session.execute(select(*AccessPolicy.__table__.c).where(
                    AccessPolicy.tenant == row.tenant, AccessPolicy.name == row.policy_name))).one_or_none()
            predicate = document_access_predicate(target, now, self.levels)
            predicate_allows = bool((await session.execute(
                select(exists().where(Document.id == document_id, predicate)))).scalar())
            total = (await session.execute(
                select(func.count()).where(Chunk.document_id == document_id))).scalar()
        decision = decide(target, access_from_columns(row, self.levels),
                          rule_from_columns(named, self.levels) if named is not None else None,
                          now=now, levels=self.levels)
        async with self.sessions() as session, session.begin():
            await bind_principal(session, target, self.levels, now)
            row_security_allows = bool((await session.execute(
                select(exists().where(Document.id == document_id)))).scalar())
            visible = (await session.execute(select(func.count()).where(
                Chunk.document_id == document_id, chunk_access_predicate(target, now, self.levels)))).scalar()
        explanation = Explanation(document_id, row.external_id, row.title, target, now, decision,
                                  predicate_allows, row_security_allows, int(total or 0), int(visible or 0))
        await self.audit.record(AuditEvent(
            request_id=current_request_id(), action="access.explain", principal=admin, status="ok",
            detail={"document_id": str(document_id), "subject": target.subject, "tenant": target.tenant,
                    "allowed": decision.allowed, "agree": explanation.agree}))
        return explanation

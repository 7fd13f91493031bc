"""The reference evaluator: `decide` says whether a principal may see a document, and why.

This is the executable statement of SPEC §6, written to be read, not to be fast. The SQL
compiler (`policies.sql`) and the row-level-security policies must agree with it on
every input; property tests hold them to that. Every rule is evaluated (no short
circuit), so the returned reasons explain the whole decision, rule by rule:

- tenant          the principal's tenant is the document's tenant
- deny            no deny entry names the principal (deny wins over allow)
- allow           some allow entry names the principal (no allow means nobody)
- classification  the principal's clearance rank is >= the level's rank
- conditions      every attribute condition holds; a principal lacking the attribute fails
- validity        valid_from <= now (inclusive) and now < valid_until (exclusive)
- policy          the named policy the document references exists (missing: fail closed)

The rules after `tenant` are checked for the document's own access block and, when
it references a named policy, again for that policy: both must admit the principal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policies.model import AccessRule, ClassificationLevels, DocumentAccess
from policies.principal import Principal

DOCUMENT = "document"


@dataclass(frozen=True)
class Reason:
    """One rule's verdict: which rule, from which source, whether it passed, and why."""

    rule: str
    source: str
    passed: bool
    detail: str
    matched: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The wire form used by explain responses and audit details."""
        return {"rule": self.rule, "source": self.source, "passed": self.passed,
                "detail": self.detail, "matched": list(self.matched)}


@dataclass(frozen=True)
class Decision:
    """Allowed only if every reason passed."""

    allowed: bool
    reasons: tuple[Reason, ...]

    @property
    def granted_by(self) -> str | None:
        """The principal string in the document's own allow list that admitted the caller."""
        if not self.allowed:
            return None
        for reason in self.reasons:
            if reason.rule == "allow" and reason.source == DOCUMENT and reason.matched:
                return reason.matched[0]
        return None

    @property
    def failed(self) -> tuple[Reason, ...]:
        """The reasons that refused access (empty when allowed)."""
        return tuple(r for r in self.reasons if not r.passed)


def policy_source(name: str) -> str:
    """How reasons name a named policy as their source."""
    return f"policy:{name}"


def decide(
    principal: Principal,
    access: DocumentAccess,
    named_policy: AccessRule | None = None,
    *,
    now: datetime,
    levels: ClassificationLevels,
    tenant: str | None = None,
) -> Decision:
    """Decide whether `principal` may see a document with `access` at time `now`.

    `named_policy` is the current rule of the policy `access.policy` names, or None when
    that policy does not exist (the document then admits nobody: fail closed). `tenant`
    is the tenant the document is stored under, for access blocks that leave it implicit.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if access.policy is None and named_policy is not None:
        raise ValueError("a named policy was given for a document that references none")
    reasons = [_tenant(principal, tenant if tenant is not None else access.tenant)]
    reasons.extend(evaluate_rule(principal, access.rule, source=DOCUMENT, now=now, levels=levels))
    if access.policy is not None:
        reasons.append(_named_policy_exists(access.policy, named_policy))
        if named_policy is not None:
            reasons.extend(evaluate_rule(principal, named_policy, source=policy_source(access.policy),
                                         now=now, levels=levels))
    return Decision(allowed=all(r.passed for r in reasons), reasons=tuple(reasons))


def evaluate_rule(
    principal: Principal, rule: AccessRule, *, source: str, now: datetime, levels: ClassificationLevels
) -> Iterator[Reason]:
    """The verdicts of one access rule's deny, allow, classification, conditions and validity."""
    yield _deny(principal, rule, source)
    yield _allow(principal, rule, source)
    yield _classification(principal, rule, source, levels)
    yield _conditions(principal, rule, source)
    yield _validity(rule, source, now)


def _tenant(principal: Principal, document_tenant: str | None) -> Reason:
    if not principal.tenant or not principal.subject:
        return Reason("tenant", DOCUMENT, False, "the principal has no subject or no tenant")
    if document_tenant is None:
        return Reason("tenant", DOCUMENT, False, "the document has no tenant")
    if principal.tenant == document_tenant:
        return Reason("tenant", DOCUMENT, True, f"principal and document are in tenant {document_tenant!r}")
    return Reason("tenant", DOCUMENT, False,
                  f"principal is in tenant {principal.tenant!r}, the document in {document_tenant!r}")


def _deny(principal: Principal, rule: AccessRule, source: str) -> Reason:
    hits = tuple(p for p in principal.principal_strings if p in rule.deny)
    if hits:
        return Reason("deny", source, False, f"denied by {', '.join(hits)}", hits)
    return Reason("deny", source, True, "no deny entry names the principal")


def _allow(principal: Principal, rule: AccessRule, source: str) -> Reason:
    hits = tuple(p for p in principal.principal_strings if p in rule.allow)
    if hits:
        return Reason("allow", source, True, f"allowed by {', '.join(hits)}", hits)
    if not rule.allow:
        return Reason("allow", source, False, "the allow list is empty: nobody is allowed")
    return Reason("allow", source, False, "no allow entry names the principal")


def _classification(principal: Principal, rule: AccessRule, source: str,
                    levels: ClassificationLevels) -> Reason:
    required = levels.rank(rule.classification)
    clearance = levels.clearance_rank(principal.clearance)
    held = levels.names[clearance]
    if clearance >= required:
        return Reason("classification", source, True,
                      f"clearance {held!r} covers level {rule.classification!r}")
    return Reason("classification", source, False,
                  f"clearance {held!r} is below level {rule.classification!r}")


def _conditions(principal: Principal, rule: AccessRule, source: str) -> Reason:
    if not rule.conditions:
        return Reason("conditions", source, True, "no attribute conditions")
    failures: list[str] = []
    for attribute, allowed in sorted(rule.conditions.items()):
        held = principal.attributes.get(attribute)
        if held is None:
            failures.append(f"principal has no {attribute!r} attribute")
        elif not set(held) & set(allowed):
            failures.append(f"{attribute} {list(held)} is not one of {list(allowed)}")
    if failures:
        return Reason("conditions", source, False, "; ".join(failures))
    return Reason("conditions", source, True,
                  "all conditions hold: " + ", ".join(sorted(rule.conditions)))


def _validity(rule: AccessRule, source: str, now: datetime) -> Reason:
    if rule.valid_from is not None and now < rule.valid_from:
        return Reason("validity", source, False, f"not valid before {rule.valid_from.isoformat()}")
    if rule.valid_until is not None and now >= rule.valid_until:
        return Reason("validity", source, False, f"expired at {rule.valid_until.isoformat()}")
    return Reason("validity", source, True, "within its validity window")


def _named_policy_exists(name: str, rule: AccessRule | None) -> Reason:
    if rule is None:
        return Reason("policy", policy_source(name), False,
                      f"named policy {name!r} does not exist: nobody is admitted")
    return Reason("policy", policy_source(name), True, f"named policy {name!r} applies")

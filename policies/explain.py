"""Explain a decision: why principal P can or cannot see document D, rule by rule (SPEC §6).

The trace is the reference evaluator's reasons laid out for a person (the CLI's
`gateway policy explain`) or as data (the admin API's explain response).
"""

from __future__ import annotations

from typing import Any

from policies.evaluate import Decision
from policies.principal import Principal


def describe_principal(principal: Principal) -> str:
    """One line naming who is asking, with everything the rules look at."""
    parts = [f"user:{principal.subject}", f"tenant={principal.tenant}"]
    if principal.groups:
        parts.append("groups=" + ",".join(principal.groups))
    if principal.roles:
        parts.append("roles=" + ",".join(principal.roles))
    parts.append(f"clearance={principal.clearance or '(default)'}")
    for name, values in sorted(principal.attributes.items()):
        parts.append(f"{name}={','.join(values)}")
    return " ".join(parts)


def explain_text(decision: Decision, principal: Principal, document: str) -> str:
    """A readable trace: the verdict first, then one line per rule with pass or FAIL."""
    verdict = "ALLOWED" if decision.allowed else "DENIED"
    lines = [
        f"{verdict}: {describe_principal(principal)}",
        f"  document: {document}",
    ]
    width = max((len(r.source) for r in decision.reasons), default=8)
    for reason in decision.reasons:
        mark = "pass" if reason.passed else "FAIL"
        lines.append(f"  [{mark}] {reason.source:<{width}}  {reason.rule:<14}  {reason.detail}")
    if not decision.allowed:
        first = decision.failed[0]
        lines.append(f"  refused first by: {first.source} {first.rule}")
    return "\n".join(lines)


def explain_json(decision: Decision) -> dict[str, Any]:
    """The decision as data: `allowed`, `granted_by` and every reason."""
    return {
        "allowed": decision.allowed,
        "granted_by": decision.granted_by,
        "reasons": [r.to_json() for r in decision.reasons],
    }

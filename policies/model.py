"""The policy model: access rules as data, parsed strictly from the wire's access block.

An `AccessRule` is what both a document's own access block and a named policy say:
who is allowed, who is denied, the classification level, attribute conditions and a
validity window. A document is visible only if its own rule *and* its named policy
(if it references one) admit the principal (SPEC §6).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

DEFAULT_LEVELS = ("public", "internal", "confidential", "restricted")
PRINCIPAL_PATTERN = re.compile(r"^(everyone|(user|group|role):[^\s:][^\s]{0,254})$")
POLICY_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
ATTRIBUTE_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


class AccessBlockError(ValueError):
    """An access block or policy is invalid; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ClassificationLevels:
    """Ordered level names, lowest first, with the defaults for documents and principals."""

    names: tuple[str, ...] = DEFAULT_LEVELS
    default_document: str = "internal"
    default_clearance: str = "internal"

    def rank(self, name: str, *, field: str = "classification") -> int:
        """The position of `name` (0 = lowest); unknown names are an error."""
        try:
            return self.names.index(name)
        except ValueError:
            raise AccessBlockError(field, f"unknown level {name!r}; expected one of "
                                   f"{', '.join(self.names)}") from None

    def clearance_rank(self, clearance: str | None) -> int:
        """A principal's clearance rank; unknown or missing clearance gets the default."""
        if clearance in self.names:
            return self.names.index(clearance)
        return self.names.index(self.default_clearance)


@dataclass(frozen=True)
class AccessRule:
    """Allow/deny principal strings, classification, attribute conditions, validity window."""

    allow: tuple[str, ...]
    deny: tuple[str, ...] = ()
    classification: str = "internal"
    conditions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def __post_init__(self) -> None:
        frozen = MappingProxyType({k: tuple(v) for k, v in self.conditions.items()})
        object.__setattr__(self, "conditions", frozen)

    def to_json(self) -> dict[str, Any]:
        """The canonical wire form (what is stored and returned)."""
        return {
            "allow": list(self.allow),
            "deny": list(self.deny),
            "classification": self.classification,
            "conditions": {k: list(v) for k, v in sorted(self.conditions.items())},
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
        }


@dataclass(frozen=True)
class DocumentAccess:
    """A document's access: its tenant (None = the ingesting principal's), rule, named policy."""

    tenant: str | None
    rule: AccessRule
    policy: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The canonical wire form of the whole access block."""
        return {"tenant": self.tenant, **self.rule.to_json(), "policy": self.policy}


def _principals(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise AccessBlockError(field, "must be a list of principal strings")
    for item in value:
        if not isinstance(item, str) or not PRINCIPAL_PATTERN.match(item):
            raise AccessBlockError(field, f"{item!r} is not user:<sub>, group:<name>, "
                                   "role:<name> or everyone")
    return tuple(dict.fromkeys(value))


def _conditions(value: Any) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AccessBlockError("conditions", "must be an object of attribute -> allowed values")
    result: dict[str, tuple[str, ...]] = {}
    for name, allowed in value.items():
        where = f"conditions.{name}"
        if not isinstance(name, str) or not ATTRIBUTE_PATTERN.match(name):
            raise AccessBlockError(where, "attribute names are letters, digits, _ . -")
        if isinstance(allowed, str):
            allowed = [allowed]
        if not isinstance(allowed, list | tuple) or not allowed:
            raise AccessBlockError(where, "must be a non-empty list of allowed values")
        if not all(isinstance(v, str) for v in allowed):
            raise AccessBlockError(where, "allowed values must be strings")
        result[name] = tuple(dict.fromkeys(allowed))
    return result


def _timestamp(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise AccessBlockError(field, "must be an ISO 8601 timestamp") from None
    else:
        raise AccessBlockError(field, "must be an ISO 8601 timestamp")
    if parsed.tzinfo is None:
        raise AccessBlockError(field, "must include a time zone (e.g. Z or +00:00)")
    return parsed


_RULE_FIELDS = {"allow", "deny", "classification", "conditions", "valid_from", "valid_until"}


def parse_rule(data: Mapping[str, Any], levels: ClassificationLevels,
               *, extra_fields: Sequence[str] = ()) -> AccessRule:
    """Parse and validate an access rule; raise AccessBlockError naming the field."""
    if not isinstance(data, Mapping):
        raise AccessBlockError("access", "must be an object")
    unknown = sorted(set(data) - _RULE_FIELDS - set(extra_fields))
    if unknown:
        raise AccessBlockError(unknown[0], "unknown field")
    classification = data.get("classification") or levels.default_document
    if not isinstance(classification, str):
        raise AccessBlockError("classification", "must be a level name")
    levels.rank(classification)
    rule = AccessRule(
        allow=_principals(data.get("allow"), "allow"),
        deny=_principals(data.get("deny"), "deny"),
        classification=classification,
        conditions=_conditions(data.get("conditions")),
        valid_from=_timestamp(data.get("valid_from"), "valid_from"),
        valid_until=_timestamp(data.get("valid_until"), "valid_until"),
    )
    if rule.valid_from and rule.valid_until and rule.valid_until <= rule.valid_from:
        raise AccessBlockError("valid_until", "must be later than valid_from")
    return rule


def parse_access(data: Any, levels: ClassificationLevels) -> DocumentAccess:
    """Parse a document's access block (SPEC §12). A missing block is an error, not a default."""
    if not isinstance(data, Mapping):
        raise AccessBlockError("access", "an access block is required")
    tenant = data.get("tenant")
    if tenant is not None and (not isinstance(tenant, str) or not tenant.strip()):
        raise AccessBlockError("tenant", "must be a non-empty string")
    policy = data.get("policy")
    if policy is not None and (not isinstance(policy, str) or not POLICY_NAME_PATTERN.match(policy)):
        raise AccessBlockError("policy", "must be a policy name (lowercase letters, digits, . _ -)")
    if policy is not None and "allow" not in data:
        # The block defers to its named policy: its own part admits the whole tenant.
        data = {**data, "allow": ["everyone"]}
    rule = parse_rule(data, levels, extra_fields=("tenant", "policy"))
    if not rule.allow and policy is None:
        raise AccessBlockError("allow", "must name at least one principal (no allow means nobody)")
    return DocumentAccess(tenant=tenant, rule=rule, policy=policy)

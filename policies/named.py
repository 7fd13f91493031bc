"""Named policies: reusable access rules, managed by administrators, referenced by documents.

A named policy is an `AccessRule` with a name (unique within its tenant) and a
description. Documents reference one by name (`access.policy`); the document is visible
only if its own rule and the named policy both admit the principal (SPEC §6).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.model import POLICY_NAME_PATTERN, AccessBlockError, AccessRule, ClassificationLevels, parse_rule

MAX_DESCRIPTION = 2000


@dataclass(frozen=True)
class NamedPolicy:
    """A named, reusable access rule."""

    name: str
    rule: AccessRule
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        """The canonical form: what is stored as the policy body and compared for changes."""
        return {"name": self.name, "description": self.description, **self.rule.to_json()}


def parse_policy_name(value: Any, field: str = "name") -> str:
    """Validate a policy name (lowercase letters, digits, `.`, `_`, `-`)."""
    if not isinstance(value, str) or not POLICY_NAME_PATTERN.match(value):
        raise AccessBlockError(field, "must be a policy name (lowercase letters, digits, . _ -; "
                               "at most 100 characters)")
    return value


def parse_named_policy(data: Any, levels: ClassificationLevels, *, name: str | None = None) -> NamedPolicy:
    """Parse a policy definition; `name`, when given (from a URL), must agree with the body's."""
    if not isinstance(data, Mapping):
        raise AccessBlockError("policy", "must be an object")
    body_name = data.get("name", name)
    if name is not None and body_name != name:
        raise AccessBlockError("name", f"{body_name!r} does not match the policy being written ({name!r})")
    parsed_name = parse_policy_name(body_name)
    description = data.get("description") or ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise AccessBlockError("description", f"must be a string of at most {MAX_DESCRIPTION} characters")
    rule = parse_rule(data, levels, extra_fields=("name", "description"))
    if not rule.allow:
        raise AccessBlockError("allow", "must name at least one principal (no allow means nobody)")
    return NamedPolicy(name=parsed_name, rule=rule, description=description)

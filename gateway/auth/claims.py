"""Map verified token claims to a Principal, as configured (SPEC §5 claim mapping).

Claim paths may be dotted (`realm_access.roles`). A claim of an unexpected type is
interpreted conservatively (a string where a list is expected becomes a one-item list,
or is split on spaces for scope-like claims) and never crashes the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import AuthenticationError
from gateway.settings import AuthSettings
from policies.principal import Principal

_MAX_ITEMS = 500
_MAX_LEN = 256


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or None; an exact top-level key wins over the path."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def as_strings(value: Any) -> tuple[str, ...]:
    """A claim as a tuple of strings: lists keep their string items, a string splits on spaces."""
    if value is None:
        return ()
    if isinstance(value, str):
        items = value.split()
    elif isinstance(value, list | tuple):
        items = [v for v in value if isinstance(v, str)]
    elif isinstance(value, bool):
        return ()
    elif isinstance(value, int | float):
        items = [str(value)]
    else:
        return ()
    cleaned = [i.strip() for i in items if i.strip() and len(i) <= _MAX_LEN]
    return tuple(dict.fromkeys(cleaned))[:_MAX_ITEMS]


def as_single(value: Any) -> str | None:
    """A claim as one string: the first string of a list, a number as text, else None."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list | tuple) and value and isinstance(value[0], str):
        return value[0].strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def principal_from_claims(claims: Mapping[str, Any], settings: AuthSettings) -> Principal:
    """Build the Principal; a token without a usable subject is not acceptable."""
    subject = as_single(claim_at(claims, settings.claim_subject))
    if not subject or len(subject) > _MAX_LEN or any(c.isspace() for c in subject):
        raise AuthenticationError("subject claim missing or malformed")
    attributes = {
        name: as_strings(claim_at(claims, name)) for name in settings.claim_attributes
    }
    return Principal(
        subject=subject,
        issuer=str(claims.get("iss", "")),
        tenant=as_single(claim_at(claims, settings.claim_tenant)) or settings.default_tenant,
        groups=as_strings(claim_at(claims, settings.claim_groups)),
        roles=as_strings(claim_at(claims, settings.claim_roles)),
        clearance=as_single(claim_at(claims, settings.claim_clearance)),
        attributes={k: v for k, v in attributes.items() if v},
    )

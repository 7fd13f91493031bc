"""Map verified token claims to a Principal, as configured (SPEC §5 claim mapping).

Claim paths may be dotted (`realm_access.roles`); an exact top-level key wins over the
path, so namespaced claims such as `https://example.com/roles` (Auth0) work as written.

Claims of an unexpected type never crash the request, and are read conservatively:
- multi-valued claims (groups, roles, attributes): a list keeps its string (and
  integer) items; a lone string is one value (split on spaces only for the
  space-delimited `scope`/`scp` claims, RFC 8693 §4.2); anything else (objects,
  booleans, floats) is no value, which grants nothing.
- single-valued claims (subject, tenant, clearance): a string, a number, or a list of
  exactly one string. Anything else is ambiguous, and guessing could put the caller in
  the wrong tenant or clearance, so the token is refused (401).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import AuthenticationError
from gateway.settings import AuthSettings
from policies.principal import Principal

_MAX_ITEMS = 500
_MAX_LEN = 256
_SPACE_DELIMITED = {"scope", "scp"}


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


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def as_strings(value: Any, *, space_delimited: bool = False) -> tuple[str, ...]:
    """A multi-valued claim as a tuple of distinct, non-empty, bounded strings."""
    if isinstance(value, str) and space_delimited:
        items = value.split()
    elif isinstance(value, list | tuple):
        items = [t for t in map(_text, value) if t is not None]
    else:  # one value; None, booleans, floats and objects give no memberships
        text = _text(value)
        items = [text] if text is not None else []
    cleaned = [i.strip() for i in items if i.strip() and len(i) <= _MAX_LEN]
    return tuple(dict.fromkeys(cleaned))[:_MAX_ITEMS]


def as_single(value: Any, name: str) -> str | None:
    """A single-valued claim as one string, None when absent; AuthenticationError when ambiguous."""
    if value is None or value == []:
        return None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    text = _text(value)
    if text is None or len(text) > _MAX_LEN:
        raise AuthenticationError(f"malformed claim: {name}")
    return text.strip() or None


def _multi(claims: Mapping[str, Any], path: str) -> tuple[str, ...]:
    delimited = path.rsplit(".", 1)[-1] in _SPACE_DELIMITED
    return as_strings(claim_at(claims, path), space_delimited=delimited)


def principal_from_claims(claims: Mapping[str, Any], settings: AuthSettings) -> Principal:
    """Build the Principal; a token without a usable subject is not acceptable."""
    subject = as_single(claim_at(claims, settings.claim_subject), settings.claim_subject)
    if not subject or any(c.isspace() for c in subject):
        raise AuthenticationError(f"malformed claim: {settings.claim_subject}")
    attributes = {name: _multi(claims, name) for name in settings.claim_attributes}
    tenant = as_single(claim_at(claims, settings.claim_tenant), settings.claim_tenant)
    issuer = claims.get("iss")
    return Principal(
        subject=subject,
        issuer=issuer if isinstance(issuer, str) else "",
        tenant=tenant or settings.default_tenant,
        groups=_multi(claims, settings.claim_groups),
        roles=_multi(claims, settings.claim_roles),
        clearance=as_single(claim_at(claims, settings.claim_clearance), settings.claim_clearance),
        attributes={k: v for k, v in attributes.items() if v},
    )

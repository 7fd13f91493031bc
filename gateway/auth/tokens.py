"""Verify a bearer JWT with everything pinned, in one function.

- Algorithms come from configuration, never from the token (RFC 8725 §3.1); `none`
  and HS* are never accepted.
- The key's type must match the algorithm's family (RFC 8725 §3.1, key confusion).
- `iss`, `aud`, `exp` are required (RFC 9068 §2.2); `nbf`/`iat` honoured with leeway.
- Unknown `crit` header parameters are rejected (RFC 7515 §4.1.11).
- `jku`, `x5u` and `jwk` headers are never followed: keys only come from our key source.
Every failure of any kind becomes one AuthenticationError carrying a loggable reason.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from gateway.errors import AuthenticationError

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_KEY_TYPE_FOR_FAMILY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_MAX_TOKEN_BYTES = 16 * 1024
_MAX_HEADER_BYTES = 2048


def key_type_for(algorithm: str) -> str:
    """The JWK `kty` an algorithm needs."""
    return _KEY_TYPE_FOR_FAMILY[algorithm[:2]]


class KeySource(Protocol):
    """Where verification keys come from (the IdP's JWKS, or the dev key)."""

    async def key_for(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """Return the key for `kid` (or the only key of the algorithm's type when kid is None)."""
        ...


@dataclass(frozen=True)
class VerificationPolicy:
    """What a token must satisfy besides its signature."""

    issuer: str
    audience: str
    algorithms: tuple[str, ...]
    leeway_s: int = 30


def unverified_header(token: str) -> dict[str, Any]:
    """Parse the JOSE header defensively (size-bounded, must be a JSON object)."""
    if len(token) > _MAX_TOKEN_BYTES:
        raise AuthenticationError("token too large")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise AuthenticationError("token is not a compact JWS")
    segment = parts[0]
    if len(segment) > _MAX_HEADER_BYTES:
        raise AuthenticationError("header too large")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (ValueError, RecursionError):
        raise AuthenticationError("header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise AuthenticationError("header is not a JSON object")
    return header


def _check_header(header: Mapping[str, Any], policy: VerificationPolicy) -> tuple[str, str | None]:
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in policy.algorithms:
        raise AuthenticationError("algorithm not allowed")
    if algorithm not in ASYMMETRIC_ALGORITHMS:
        raise AuthenticationError("algorithm not allowed")
    if "crit" in header:
        raise AuthenticationError("unsupported critical header")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 256):
        raise AuthenticationError("malformed kid")
    return algorithm, kid


async def verify_token(token: str, keys: KeySource, policy: VerificationPolicy) -> dict[str, Any]:
    """Return the verified claims of `token` or raise AuthenticationError."""
    header = unverified_header(token)
    algorithm, kid = _check_header(header, policy)
    key = await keys.key_for(kid, algorithm)
    if key.key_type != key_type_for(algorithm):
        raise AuthenticationError("key type does not match algorithm")
    try:
        claims = jwt.decode(
            token,
            key=key.key,
            algorithms=[algorithm],
            audience=policy.audience,
            issuer=policy.issuer,
            leeway=policy.leeway_s,
            options={"require": ["exp", "iss", "aud", "sub"], "verify_iat": True},
        )
    except jwt.PyJWTError as exc:
        raise AuthenticationError(f"rejected: {type(exc).__name__}") from None
    except Exception:  # any malformed input must be a 401, never a 500
        raise AuthenticationError("rejected: malformed token") from None
    if not isinstance(claims, dict):
        raise AuthenticationError("claims are not a JSON object")
    return claims

"""Verify a bearer JWT with everything pinned, in one function.

- Algorithms come from configuration, never from the token (RFC 8725 §3.1); `none`
  and HS* are never accepted.
- The key's type (and curve, and its own `alg` when the JWK names one) must match the
  algorithm (RFC 8725 §3.1 and RFC 7517 §4.4: no key/algorithm confusion).
- `iss`, `aud`, `exp` and `sub` are required (RFC 9068 §2.2); `nbf` and `iat` are
  honoured with a small leeway (RFC 7519 §4.1.5, §4.1.6).
- Unknown `crit` header parameters are rejected (RFC 7515 §4.1.11): we implement none.
- `jku`, `x5u` and `jwk` headers are never followed (RFC 8725 §3.10); a token that
  carries one is refused outright, since keys only ever come from our key source.
- Optionally `typ` must be `at+jwt` (RFC 9068 §4), which keeps ID tokens and other JWTs
  from the same issuer from being replayed as access tokens.
Every failure of any kind becomes one AuthenticationError carrying a loggable reason
from a small fixed vocabulary (the part before any `:` is the metrics label).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
import structlog

from gateway.errors import AuthenticationError

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_KEY_TYPE_FOR_FAMILY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_CURVES_FOR_ALGORITHM = {
    "ES256": {"P-256"}, "ES384": {"P-384"}, "ES512": {"P-521"}, "EdDSA": {"Ed25519", "Ed448"},
}
_KEY_BEARING_HEADERS = ("jku", "x5u", "jwk")
_ACCESS_TOKEN_TYPES = {"at+jwt", "application/at+jwt"}
_MAX_TOKEN_BYTES = 16 * 1024
_MAX_HEADER_BYTES = 2048
_REASON_FOR_ERROR: dict[type[jwt.PyJWTError], str] = {
    jwt.ExpiredSignatureError: "expired",
    jwt.ImmatureSignatureError: "not yet valid",
    jwt.InvalidAudienceError: "wrong audience",
    jwt.InvalidIssuerError: "wrong issuer",
    jwt.MissingRequiredClaimError: "missing claim",
    jwt.InvalidIssuedAtError: "malformed claim",
    jwt.exceptions.InvalidSubjectError: "malformed claim",
    jwt.exceptions.InvalidJTIError: "malformed claim",
    jwt.InvalidSignatureError: "bad signature",
    jwt.DecodeError: "malformed token",
}

log = structlog.get_logger("gateway.auth")


def key_type_for(algorithm: str) -> str:
    """The JWK `kty` an algorithm needs."""
    return _KEY_TYPE_FOR_FAMILY[algorithm[:2]]


class KeySource(Protocol):
    """Where verification keys come from (the IdP's JWKS, or the dev key)."""

    async def key_for(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """Return the key for `kid` (or the only key of the algorithm's type when kid is None).

        Raise AuthenticationError when there is no such key; never anything else.
        """
        ...


@dataclass(frozen=True)
class VerificationPolicy:
    """What a token must satisfy besides its signature."""

    issuer: str
    audience: str
    algorithms: tuple[str, ...]
    leeway_s: int = 30
    require_at_jwt: bool = False


def unverified_header(token: str) -> dict[str, Any]:
    """Parse the JOSE header defensively (size-bounded, must be a JSON object)."""
    if len(token) > _MAX_TOKEN_BYTES:
        raise AuthenticationError("malformed token: too large")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise AuthenticationError("malformed token: not a compact JWS")
    segment = parts[0]
    if len(segment) > _MAX_HEADER_BYTES:
        raise AuthenticationError("malformed token: header too large")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (ValueError, RecursionError):
        raise AuthenticationError("malformed token: header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise AuthenticationError("malformed token: header is not a JSON object")
    return header


def _check_header(header: Mapping[str, Any], policy: VerificationPolicy) -> tuple[str, str | None]:
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in policy.algorithms:
        raise AuthenticationError("algorithm not allowed")
    if algorithm not in ASYMMETRIC_ALGORITHMS:
        raise AuthenticationError("algorithm not allowed")
    if "crit" in header:
        raise AuthenticationError("unsupported critical header")
    if any(name in header for name in _KEY_BEARING_HEADERS):
        raise AuthenticationError("key-bearing header")
    if policy.require_at_jwt:
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES:
            raise AuthenticationError("not an access token")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 256):
        raise AuthenticationError("malformed kid")
    return algorithm, kid


def check_key(key: jwt.PyJWK, algorithm: str) -> None:
    """The key must be of the algorithm's type and curve, and allow it if it names one."""
    data: Mapping[str, Any] = key._jwk_data
    if key.key_type != key_type_for(algorithm):
        raise AuthenticationError("key does not fit algorithm: type")
    curves = _CURVES_FOR_ALGORITHM.get(algorithm)
    if curves is not None and data.get("crv") not in curves:
        raise AuthenticationError("key does not fit algorithm: curve")
    if "alg" in data and data["alg"] != algorithm:
        raise AuthenticationError("key does not fit algorithm: alg")


async def _key(keys: KeySource, kid: str | None, algorithm: str) -> jwt.PyJWK:
    try:
        return await keys.key_for(kid, algorithm)
    except AuthenticationError:
        raise
    except Exception as exc:  # a key-source defect must still be a 401, and be visible
        log.error("key_source_failed", error_type=type(exc).__name__, exc_info=exc)
        raise AuthenticationError("no key: key source failed") from None


def _decode(token: str, key: jwt.PyJWK, algorithm: str, policy: VerificationPolicy) -> Any:
    try:
        return jwt.decode(
            token,
            key=key.key,
            algorithms=[algorithm],
            audience=policy.audience,
            issuer=policy.issuer,
            leeway=policy.leeway_s,
            options={"require": ["exp", "iss", "aud", "sub"], "verify_iat": True,
                     "verify_nbf": True},
        )
    except jwt.PyJWTError as exc:
        reason = next((r for t, r in _REASON_FOR_ERROR.items() if isinstance(exc, t)), "invalid")
        raise AuthenticationError(f"{reason}: {type(exc).__name__}") from None
    except Exception:  # any malformed input must be a 401, never a 500
        raise AuthenticationError("malformed token: undecodable") from None


@dataclass(frozen=True)
class _Verified:
    key: jwt.PyJWK
    claims: dict[str, Any]
    valid_until: float


class VerifiedTokens:
    """Claims of recently verified tokens, by the token's SHA-256 (a bounded LRU).

    Clients send the same access token for its whole lifetime; checking its signature and
    parsing its claims again costs about 0.5 ms per request here. A remembered token is
    honoured only when the header checks pass again, the key source returns the very key
    object that verified it (a withdrawn or refetched key set empties the cache in
    effect), and its `exp` with the leeway has not passed; at most `max_age_s` after it
    was verified. `nbf` and `iat`, once satisfied, stay satisfied. Size 0 disables it.
    """

    def __init__(self, size: int, max_age_s: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.max_age_s = max_age_s
        self._clock = clock
        self._entries: OrderedDict[bytes, _Verified] = OrderedDict()

    def get(self, token: str, key: jwt.PyJWK) -> dict[str, Any] | None:
        """The claims of `token` if it was verified with `key` and is still valid, else None."""
        digest = hashlib.sha256(token.encode()).digest()
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.key is not key or self._clock() >= entry.valid_until:
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return dict(entry.claims)

    def put(self, token: str, key: jwt.PyJWK, claims: dict[str, Any], policy: VerificationPolicy) -> None:
        """Remember `token`, just verified with `key`."""
        exp = claims.get("exp")
        if self.size <= 0 or not isinstance(exp, int | float) or isinstance(exp, bool):
            return
        valid_until = min(float(exp) + policy.leeway_s, self._clock() + self.max_age_s)
        self._entries[hashlib.sha256(token.encode()).digest()] = _Verified(key, dict(claims), valid_until)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


async def verify_token(token: str, keys: KeySource, policy: VerificationPolicy,
                       verified: VerifiedTokens | None = None) -> dict[str, Any]:
    """Return the verified claims of `token` or raise AuthenticationError.

    `verified`: tokens verified before, whose signature is not checked again (see there).
    """
    header = unverified_header(token)
    algorithm, kid = _check_header(header, policy)
    key = await _key(keys, kid, algorithm)
    check_key(key, algorithm)
    if verified is not None and (claims := verified.get(token, key)) is not None:
        return claims
    claims = _decode(token, key, algorithm, policy)
    if not isinstance(claims, dict):
        raise AuthenticationError("malformed token: claims are not a JSON object")
    if verified is not None:
        verified.put(token, key, claims, policy)
    return claims

"""The IdP's signing keys, cached: rotation without restart, stale keys kept through outages.

Refresh policy (one `JwksKeySource` per worker process):
- The first fetch happens at startup; if the IdP is down then, the gateway still starts
  and tokens get 401 until keys arrive (never 500).
- A token whose `kid` is unknown triggers a refetch, at most once per
  `GATEWAY_JWKS_MIN_REFRESH_SECONDS` (counted from the last attempt, successful or not),
  so a flood of made-up kids cannot turn the gateway against the IdP.
- Keys older than `GATEWAY_JWKS_MAX_AGE_SECONDS` are refetched in the background,
  started by the next request, which goes on with the keys it has (so a slow or
  unreachable IdP never stalls requests whose keys are cached).
- Concurrent requests share one fetch (an asyncio.Lock: single flight).
- A failed fetch, or a document without one usable key, keeps the keys we have.

Which published keys are usable (RFC 7517, RFC 7518 §3.3): kty RSA (>= 2048 bits), EC
(P-256/384/521) or OKP (Ed25519/Ed448); `use` absent or `sig`; `key_ops` absent or
allowing `verify`; `alg` absent or one we accept; no private material. Others are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.auth.idp import IdpClient
from gateway.auth.tokens import key_type_for
from gateway.errors import AuthenticationError, ConfigurationError, UnavailableError

log = structlog.get_logger("gateway.auth")

_KEY_TYPES = {"RSA", "EC", "OKP"}
_CURVES = {"EC": {"P-256", "P-384", "P-521"}, "OKP": {"Ed25519", "Ed448"}}
_MIN_RSA_BITS = 2048
_MAX_KEYS = 100
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


def _usable(jwk: Any, algorithms: Collection[str]) -> jwt.PyJWK | None:
    """The JWK as a verification key, or None when it must not be used for our tokens."""
    if not isinstance(jwk, Mapping) or jwk.get("kty") not in _KEY_TYPES:
        return None
    if jwk.get("use", "sig") != "sig" or any(m in jwk for m in _PRIVATE_MEMBERS):
        return None
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    if "alg" in jwk and jwk["alg"] not in algorithms:
        return None
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not 0 < len(kid) <= 256):
        return None
    if jwk["kty"] in _CURVES and jwk.get("crv") not in _CURVES[jwk["kty"]]:
        return None
    try:
        key = jwt.PyJWK(dict(jwk))
    except Exception:  # untrusted input: whatever PyJWT cannot load is not a key for us
        return None
    if isinstance(key.key, rsa.RSAPublicKey) and key.key.key_size < _MIN_RSA_BITS:
        return None
    return key


@dataclass(frozen=True)
class KeySet:
    """An immutable set of verification keys and the rules for picking one."""

    keys: tuple[jwt.PyJWK, ...] = ()

    @classmethod
    def parse(cls, document: Mapping[str, Any], algorithms: Collection[str]) -> KeySet:
        """Keep the usable keys of a JWKS document (RFC 7517 §5)."""
        entries = document.get("keys")
        if not isinstance(entries, list):
            return cls()
        usable = (_usable(jwk, algorithms) for jwk in entries[: _MAX_KEYS * 4])
        return cls(tuple(k for k in usable if k is not None)[:_MAX_KEYS])

    @property
    def kids(self) -> list[str | None]:
        """The key ids, for logs."""
        return [k.key_id for k in self.keys]

    def find(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        """The key for `kid`; without a kid, the only key of the algorithm's type.

        None means "not in this set" (a refetch may help); ambiguity is refused outright.
        """
        if kid is None:
            of_type = [k for k in self.keys if k.key_type == key_type_for(algorithm)]
            if len(of_type) > 1:
                raise AuthenticationError("no key: kid required, several keys of the token's type")
            return of_type[0] if of_type else None
        matches = [k for k in self.keys if k.key_id == kid]
        if len(matches) > 1:
            matches = [k for k in matches if k.key_type == key_type_for(algorithm)] or matches[:1]
        if len(matches) > 1:
            raise AuthenticationError("no key: ambiguous kid")
        return matches[0] if matches else None


class JwksKeySource:
    """A KeySource over an IdP's JWKS, refreshed as described in the module docstring."""

    def __init__(
        self,
        idp: IdpClient,
        *,
        algorithms: Collection[str],
        min_refresh_s: float,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idp = idp
        self.algorithms = frozenset(algorithms)
        self.min_refresh_s = min_refresh_s
        self.max_age_s = max_age_s
        self._clock = clock
        self._keys = KeySet()
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock: asyncio.Lock | None = None
        self._background: asyncio.Task[None] | None = None

    @property
    def key_set(self) -> KeySet:
        """The keys currently in use."""
        return self._keys

    async def key_for(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """The verification key for a token's header; refetches within the rate limit."""
        if self._fetched_at is None:
            await self.refresh("initial")
        elif self._clock() - self._fetched_at >= self.max_age_s:
            self._refresh_in_background()
        key = self._keys.find(kid, algorithm)
        if key is None:
            await self.refresh("unknown_kid")
            key = self._keys.find(kid, algorithm)
        if key is None:
            if self._fetched_at is None:
                raise AuthenticationError("no key: key set unavailable")
            raise AuthenticationError("no key: unknown kid" if kid else "no key: none of its type")
        return key

    def _may_attempt(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.min_refresh_s

    def _refresh_in_background(self) -> None:
        running = self._background is not None and not self._background.done()
        if not running and self._may_attempt(self._clock()):
            self._background = asyncio.create_task(self.refresh("max_age"))

    async def start(self) -> None:
        """First fetch at startup: an unreachable IdP is tolerated, a contradicting one is not."""
        await self.refresh("startup", strict=True)

    async def refresh(self, reason: str, *, strict: bool = False) -> None:
        """Fetch the key set once for all waiting callers, unless one was tried too recently."""
        observed = self._attempted_at
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            now = self._clock()
            if self._attempted_at != observed:
                return  # another request fetched while we waited: use its result
            if not self._may_attempt(now):
                return
            self._attempted_at = now
            try:
                keys = KeySet.parse(await self.idp.fetch_jwks(), self.algorithms)
                if not keys.keys:
                    raise UnavailableError("the JWKS document holds no usable signing key")
            except (UnavailableError, ConfigurationError) as exc:
                misconfigured = isinstance(exc, ConfigurationError)
                if strict and misconfigured:
                    raise
                (log.error if misconfigured else log.warning)(
                    "jwks_refresh_failed", reason=reason, error=exc.detail,
                    keys_kept=len(self._keys.keys),
                )
                return
            self._keys, self._fetched_at = keys, now
            log.info("jwks_refreshed", reason=reason, kids=keys.kids)

    async def aclose(self) -> None:
        """Stop a background refresh and release the HTTP connections (keys stay cached)."""
        task, self._background = self._background, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.idp.aclose()
        self._lock = None

"""Dev mode (no IdP configured): the gateway's own ES256 key pair, kept in the data dir.

`gateway token` mints tokens with it; the gateway publishes the public half at
`/.well-known/jwks.json` and verifies dev tokens through exactly the same code path as
IdP tokens (`gateway.auth.tokens.verify_token`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from gateway.auth.jwks import KeySet
from gateway.errors import AuthenticationError
from gateway.settings import Settings

DEV_ISSUER = "urn:gateway:dev"
DEV_AUDIENCE = "gateway"
DEV_ALGORITHM = "ES256"


def _key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / "dev-signing-key.pem"


def load_or_create_private_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """Load the dev key, creating it once (race-safe between processes, mode 0600)."""
    path = _key_path(data_dir)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        temp = path.with_suffix(f".{os.getpid()}.{uuid.uuid4().hex}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        try:
            os.link(temp, path)  # fails if another process won the race; theirs is kept
        except FileExistsError:
            pass
        finally:
            temp.unlink()
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise AuthenticationError("dev signing key has the wrong type")
    return loaded


def public_jwk(data_dir: Path) -> dict[str, Any]:
    """The public JWK (with an RFC 7638 thumbprint as kid)."""
    public = load_or_create_private_key(data_dir).public_key()
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(public))
    thumb_input = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")},
                             separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(thumb_input.encode()).digest()
    jwk.update(kid=base64.urlsafe_b64encode(digest).rstrip(b"=").decode(), alg=DEV_ALGORITHM,
               use="sig")
    return jwk


def dev_audience(settings: Settings) -> str:
    """Dev tokens are minted for the configured audience, or `gateway`."""
    return settings.auth.audience or DEV_AUDIENCE


def mint_dev_token(
    settings: Settings,
    *,
    sub: str,
    groups: tuple[str, ...] | list[str] = (),
    roles: tuple[str, ...] | list[str] = (),
    tenant: str | None = None,
    clearance: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    ttl_s: int | None = None,
) -> str:
    """Sign a dev-mode access token with the claim names the gateway is configured to read."""
    data_dir = settings.database.data_dir
    auth = settings.auth
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": DEV_ISSUER,
        "aud": dev_audience(settings),
        auth.claim_subject: sub,
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + (ttl_s or auth.dev_token_ttl_s),
        "jti": uuid.uuid4().hex,
        auth.claim_groups: list(groups),
        auth.claim_roles: list(roles),
    }
    if tenant is not None:
        claims[auth.claim_tenant] = tenant
    if clearance is not None:
        claims[auth.claim_clearance] = clearance
    claims.update(dict(attributes or {}))
    key = load_or_create_private_key(data_dir)
    kid = public_jwk(data_dir)["kid"]
    return jwt.encode(claims, key, algorithm=DEV_ALGORITHM, headers={"kid": kid, "typ": "at+jwt"})


class DevKeySource:
    """The key source of dev mode: the one local public key, picked by the same rules as IdP keys."""

    def __init__(self, data_dir: Path) -> None:
        self._document = {"keys": [public_jwk(data_dir)]}
        self._keys = KeySet.parse(self._document, (DEV_ALGORITHM,))

    async def key_for(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """Return the dev key when the kid matches (or is absent)."""
        key = self._keys.find(kid, algorithm)
        if key is None:
            raise AuthenticationError("no key: unknown kid")
        return key

    def jwks(self) -> dict[str, Any]:
        """The JWKS document served at /.well-known/jwks.json."""
        return {"keys": [dict(k) for k in self._document["keys"]]}

"""Signing keys and hand-made JWTs for authentication tests (honest ones and forgeries)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def b64url(data: bytes | str) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _rsa(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@dataclass
class SigningKey:
    """A private key with its kid and algorithm, as an IdP holds it."""

    private: Any
    alg: str
    kid: str | None = field(default_factory=lambda: uuid.uuid4().hex[:16])
    publish_alg: bool = True

    @classmethod
    def rsa(cls, kid: str | None = None, *, alg: str = "RS256", bits: int = 2048) -> SigningKey:
        return cls(_rsa(bits), alg, kid or uuid.uuid4().hex[:16])

    @classmethod
    def ec(cls, kid: str | None = None, *, alg: str = "ES256") -> SigningKey:
        curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1()}[alg]
        return cls(ec.generate_private_key(curve), alg, kid or uuid.uuid4().hex[:16])

    @classmethod
    def ed25519(cls, kid: str | None = None) -> SigningKey:
        return cls(ed25519.Ed25519PrivateKey.generate(), "EdDSA", kid or uuid.uuid4().hex[:16])

    def public_jwk(self) -> dict[str, Any]:
        """The public half as the IdP publishes it in its JWKS."""
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        jwk["use"] = "sig"
        if self.kid is not None:
            jwk["kid"] = self.kid
        if self.publish_alg:
            jwk["alg"] = self.alg
        return dict(jwk)

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], *, kid: Any = "default", **header: Any) -> str:
        """A JWS over `claims`; `kid` defaults to this key's kid (None: no kid header)."""
        headers = dict(header)
        chosen = self.kid if kid == "default" else kid
        if chosen is not None:
            headers["kid"] = chosen
        headers.setdefault("typ", "at+jwt")
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)


def access_claims(issuer: str, audience: str, *, sub: str = "alice", ttl: int = 600,
                  **extra: Any) -> dict[str, Any]:
    """Claims of a well-formed access token; `extra` overrides or adds (None removes)."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": issuer, "aud": audience, "sub": sub, "iat": now,
                              "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
    for name, value in extra.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def compact(header: dict[str, Any] | bytes | str, payload: dict[str, Any] | bytes | str,
            signature: bytes | str = b"") -> str:
    """Assemble a compact JWS from raw parts, for forgeries PyJWT refuses to produce."""
    def segment(part: dict[str, Any] | bytes | str) -> str:
        if isinstance(part, dict):
            return b64url(json.dumps(part, separators=(",", ":")))
        return b64url(part)

    sig = signature if isinstance(signature, str) else b64url(signature)
    return f"{segment(header)}.{segment(payload)}.{sig}"


def resign(token: str, key: SigningKey) -> str:
    """Re-sign the first two segments of `token` with `key` (to keep a tampered body valid)."""
    head, body, _ = token.split(".")
    algorithm = jwt.get_algorithm_by_name(key.alg)
    signature = algorithm.sign(f"{head}.{body}".encode(), key.private)
    return f"{head}.{body}.{b64url(signature)}"

"""The audit signing key: Ed25519, separate from the dev token key, signs checkpoints and manifests.

Kept at `GATEWAY_AUDIT_SIGNING_KEY` (a PKCS#8 PEM the operator provides; it must
exist) or, when unset, at `<GATEWAY_DATA_DIR>/keys/audit-signing-key.pem`, created once
with mode 0600. Every gateway process of a deployment must use the same key, or their
checkpoints will not verify against each other's public key.

Signatures are base64url without padding over the canonical JSON of the signed
payload; the public key travels as an RFC 8037 OKP JWK whose `kid` is its RFC 7638
thumbprint, so an auditor can pin it.
"""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.audit.canonical import canonical_json, sha256_hex
from gateway.errors import ConfigurationError
from gateway.settings import Settings


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def default_key_path(settings: Settings) -> Path:
    """Where the key is: the configured path, or one in the data dir."""
    configured = settings.audit.signing_key
    if configured is not None:
        return configured
    return settings.database.data_dir / "keys" / "audit-signing-key.pem"


def _create_once(path: Path) -> None:
    """Write a new key unless one exists; race-safe between processes (link, not rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    temp = path.with_suffix(f".{os.getpid()}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    try:
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        temp.unlink()


def public_jwk(public: Ed25519PublicKey) -> dict[str, str]:
    """The OKP JWK of a public key, with its RFC 7638 thumbprint as `kid`."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
    thumbprint = _b64(bytes.fromhex(sha256_hex(canonical_json(members))))
    return {**members, "kid": thumbprint, "alg": "EdDSA", "use": "sig"}


def verify_signature(jwk: dict[str, Any], payload: dict[str, Any], signature: str) -> bool:
    """Whether `signature` is the key's signature of `payload` (canonical JSON)."""
    try:
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            return False
        public = Ed25519PublicKey.from_public_bytes(_unb64(str(jwk["x"])))
        public.verify(_unb64(signature), canonical_json(payload))
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False
    return True


class AuditSigner:
    """Signs audit checkpoints and export manifests with the gateway's audit key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.jwk = public_jwk(private_key.public_key())
        self.key_id = self.jwk["kid"]

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditSigner:
        """Load the configured key, or create the data-dir key on first use."""
        path = default_key_path(settings)
        if settings.audit.signing_key is None and not path.exists():
            _create_once(path)
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"GATEWAY_AUDIT_SIGNING_KEY: cannot read an Ed25519 PEM key at {path}: "
                f"{type(exc).__name__}"
            ) from None
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ConfigurationError(f"GATEWAY_AUDIT_SIGNING_KEY: {path} is not an Ed25519 key")
        return cls(loaded)

    def sign(self, payload: dict[str, Any]) -> str:
        """Base64url signature of the payload's canonical JSON."""
        return _b64(self._key.sign(canonical_json(payload)))

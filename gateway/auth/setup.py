"""Choose the key source and verification policy for the configured mode (dev or OIDC)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth.devkeys import DEV_ALGORITHM, DEV_ISSUER, DevKeySource, dev_audience
from gateway.auth.tokens import KeySource, VerificationPolicy
from gateway.errors import ConfigurationError
from gateway.settings import Settings


@dataclass(frozen=True)
class Authenticator:
    """Everything the middleware needs to verify tokens."""

    keys: KeySource
    policy: VerificationPolicy
    dev_keys: DevKeySource | None = None


def build_authenticator(settings: Settings) -> Authenticator:
    """Dev mode uses the gateway's own key; OIDC mode the IdP's published keys."""
    auth = settings.auth
    if auth.dev_mode:
        dev = DevKeySource(settings.database.data_dir)
        policy = VerificationPolicy(
            issuer=DEV_ISSUER, audience=dev_audience(settings), algorithms=(DEV_ALGORITHM,),
            leeway_s=auth.leeway_s,
        )
        return Authenticator(keys=dev, policy=policy, dev_keys=dev)
    raise ConfigurationError("OIDC mode requires the JWKS key source")

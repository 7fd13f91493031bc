"""Choose the key source and verification policy for the configured mode (dev or OIDC).

Both modes end in the same `verify_token`; they differ only in where keys come from and
which issuer, audience and algorithms are pinned. In OIDC mode the dev key is never
loaded, so dev tokens cannot verify, and no JWKS is published by the gateway.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gateway.auth.devkeys import DEV_ALGORITHM, DEV_ISSUER, DevKeySource, dev_audience
from gateway.auth.idp import IdpClient
from gateway.auth.jwks import JwksKeySource
from gateway.auth.tokens import ASYMMETRIC_ALGORITHMS, KeySource, VerificationPolicy
from gateway.errors import ConfigurationError, UnavailableError
from gateway.settings import AuthSettings, Settings


@dataclass(frozen=True)
class Authenticator:
    """Everything the middleware needs to verify tokens, plus the key source's lifecycle."""

    keys: KeySource
    policy: VerificationPolicy
    dev_keys: DevKeySource | None = None
    idp_keys: JwksKeySource | None = None

    async def start(self) -> None:
        """Fetch the IdP's keys once at startup (an unreachable IdP does not stop the gateway)."""
        if self.idp_keys is not None:
            await self.idp_keys.start()

    async def close(self) -> None:
        """Release the IdP connections at shutdown."""
        if self.idp_keys is not None:
            await self.idp_keys.aclose()


def _oidc(auth: AuthSettings) -> Authenticator:
    unsupported = sorted(set(auth.algorithms) - ASYMMETRIC_ALGORITHMS)
    if unsupported or not auth.algorithms:
        raise ConfigurationError(
            f"GATEWAY_OIDC_ALGORITHMS must be chosen from {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
        )
    if auth.oidc_issuer is None or auth.audience is None:
        raise ConfigurationError("GATEWAY_OIDC_ISSUER and GATEWAY_OIDC_AUDIENCE are required")
    idp = IdpClient(issuer=auth.oidc_issuer, jwks_url=auth.jwks_url, timeout_s=auth.jwks_timeout_s)
    source = JwksKeySource(
        idp, algorithms=auth.algorithms, min_refresh_s=auth.jwks_min_refresh_s,
        max_age_s=auth.jwks_max_age_s,
    )
    policy = VerificationPolicy(
        issuer=auth.oidc_issuer, audience=auth.audience, algorithms=auth.algorithms,
        leeway_s=auth.leeway_s, require_at_jwt=auth.require_at_jwt,
    )
    return Authenticator(keys=source, policy=policy, idp_keys=source)


def build_authenticator(settings: Settings) -> Authenticator:
    """Dev mode uses the gateway's own key; OIDC mode the IdP's published keys."""
    auth = settings.auth
    if not auth.dev_mode:
        return _oidc(auth)
    dev = DevKeySource(settings.database.data_dir)
    policy = VerificationPolicy(
        issuer=DEV_ISSUER, audience=dev_audience(settings), algorithms=(DEV_ALGORITHM,),
        leeway_s=auth.leeway_s, require_at_jwt=True,
    )
    return Authenticator(keys=dev, policy=policy, dev_keys=dev)


def check_identity_provider(settings: Settings) -> None:
    """Pre-flight for `gateway serve`: refuse to start when the IdP contradicts our settings.

    An unreachable IdP passes (workers start anyway and keep retrying); a discovery
    document naming another issuer raises ConfigurationError, printed as one line.
    """
    if settings.auth.dev_mode:
        return
    source = _oidc(settings.auth).idp_keys
    if source is None:
        return

    async def check(idp: IdpClient) -> None:
        try:
            await idp.fetch_jwks()
        except UnavailableError:
            pass
        finally:
            await idp.aclose()

    asyncio.run(check(source.idp))

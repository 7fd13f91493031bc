"""Fetching the IdP's published keys: OIDC discovery, then the JWKS document.

All I/O is httpx.AsyncClient (the event loop never blocks), bounded in time
(`GATEWAY_JWKS_TIMEOUT_SECONDS`) and size, without following redirects. Key material
is only fetched over https (plain http is allowed to loopback hosts, for local IdPs and
tests), since whoever can alter the JWKS in transit can mint tokens.

Failures are domain errors: UnavailableError when the IdP cannot be reached or answers
garbage (the caller keeps its stale keys), ConfigurationError when the IdP answers but
contradicts our configuration (its discovery document names another issuer).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateway.errors import ConfigurationError, UnavailableError

_MAX_DOCUMENT_BYTES = 512 * 1024
_DISCOVERY_PATH = "/.well-known/openid-configuration"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_key_url(url: str, name: str) -> str:
    """Accept https URLs (or http to a loopback host); raise ConfigurationError otherwise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))
    if not host or not secure or parts.username or parts.password:
        raise ConfigurationError(
            f"{name}={url!r} must be an https:// URL without credentials "
            "(http:// is accepted only for loopback hosts)"
        )
    return url


def discovery_url(issuer: str) -> str:
    """OIDC Discovery §4: drop a trailing `/` from the issuer, append the well-known path."""
    return issuer.rstrip("/") + _DISCOVERY_PATH


class IdpClient:
    """Reads the key set of one IdP, via its discovery document or a fixed JWKS URL."""

    def __init__(self, *, issuer: str | None, jwks_url: str | None, timeout_s: float) -> None:
        if issuer is None and jwks_url is None:
            raise ConfigurationError("GATEWAY_OIDC_ISSUER or GATEWAY_JWKS_URL is required")
        self.issuer = check_key_url(issuer, "GATEWAY_OIDC_ISSUER") if issuer else None
        self.jwks_url = check_key_url(jwks_url, "GATEWAY_JWKS_URL") if jwks_url else None
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def fetch_jwks(self) -> dict[str, Any]:
        """The current JWKS document (discovery is re-read each time, to follow IdP changes)."""
        uri = self.jwks_url or await self.jwks_uri_from_discovery()
        return await self._get_json(uri, "JWKS")

    async def jwks_uri_from_discovery(self) -> str:
        """Read the discovery document; its `issuer` must equal ours exactly (OIDC Discovery §4.3)."""
        if self.issuer is None:
            raise ConfigurationError("discovery needs GATEWAY_OIDC_ISSUER")
        url = discovery_url(self.issuer)
        document = await self._get_json(url, "discovery document")
        announced = document.get("issuer")
        if announced != self.issuer:
            raise ConfigurationError(
                f"GATEWAY_OIDC_ISSUER is {self.issuer!r} but the discovery document at {url} "
                f"names the issuer {announced!r}; they must be identical"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise UnavailableError(f"the discovery document at {url} has no jwks_uri")
        return check_key_url(jwks_uri, "the discovered jwks_uri")

    async def aclose(self) -> None:
        """Close the connection pool (a later fetch opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout_s, follow_redirects=False,
                headers={"Accept": "application/json"},
            )
        return self._client

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._http().stream("GET", url) as response:
                if response.status_code != 200:
                    raise UnavailableError(f"the {what} at {url} answered {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_DOCUMENT_BYTES:
                        raise UnavailableError(f"the {what} at {url} is too large")
        except httpx.HTTPError as exc:
            raise UnavailableError(f"the {what} at {url} is unreachable: {type(exc).__name__}") from None
        try:
            document = json.loads(bytes(body))
        except (ValueError, RecursionError):
            raise UnavailableError(f"the {what} at {url} is not JSON") from None
        if not isinstance(document, dict):
            raise UnavailableError(f"the {what} at {url} is not a JSON object")
        return document

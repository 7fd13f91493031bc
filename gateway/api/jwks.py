"""The dev-mode JWKS: the public half of the gateway's own signing key."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.datastructures import State

from gateway.api.openapi import problem_responses
from gateway.errors import NotFoundError


@get("/.well-known/jwks.json", tags=["auth"], opt={"public": True}, responses=problem_responses(404))
async def dev_jwks(state: State) -> dict[str, Any]:
    """Publish the dev signing key (404 when an IdP is configured)."""
    dev_keys = state.authenticator.dev_keys
    if dev_keys is None:
        raise NotFoundError("No local keys are published when an IdP is configured.")
    keys: dict[str, Any] = dev_keys.jwks()
    return keys

"""Role guards: authenticated callers lacking a gateway role get 403 insufficient_scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.errors import AuthenticationError, PermissionDeniedError
from gateway.settings import AuthSettings
from policies.principal import Principal

ROLE_SETTINGS = {"admin": "role_admin", "ingest": "role_ingest", "auditor": "role_auditor"}

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def has_role(principal: Principal, role: str, settings: AuthSettings) -> bool:
    """Whether the principal holds the gateway role `role` (admin/ingest/auditor)."""
    return getattr(settings, ROLE_SETTINGS[role]) in principal.roles


def requires_role(*roles: str) -> Guard:
    """A guard admitting callers who hold any of `roles` (gateway role names)."""
    unknown = set(roles) - set(ROLE_SETTINGS)
    if unknown:
        raise ValueError(f"unknown gateway roles {unknown}")

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            raise AuthenticationError("no principal", token_presented=False)
        settings: AuthSettings = connection.app.state.settings.auth
        if not any(has_role(principal, role, settings) for role in roles):
            raise PermissionDeniedError(
                f"This operation requires the {' or '.join(roles)} role."
            )

    return guard

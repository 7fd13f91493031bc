"""`GET /v1/me`: the principal the gateway derived from the caller's token (claim-mapping aid)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get


class PrincipalView(msgspec.Struct):
    """The caller as the policy engine sees them."""

    subject: str
    issuer: str
    tenant: str
    groups: list[str]
    roles: list[str]
    clearance: str | None
    attributes: dict[str, list[str]]
    principal_strings: list[str]


@get("/v1/me", tags=["auth"])
async def whoami(request: Request[Any, Any, Any]) -> PrincipalView:
    """Show the caller's subject, tenant, groups, roles, clearance and attributes."""
    p = request.user
    return PrincipalView(
        subject=p.subject, issuer=p.issuer, tenant=p.tenant, groups=list(p.groups),
        roles=list(p.roles), clearance=p.clearance,
        attributes={k: list(v) for k, v in p.attributes.items()},
        principal_strings=list(p.principal_strings),
    )

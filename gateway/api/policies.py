"""Named-policy administration (admin): `GET/POST /v1/policies`, `GET/PUT/DELETE /v1/policies/{name}`.

Thin controllers: validate the body's shape, call `PolicyService`, shape the response.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, delete, get, post, put
from litestar.datastructures import State
from litestar.params import Parameter

from gateway.access.policies import PolicyVersion, StoredPolicy
from gateway.api.openapi import problem_responses
from gateway.auth.guards import requires_role
from policies.principal import Principal

ADMIN = [requires_role("admin")]
AdminRequest = Request[Principal, Any, Any]


class PolicyBody(msgspec.Struct, forbid_unknown_fields=True):
    """A named policy as written by an administrator (omitted fields take their defaults)."""

    name: str | None = None
    description: str | None = None
    allow: list[str] | None = None
    deny: list[str] | None = None
    classification: str | None = None
    conditions: dict[str, list[str]] | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def fields(self) -> dict[str, Any]:
        """The fields that were given."""
        return {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}


class PolicyView(msgspec.Struct):
    """The current version of a named policy."""

    name: str
    description: str
    allow: list[str]
    deny: list[str]
    classification: str
    conditions: dict[str, list[str]]
    valid_from: str | None
    valid_until: str | None
    tenant: str
    version: int
    created_at: str
    created_by: str
    updated_at: str
    updated_by: str

    @classmethod
    def of(cls, stored: StoredPolicy) -> PolicyView:
        """Shape a stored policy."""
        return msgspec.convert(stored.to_json(), cls)


class PolicyVersionView(msgspec.Struct):
    """One version from the history; `policy` is null for the version that deleted it."""

    name: str
    version: int
    action: str
    changed_at: str
    changed_by: str
    policy: dict[str, Any] | None

    @classmethod
    def of(cls, version: PolicyVersion) -> PolicyVersionView:
        """Shape a history row."""
        return cls(version.name, version.version, version.action, version.changed_at.isoformat(),
                   version.changed_by, dict(version.body) if version.body is not None else None)


@get("/v1/policies", guards=ADMIN, tags=["policies"])
async def list_policies(request: AdminRequest, state: State) -> list[PolicyView]:
    """Every named policy of the caller's tenant, current versions."""
    return [PolicyView.of(p) for p in await state.policies.current_policies(request.user.tenant)]


@post("/v1/policies", guards=ADMIN, tags=["policies"], responses=problem_responses(409))
async def create_policy(data: PolicyBody, request: AdminRequest, state: State) -> PolicyView:
    """Create a named policy (version 1); 409 if the name is taken."""
    return PolicyView.of(await state.policies.create(request.user, data.fields()))


@get("/v1/policies/{name:str}", guards=ADMIN, tags=["policies"])
async def get_policy(
    name: str, request: AdminRequest, state: State,
    version: int | None = Parameter(default=None, ge=1, description="read this (old) version"),
) -> PolicyView | PolicyVersionView:
    """The current version, or with `?version=N` any version ever written."""
    if version is None:
        return PolicyView.of(await state.policies.get(request.user.tenant, name))
    return PolicyVersionView.of(await state.policies.version(request.user.tenant, name, version))


@get("/v1/policies/{name:str}/versions", guards=ADMIN, tags=["policies"])
async def list_policy_versions(name: str, request: AdminRequest, state: State) -> list[PolicyVersionView]:
    """Every version of the policy, oldest first, including the deletion if any."""
    return [PolicyVersionView.of(v) for v in await state.policies.versions(request.user.tenant, name)]


@put("/v1/policies/{name:str}", guards=ADMIN, tags=["policies"])
async def update_policy(name: str, data: PolicyBody, request: AdminRequest, state: State) -> PolicyView:
    """Replace the policy with a new version; documents referencing it see the change at once."""
    return PolicyView.of(await state.policies.update(request.user, name, data.fields()))


@delete("/v1/policies/{name:str}", guards=ADMIN, tags=["policies"], responses=problem_responses(409))
async def delete_policy(name: str, request: AdminRequest, state: State) -> None:
    """Delete the policy (409 while documents reference it); its versions stay readable."""
    await state.policies.delete(request.user, name)


ROUTES = [list_policies, create_policy, get_policy, list_policy_versions, update_policy, delete_policy]

"""Named policies: create, read, update, delete and apply from files, versioned and audited.

Every change makes a new version: the current row in `access_policies` is replaced and
the version is appended to `access_policy_versions`, where old versions stay readable
(a delete appends a version without a body). Writing an identical body is not a change.
A policy still referenced by documents cannot be deleted (409).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.access.service import AccessAdministration
from gateway.db.access import rule_column_values, rule_from_columns
from gateway.db.models import Document
from gateway.db.policy_models import AccessPolicy, AccessPolicyVersion
from gateway.errors import ConflictError, InvalidInputError, NotFoundError
from policies.files import PlannedChange, PolicyFile, plan_changes
from policies.model import AccessBlockError
from policies.named import NamedPolicy, parse_named_policy
from policies.principal import Principal

_POLICY = AccessPolicy.__table__.c


@dataclass(frozen=True)
class StoredPolicy:
    """The current version of a named policy, with who wrote it and when."""

    tenant: str
    version: int
    policy: NamedPolicy
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    def to_json(self) -> dict[str, Any]:
        """The API and CLI form: the policy body plus version and provenance."""
        return {**self.policy.to_json(), "tenant": self.tenant, "version": self.version,
                "created_at": self.created_at.isoformat(), "created_by": self.created_by,
                "updated_at": self.updated_at.isoformat(), "updated_by": self.updated_by}


@dataclass(frozen=True)
class PolicyVersion:
    """One historical version; `body` is None for the version that deleted the policy."""

    tenant: str
    name: str
    version: int
    action: str
    body: Mapping[str, Any] | None
    changed_at: datetime
    changed_by: str


class PolicyService(AccessAdministration):
    """Named-policy administration within the administrator's tenant."""

    def parse(self, body: Any, *, name: str | None = None) -> NamedPolicy:
        """Validate a policy body; errors name the field (422)."""
        try:
            return parse_named_policy(body, self.levels, name=name)
        except AccessBlockError as exc:
            raise InvalidInputError(str(exc), field=exc.field) from None

    async def current_policies(self, tenant: str) -> list[StoredPolicy]:
        """Every current policy of the tenant, by name."""
        async with self.writer(tenant) as session:
            rows = await session.execute(
                select(*_POLICY).where(_POLICY.tenant == tenant).order_by(_POLICY.name))
            return [self._stored(row) for row in rows]

    async def get(self, tenant: str, name: str) -> StoredPolicy:
        """The current version (404 if the policy does not exist or was deleted)."""
        async with self.writer(tenant) as session:
            row = await self._current(session, tenant, name, lock=False)
        if row is None:
            raise NotFoundError(f"No policy named {name!r}.")
        return self._stored(row)

    async def versions(self, tenant: str, name: str) -> list[PolicyVersion]:
        """Every version ever written, oldest first (404 if there is none)."""
        async with self.writer(tenant) as session:
            rows = (await session.execute(
                select(AccessPolicyVersion).where(AccessPolicyVersion.tenant == tenant,
                                                  AccessPolicyVersion.name == name)
                .order_by(AccessPolicyVersion.version))).scalars().all()
        if not rows:
            raise NotFoundError(f"No policy named {name!r}.")
        return [PolicyVersion(r.tenant, r.name, r.version, r.action, r.body, r.changed_at, r.changed_by)
                for r in rows]

    async def version(self, tenant: str, name: str, version: int) -> PolicyVersion:
        """One old (or the current) version; a deletion has no body to read (404)."""
        found = [v for v in await self.versions(tenant, name) if v.version == version]
        if not found or found[0].body is None:
            raise NotFoundError(f"Policy {name!r} has no readable version {version}.")
        return found[0]

    async def create(self, principal: Principal, body: Any) -> StoredPolicy:
        """Create a policy; 409 if one with that name exists."""
        policy = self.parse(body)
        async with self.writer(principal.tenant) as session:
            if await self._current(session, principal.tenant, policy.name, lock=True) is not None:
                raise ConflictError(f"A policy named {policy.name!r} already exists.")
            return await self._create(session, principal, policy)

    async def update(self, principal: Principal, name: str, body: Any) -> StoredPolicy:
        """Replace a policy with a new version (unchanged bodies make no version); 404 if absent."""
        policy = self.parse(body, name=name)  # checks the URL's name too: a bad one is 422
        async with self.writer(principal.tenant) as session:
            current = await self._current(session, principal.tenant, name, lock=True)
            if current is None:
                raise NotFoundError(f"No policy named {name!r}.")
            return await self._update(session, principal, current, policy)

    async def delete(self, principal: Principal, name: str) -> None:
        """Delete a policy no document references; its versions stay readable."""
        async with self.writer(principal.tenant) as session:
            current = await self._current(session, principal.tenant, name, lock=True)
            if current is None:
                raise NotFoundError(f"No policy named {name!r}.")
            referencing = (await session.execute(select(func.count()).select_from(Document).where(
                Document.tenant == principal.tenant, Document.policy_name == name))).scalar_one()
            if referencing:
                raise ConflictError(f"Policy {name!r} is still referenced by {referencing} "
                                    "document(s); change their access first.", documents=referencing)
            await session.execute(delete(AccessPolicy).where(AccessPolicy.id == current.id))
            await self._append_version(session, principal, name, current.version + 1, "delete", None)
            await self.audit_change(session, principal, "policy.delete", {
                "policy": name, "version": current.version + 1, "before": current.body, "after": None})

    async def plan(self, tenant: str, files: Sequence[PolicyFile]) -> list[PlannedChange]:
        """What applying `files` would change (a dry run)."""
        async with self.sessions() as session, session.begin():
            return await self._plan(session, tenant, files)

    async def apply(self, principal: Principal, files: Sequence[PolicyFile]) -> list[PlannedChange]:
        """Apply validated files in one transaction: all changes or none, each audited."""
        async with self.sessions() as session, session.begin():
            changes = await self._plan(session, principal.tenant, files, lock=True)
            for change in changes:
                if change.action == "unchanged":
                    continue
                await self.bind_tenant(session, change.tenant)
                actor = dataclasses.replace(principal, tenant=change.tenant)
                policy = self.parse(change.after)
                current = await self._current(session, change.tenant, change.name, lock=True)
                if current is None:
                    await self._create(session, actor, policy)
                else:
                    await self._update(session, actor, current, policy)
            return changes

    async def _plan(self, session: AsyncSession, tenant: str, files: Sequence[PolicyFile],
                    *, lock: bool = False) -> list[PlannedChange]:
        current: dict[tuple[str, str], Mapping[str, Any]] = {}
        for file_tenant in sorted({f.tenant or tenant for f in files}):
            await self.bind_tenant(session, file_tenant)
            query = select(_POLICY.name, _POLICY.body).where(_POLICY.tenant == file_tenant)
            for name, body in await session.execute(query.with_for_update() if lock else query):
                current[(file_tenant, name)] = body
        return plan_changes(current, files, tenant)

    async def _current(self, session: AsyncSession, tenant: str, name: str, *, lock: bool) -> Any:
        query = select(*_POLICY).where(_POLICY.tenant == tenant, _POLICY.name == name)
        return (await session.execute(query.with_for_update() if lock else query)).one_or_none()

    async def _create(self, session: AsyncSession, principal: Principal, policy: NamedPolicy) -> StoredPolicy:
        tenant = principal.tenant
        previous = (await session.execute(select(func.max(AccessPolicyVersion.version)).where(
            AccessPolicyVersion.tenant == tenant, AccessPolicyVersion.name == policy.name))).scalar()
        version = (previous or 0) + 1
        try:
            row = (await session.execute(insert(AccessPolicy).values(
                tenant=tenant, name=policy.name, version=version, created_by=principal.subject,
                updated_by=principal.subject, **self._columns(policy)).returning(*_POLICY))).one()
            await self._append_version(session, principal, policy.name, version, "create", policy)
        except IntegrityError:
            raise ConflictError(f"Policy {policy.name!r} was created concurrently.") from None
        await self.audit_change(session, principal, "policy.create", {
            "policy": policy.name, "version": version, "before": None, "after": policy.to_json()})
        return self._stored(row)

    async def _update(self, session: AsyncSession, principal: Principal, current: Any,
                      policy: NamedPolicy) -> StoredPolicy:
        if dict(current.body) == policy.to_json():
            return self._stored(current)
        version = current.version + 1
        row = (await session.execute(update(AccessPolicy).where(AccessPolicy.id == current.id).values(
            version=version, updated_at=func.now(), updated_by=principal.subject,
            **self._columns(policy)).returning(*_POLICY))).one()
        await self._append_version(session, principal, policy.name, version, "update", policy)
        await self.audit_change(session, principal, "policy.update", {
            "policy": policy.name, "version": version, "before": current.body, "after": policy.to_json()})
        return self._stored(row)

    async def _append_version(self, session: AsyncSession, principal: Principal, name: str,
                              version: int, action: str, policy: NamedPolicy | None) -> None:
        await session.execute(insert(AccessPolicyVersion).values(
            tenant=principal.tenant, name=name, version=version, action=action,
            body=policy.to_json() if policy else None, changed_by=principal.subject))

    def _columns(self, policy: NamedPolicy) -> dict[str, Any]:
        return {"description": policy.description, "body": policy.to_json(),
                **rule_column_values(policy.rule, self.levels)}

    def _stored(self, row: Any) -> StoredPolicy:
        policy = NamedPolicy(name=row.name, rule=rule_from_columns(row, self.levels),
                             description=row.description)
        return StoredPolicy(row.tenant, row.version, policy, row.created_at, row.created_by,
                            row.updated_at, row.updated_by)

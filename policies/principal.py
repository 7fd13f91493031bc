"""Who is asking: the identity the policy engine decides for.

A `Principal` is built by the gateway's authentication from verified token claims.
The engine only reads it; it never looks at tokens or HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def _freeze(attributes: Mapping[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({k: tuple(v) for k, v in attributes.items()})


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: subject, tenant, group and role memberships, clearance."""

    subject: str
    tenant: str
    issuer: str = ""
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    clearance: str | None = None
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "roles", tuple(self.roles))
        object.__setattr__(self, "attributes", _freeze(self.attributes))

    @property
    def principal_strings(self) -> tuple[str, ...]:
        """The strings an allow or deny list can name this caller by (SPEC §12)."""
        return (
            f"user:{self.subject}",
            *(f"group:{g}" for g in self.groups),
            *(f"role:{r}" for r in self.roles),
            "everyone",
        )

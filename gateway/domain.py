"""Frozen values that cross pipeline stages.

Stages hand each other these immutable values and never call back into an earlier stage.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.principal import Principal

__all__ = ["AuditEvent", "AuditSource", "Principal"]


@dataclass(frozen=True)
class AuditSource:
    """One retrieved chunk as the audit trail records it, with the grant that admitted it."""

    rank: int
    document_id: uuid.UUID
    external_id: str
    document_version: int
    chunk_id: int
    content_sha256: str
    score: float
    granted_by: str | None = None
    policy_name: str | None = None
    policy_version: int | None = None


@dataclass(frozen=True)
class AuditEvent:
    """What one request did with content: who, what, which sources, how it ended."""

    request_id: str
    action: str
    principal: Principal
    status: str
    query: str | None = None
    sources: tuple[AuditSource, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)

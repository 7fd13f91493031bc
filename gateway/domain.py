"""Frozen values that cross pipeline stages.

Stages hand each other these immutable values and never call back into an earlier stage.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.principal import Principal

__all__ = [
    "Answer", "AuditEvent", "AuditSource", "Citation", "Principal", "RetrievedChunk", "Retrieval",
]


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


@dataclass(frozen=True)
class RetrievedChunk:
    """A chunk the caller may see, as retrieved for one query, with the grant that admitted it."""

    chunk_id: int
    document_id: uuid.UUID
    external_id: str
    document_version: int
    title: str
    text: str
    score: float
    source_uri: str | None
    char_start: int
    char_end: int
    heading_path: tuple[str, ...]
    content_sha256: str
    granted_by: str | None = None
    policy_name: str | None = None
    policy_version: int | None = None


@dataclass(frozen=True)
class Retrieval:
    """The result of one retrieval: ranked chunks and how they were found.

    `complete` is False only when fewer than k permitted chunks exist at all. `plan` names
    the steps taken (`exact`, `ann`, `key-ann`, or one of them `+exact`), `candidates` the rows
    the database examined, `estimate` the planner's estimate of the permitted set.
    """

    chunks: tuple[RetrievedChunk, ...]
    complete: bool
    plan: str
    candidates: int | None = None
    estimate: int | None = None


@dataclass(frozen=True)
class Citation:
    """A numbered source of an answer; `n` matches the `[n]` markers in the text."""

    n: int
    chunk: RetrievedChunk


@dataclass(frozen=True)
class Answer:
    """Generated text with its citations; citations to unaudited sources were removed."""

    text: str
    citations: tuple[Citation, ...]
    removed_citations: int = 0

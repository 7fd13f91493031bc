"""Bulk loading: documents in batches through the ingestion service, tallied for a report.

Batches bound memory and let the service embed many chunks per model call and write
many rows per statement; each batch is one transaction (with per-document fallback).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from gateway.ingestion.service import IngestFailure, IngestionService
from gateway.ingestion.sources import SourceItem
from policies.principal import Principal


@dataclass
class BulkReport:
    """What a bulk load did: documents by status, chunks written, failures with reasons."""

    created: int = 0
    new_versions: int = 0
    metadata_updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def documents(self) -> int:
        """Documents written (created or given a new version)."""
        return self.created + self.new_versions

    @property
    def skipped(self) -> int:
        """Documents whose content was unchanged, so nothing was embedded."""
        return self.metadata_updated + self.unchanged

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failures


def _batches(items: Iterable[SourceItem], size: int) -> Iterator[list[SourceItem]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


async def ingest_items(
    service: IngestionService,
    principal: Principal,
    items: Iterable[SourceItem],
    *,
    batch_size: int,
    progress: Callable[[int], None] = lambda done: None,
) -> BulkReport:
    """Ingest every item, `batch_size` documents per batch; `progress(n)` after each batch."""
    report = BulkReport()
    for batch in _batches(items, batch_size):
        readable = [item for item in batch if item.document is not None]
        for item in batch:
            if item.error is not None:
                report.failures.append((item.label, _reason(item.error)))
        outcomes = await service.ingest_many(principal, [item.document for item in readable
                                                         if item.document is not None])
        for item, outcome in zip(readable, outcomes, strict=True):
            if isinstance(outcome, IngestFailure):
                report.failures.append((item.label, _reason(outcome.error)))
                continue
            if outcome.status == "created":
                report.created += 1
            elif outcome.status == "new_version":
                report.new_versions += 1
            elif outcome.status == "metadata_updated":
                report.metadata_updated += 1
            else:
                report.unchanged += 1
            if outcome.status in ("created", "new_version"):
                report.chunks += outcome.chunks
        progress(len(batch))
    return report


def _reason(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    detail = getattr(error, "detail", str(error))
    return f"{detail} ({status})" if status else str(detail)

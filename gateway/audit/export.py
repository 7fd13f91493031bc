"""Export: JSON Lines (one canonical event per line, verifiable) or CSV (safe to open in a spreadsheet).

Both are rendered from the store's keyset batches and yielded in ~64 KiB chunks, so
memory stays flat whatever the size. `write_export` writes a file plus a signed
manifest (`<file>.manifest.json`): counts, first/last hash and seq range of every
chain, the checkpoints inside it and the public key, which is everything
`gateway audit verify --file` needs offline.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.audit.canonical import export_line, format_ts
from gateway.audit.signing import AuditSigner
from gateway.audit.store import AuditStore, EventQuery, SeqRange, StoredEvent
from gateway.errors import InvalidInputError

FORMATS = ("jsonl", "csv")
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
MANIFEST_FORMAT = "gateway-audit-export/1"
CSV_COLUMNS = ("id", "seq", "ts", "tenant", "request_id", "action", "status", "subject", "issuer",
               "groups", "roles", "clearance", "attributes", "query", "query_sha256", "detail",
               "sources", "prev_hash", "hash")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_CHUNK_BYTES = 64 * 1024


def csv_safe(cell: str) -> str:
    """Neutralise spreadsheet formulas (OWASP CSV injection): prefix risky cells with a quote."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return csv_safe(value)
    if isinstance(value, list | dict):
        return csv_safe(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return csv_safe(str(value))


def _csv_row(cells: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue().encode("utf-8")


def csv_header() -> bytes:
    """The CSV header row."""
    return _csv_row(CSV_COLUMNS)


def csv_record(event: StoredEvent) -> bytes:
    """One event as one CSV record; nested values as JSON text."""
    values = {**event.document, "hash": event.hash}
    return _csv_row([_csv_cell(values[column]) for column in CSV_COLUMNS])


def check_format(fmt: str) -> str:
    """`jsonl` or `csv`, else 422."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"format must be one of {', '.join(FORMATS)}")
    return fmt


async def render(events: AsyncIterator[StoredEvent], fmt: str) -> AsyncIterator[bytes]:
    """Serialise events, yielding chunks of about 64 KiB."""
    buffer = bytearray(csv_header() if fmt == "csv" else b"")
    async for event in events:
        buffer += csv_record(event) if fmt == "csv" else export_line(event.document, event.hash)
        if len(buffer) >= _CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


@dataclass
class ChainSummary:
    """What the manifest says about one chain in the file."""

    tenant: str
    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    first_prev_hash: str | None = None
    first_hash: str | None = None
    last_hash: str | None = None

    def add(self, event: StoredEvent) -> None:
        """Account for the next event written."""
        if self.count == 0:
            self.first_seq, self.first_prev_hash = event.seq, event.document["prev_hash"]
            self.first_hash = event.hash
        self.count += 1
        self.last_seq, self.last_hash = event.seq, event.hash


def manifest_path(out: Path) -> Path:
    """Where the manifest of an export file lives."""
    return out.with_name(out.name + ".manifest.json")


async def _write_chain(store: AuditStore, tenant: str, span: SeqRange, fmt: str,
                       handle: io.BufferedWriter, digest: Any) -> ChainSummary:
    summary = ChainSummary(tenant)
    async for event in store.events(EventQuery(tenant), span):
        line = csv_record(event) if fmt == "csv" else export_line(event.document, event.hash)
        handle.write(line)
        digest.update(line)
        summary.add(event)
    return summary


async def write_export(store: AuditStore, signer: AuditSigner, spans: Sequence[tuple[str, SeqRange]],
                       fmt: str, out: Path, filters: dict[str, Any]) -> dict[str, Any]:
    """Write the events of each (tenant, span) to `out` and a signed manifest next to it."""
    check_format(fmt)
    digest = hashlib.sha256()
    chains: list[dict[str, Any]] = []
    with out.open("wb") as handle:
        if fmt == "csv":
            handle.write(csv_header())
            digest.update(csv_header())
        for tenant, span in spans:
            summary = await _write_chain(store, tenant, span, fmt, handle, digest)
            if summary.count:
                checkpoints = await store.checkpoints(tenant, min_seq=(summary.first_seq or 1) - 1,
                                                      max_seq=summary.last_seq)
                chains.append({**asdict(summary), "checkpoints": [c.as_dict() for c in checkpoints]})
        handle.flush()
        os.fsync(handle.fileno())
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT, "created_at": format_ts(datetime.now(UTC)),
        "events_file": out.name, "events_format": fmt, "events_sha256": digest.hexdigest(),
        "events": sum(c["count"] for c in chains), "filters": filters,
        "public_key": signer.jwk, "chains": chains,
    }
    manifest["signature"] = signer.sign(manifest)
    target = manifest_path(out)
    temp = target.with_name(target.name + ".tmp")
    temp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temp, target)
    return manifest

"""Audit append throughput and chain-lock hold time, sequential and concurrent.

Usage: python bench/audit_append.py [EVENTS] [CONCURRENCY] [POOL]
Starts a throwaway embedded PostgreSQL, migrates it and records EVENTS events with
two sources each through AuditLog.record, then prints events/s and lock-hold figures
(from the gateway_audit_chain_lock_seconds samples).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from gateway.audit.service import AuditLog
from gateway.audit.signing import AuditSigner
from gateway.db import migrate
from gateway.db.embedded import EmbeddedDatabase
from gateway.db.engine import create_engine, session_factory
from gateway.domain import AuditEvent, AuditSource, Principal
from gateway.metrics import Metrics
from gateway.settings import AuditSettings, DatabaseSettings, Settings


class _Recorder:
    def __init__(self) -> None:
        self.values: list[float] = []

    def observe(self, value: float) -> None:
        self.values.append(value)


def _event(n: int, tenant: str) -> AuditEvent:
    principal = Principal(subject=f"user{n % 13}", tenant=tenant, issuer="urn:bench", groups=("staff",))
    sources = tuple(AuditSource(rank=r, document_id=uuid.uuid4(), external_id=f"doc-{r}", document_version=1,
                                chunk_id=n * 10 + r, content_sha256="ab" * 32, score=0.8 - r / 100,
                                granted_by="group:staff") for r in (1, 2))
    return AuditEvent(request_id=uuid.uuid4().hex, action="search", principal=principal, status="ok",
                      query=f"question {n}", sources=sources)


async def _run(url: str, data_dir: Path, events: int, concurrency: int, pool: int, tenants: int) -> None:
    settings = Settings(database=DatabaseSettings(url=url, data_dir=data_dir, pool_size=pool))
    engine = create_engine(url, settings.database)
    metrics = Metrics()
    held = _Recorder()
    metrics.audit_chain_lock = held  # type: ignore[assignment]
    log = AuditLog(session_factory(engine), AuditSettings(), metrics, AuditSigner.from_settings(settings))
    slots = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with slots:
            await log.record(_event(n, f"tenant{n % tenants}"))

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(events)))
    elapsed = time.perf_counter() - started
    await engine.dispose()
    values = sorted(held.values)
    p99 = values[int(len(values) * 0.99) - 1]
    print(f"{events} events, concurrency {concurrency}, pool {pool}, {tenants} tenant(s): "
          f"{events / elapsed:.0f} events/s; lock held median {statistics.median(values) * 1e3:.2f} ms, "
          f"p99 {p99 * 1e3:.2f} ms")


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    pool = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedDatabase(Path(tmp) / "db")
        try:
            urls = server.prepare("bench")
            migrate.upgrade(urls.owner)
            asyncio.run(_run(urls.runtime, Path(tmp), events, 1, 1, 1))
            asyncio.run(_run(urls.runtime, Path(tmp), events, concurrency, pool, 1))
            asyncio.run(_run(urls.runtime, Path(tmp), events, concurrency, pool, 4))
        finally:
            server.stop()


if __name__ == "__main__":
    main()

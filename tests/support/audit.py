"""Audit test helpers: events, a wired AuditLog, superuser tampering, bulk-generated chains."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.canonical import GENESIS_HASH, document_hash, event_document
from gateway.audit.checkpoints import sign_checkpoint
from gateway.audit.service import AuditLog
from gateway.audit.signing import AuditSigner
from gateway.audit.store import AuditStore
from gateway.db.engine import create_engine, session_factory
from gateway.domain import AuditEvent, AuditSource, Principal
from gateway.metrics import Metrics
from gateway.settings import AuditSettings, Settings

DOC_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
DOC_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")


def principal(subject: str = "alice", tenant: str = "acme", **kw: object) -> Principal:
    return Principal(subject=subject, tenant=tenant, issuer="urn:test", groups=("finance",), **kw)  # type: ignore[arg-type]


def source(rank: int = 1, document_id: uuid.UUID = DOC_A, **kw: object) -> AuditSource:
    values: dict[str, object] = dict(rank=rank, document_id=document_id, external_id=f"ext-{document_id.hex[-2:]}",
                                     document_version=1, chunk_id=rank * 10, content_sha256="ab" * 32,
                                     score=0.9 - rank / 100, granted_by="group:finance",
                                     policy_name="finance-docs", policy_version=3)
    values.update(kw)
    return AuditSource(**values)  # type: ignore[arg-type]


def event(subject: str = "alice", tenant: str = "acme", query: str = "travel policy?",
          sources: Iterable[AuditSource] = (), action: str = "search", **kw: object) -> AuditEvent:
    return AuditEvent(request_id=uuid.uuid4().hex, action=action, principal=principal(subject, tenant),
                      status="ok", query=query, sources=tuple(sources), **kw)  # type: ignore[arg-type]


@dataclass
class AuditKit:
    """An AuditLog and AuditStore on one engine, with the signer they use."""

    log: AuditLog
    store: AuditStore
    signer: AuditSigner
    metrics: Metrics
    engine: AsyncEngine


@asynccontextmanager
async def audit_kit(settings: Settings, *, pool_size: int = 4, checkpoint_every: int = 1000,
                    store_query: bool = True, batch_size: int = 1000) -> AsyncIterator[AuditKit]:
    database = replace(settings.database, pool_size=pool_size)
    engine = create_engine(settings.database.url or "", database)
    sessions = session_factory(engine)
    signer = AuditSigner.from_settings(settings)
    metrics = Metrics()
    log = AuditLog(sessions, AuditSettings(store_query=store_query, checkpoint_every=checkpoint_every),
                   metrics, signer)
    try:
        yield AuditKit(log, AuditStore(sessions, batch_size=batch_size), signer, metrics, engine)
    finally:
        await engine.dispose()


def bind(conn: psycopg.Connection, tenant: str) -> None:
    """Bind a runtime-role session to a tenant (row-level security)."""
    conn.execute("SELECT set_config('gateway.audit_tenant', %s, false)", (tenant,))


def tamper(superuser_url: str, statements: Iterable[tuple[str, tuple]]) -> None:
    """Change audit rows behind the gateway's back, as a superuser with triggers off."""
    with psycopg.connect(superuser_url) as conn:
        conn.execute("SET session_replication_role = replica")
        for sql, params in statements:
            conn.execute(sql, params)


EVENT_COLUMNS = ("id", "tenant", "seq", "ts", "request_id", "action", "status", "subject", "issuer",
                 "groups", "roles", "clearance", "attributes", "query", "query_sha256", "detail",
                 "prev_hash", "hash")
SOURCE_COLUMNS = ("event_id", "rank", "tenant", "document_id", "external_id", "document_version",
                  "chunk_id", "content_sha256", "score", "granted_by", "policy_name", "policy_version")


def _generated(tenant: str, seq: int, ts: datetime, prev_hash: str, sources: int) -> tuple[dict, list[dict]]:
    row = {"id": uuid.uuid4(), "tenant": tenant, "seq": seq, "ts": ts, "request_id": f"req-{seq}",
           "action": "search", "status": "ok", "subject": f"user{seq % 50}", "issuer": "urn:test",
           "groups": ["staff"], "roles": [], "clearance": None, "attributes": {},
           "query": f"question number {seq}", "query_sha256": "cd" * 32, "detail": {},
           "prev_hash": prev_hash}
    rows = [{"event_id": row["id"], "rank": r, "tenant": tenant,
             "document_id": uuid.UUID(int=(seq * 7 + r) % 1000 + 1), "external_id": f"doc-{r}",
             "document_version": 1, "chunk_id": seq * 10 + r, "content_sha256": "ef" * 32,
             "score": 0.5 + r / 64, "granted_by": "everyone", "policy_name": None,
             "policy_version": None} for r in range(1, sources + 1)]
    row["hash"] = document_hash(event_document(row, rows))
    return row, rows


def bulk_chain(owner_url: str, signer: AuditSigner, *, tenant: str, count: int, start: datetime,
               step: timedelta, sources: int = 2, checkpoint_every: int = 1000,
               batch: int = 5000) -> tuple[int, str]:
    """COPY a valid chain of `count` generated events (hashes computed here); return the head."""
    seq, head = 0, GENESIS_HASH
    with psycopg.connect(owner_url) as conn:
        conn.execute("INSERT INTO audit_chains (tenant) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,))
        while seq < count:
            events, links = [], []
            for _ in range(min(batch, count - seq)):
                seq += 1
                row, rows = _generated(tenant, seq, start + step * seq, head, sources)
                head = row["hash"]
                events.append(row)
                links.extend(rows)
                if seq % checkpoint_every == 0:
                    cp = sign_checkpoint(signer, tenant=tenant, seq=seq, kind="periodic", head_hash=head,
                                         ts=row["ts"])
                    conn.execute("INSERT INTO audit_checkpoints VALUES (%s, %s, %s, %s, %s, %s, %s)",
                                 (cp.tenant, cp.seq, cp.kind, cp.hash, row["ts"], cp.key_id, cp.signature))
            _copy(conn, "audit_events", EVENT_COLUMNS, events)
            _copy(conn, "audit_sources", SOURCE_COLUMNS, links)
            conn.commit()
    return seq, head


def _copy(conn: psycopg.Connection, table: str, columns: tuple[str, ...], rows: list[dict]) -> None:
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([json.dumps(row[c]) if c in ("attributes", "detail") else row[c]
                            for c in columns])

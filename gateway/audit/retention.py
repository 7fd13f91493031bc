"""Retention: archive, then prune the events older than N days through the one controlled path.

Per tenant chain, the prune point S is the last event of the longest prefix older
than the cutoff (timestamps never decrease along a chain, so this is every older
event). The archive (a normal export with its signed manifest) is written and
verified offline first; then, in one owner transaction, `audit_prune()` checks S
against the chain, stores a signed `prune` checkpoint (seq S, hash of S) and deletes
seq <= S - the triggers let exactly those rows go - and an `audit.prune` event is
appended to the same chain. Verification then starts from the prune checkpoint: the
first retained event must link to its hash.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.chain import append_event, checkpoint_if_due
from gateway.audit.checkpoints import Checkpoint, log_checkpoint, sign_checkpoint
from gateway.audit.export import write_export
from gateway.audit.offline import verify_file
from gateway.audit.service import prepare_event
from gateway.audit.signing import AuditSigner
from gateway.audit.store import EVENTS, AuditStore, EventQuery, SeqRange
from gateway.audit.trail import operator_principal
from gateway.domain import AuditEvent
from gateway.errors import ConflictError

log = structlog.get_logger("gateway.audit")

_PRUNE = text("SELECT audit_prune(:tenant, :seq, :before, :hash, :ts, :key_id, :signature)")


@dataclass(frozen=True)
class PrunePlan:
    """What will go from one chain: after < seq <= through."""

    tenant: str
    after: int
    through: int


async def plan_prune(store: AuditStore, before: datetime) -> list[PrunePlan]:
    """The prefix of every chain older than `before`, past its last prune point."""
    plans = []
    for tenant in await store.tenants():
        previous = await store.latest_prune(tenant)
        after = previous.seq if previous is not None else 0
        span = await store.seq_range(EventQuery(tenant, until=before))
        if span.through > after:
            plans.append(PrunePlan(tenant, after, span.through))
    return plans


async def _prune_chain(session: AsyncSession, signer: AuditSigner, plan: PrunePlan, before: datetime,
                       detail: dict[str, Any], checkpoint_every: int) -> dict[str, Any]:
    head_hash = await session.scalar(
        select(EVENTS.c.hash).where(EVENTS.c.tenant == plan.tenant, EVENTS.c.seq == plan.through))
    checkpoint = sign_checkpoint(signer, tenant=plan.tenant, seq=plan.through, kind="prune",
                                 head_hash=str(head_hash), ts=datetime.now(UTC))
    deleted = await session.scalar(_PRUNE, {
        "tenant": plan.tenant, "seq": plan.through, "before": before, "hash": checkpoint.hash,
        "ts": datetime.fromisoformat(checkpoint.ts), "key_id": checkpoint.key_id,
        "signature": checkpoint.signature})
    result = {"tenant": plan.tenant, "pruned_through_seq": plan.through, "events_deleted": deleted,
              "checkpoint": checkpoint.as_dict(), **detail}
    event = AuditEvent(request_id=uuid.uuid4().hex, action="audit.prune",
                       principal=operator_principal(plan.tenant), status="ok",
                       detail={k: v for k, v in result.items() if k != "checkpoint"})
    appended = await append_event(session, prepare_event(event, store_query=True, event_id=uuid.uuid4()))
    await checkpoint_if_due(session, signer, plan.tenant, appended, checkpoint_every)
    return result


async def prune(owner_sessions: async_sessionmaker[AsyncSession], signer: AuditSigner, *,
                older_than_days: int, archive: Path | None, checkpoint_every: int,
                now: datetime | None = None) -> list[dict[str, Any]]:
    """Archive (when asked) and prune every chain's events older than `older_than_days`."""
    before = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    store = AuditStore(owner_sessions)
    plans = await plan_prune(store, before)
    detail: dict[str, Any] = {"older_than_days": older_than_days, "before": before.isoformat(),
                              "archive_sha256": None}
    if plans and archive is not None:
        spans = [(p.tenant, SeqRange(p.after, p.through)) for p in plans]
        manifest = await write_export(store, signer, spans, "jsonl", archive,
                                      {"pruned_before": before.isoformat()})
        if not verify_file(archive, public_key=signer.jwk).ok:
            raise ConflictError(f"the archive {archive} does not verify; nothing was pruned")
        detail["archive_sha256"] = manifest["events_sha256"]
    results = []
    for plan in plans:
        async with owner_sessions() as session, session.begin():
            result = await _prune_chain(session, signer, plan, before, detail, checkpoint_every)
        log_checkpoint(Checkpoint.from_dict(result["checkpoint"]))
        log.info("audit_pruned", tenant=plan.tenant, through_seq=plan.through,
                 events_deleted=result["events_deleted"])
        results.append(result)
    return results

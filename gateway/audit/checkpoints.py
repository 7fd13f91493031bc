"""Signed checkpoints: "the chain of tenant T had head hash H at seq S, at time t".

A checkpoint outlives whatever happens to the events after it: dropping the newest
events, or rewriting the chain and recomputing every hash, leaves a checkpoint whose
hash no longer matches (or whose seq no longer exists), and only the holder of the
audit key can make a new one. Checkpoints are also logged (`audit_checkpoint`) so a
copy lives outside the database, and exported with every manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.canonical import format_ts
from gateway.audit.signing import AuditSigner, verify_signature
from gateway.db.audit_models import AuditCheckpointRow

log = structlog.get_logger("gateway.audit")

KINDS = ("periodic", "manual", "prune")


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement about a chain's head."""

    tenant: str
    seq: int
    kind: str
    hash: str
    ts: str
    key_id: str
    signature: str

    def payload(self) -> dict[str, Any]:
        """What the signature covers (canonical JSON of this object)."""
        return {"tenant": self.tenant, "seq": self.seq, "kind": self.kind, "hash": self.hash,
                "ts": self.ts, "key_id": self.key_id}

    def as_dict(self) -> dict[str, Any]:
        """The checkpoint as exported: payload plus signature."""
        return {**self.payload(), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        """Read an exported checkpoint (raises KeyError/TypeError/ValueError when malformed)."""
        return cls(tenant=str(data["tenant"]), seq=int(data["seq"]), kind=str(data["kind"]),
                   hash=str(data["hash"]), ts=str(data["ts"]), key_id=str(data["key_id"]),
                   signature=str(data["signature"]))

    def is_valid(self, jwk: dict[str, Any]) -> bool:
        """Signed by the key `jwk` (its kid must match)."""
        return self.key_id == jwk.get("kid") and verify_signature(jwk, self.payload(), self.signature)


def sign_checkpoint(signer: AuditSigner, *, tenant: str, seq: int, kind: str, head_hash: str,
                    ts: datetime) -> Checkpoint:
    """Make a checkpoint signed with the audit key."""
    unsigned = Checkpoint(tenant=tenant, seq=seq, kind=kind, hash=head_hash, ts=format_ts(ts),
                          key_id=signer.key_id, signature="")
    return Checkpoint(**{**unsigned.as_dict(), "signature": signer.sign(unsigned.payload())})


def _from_row(row: AuditCheckpointRow) -> Checkpoint:
    return Checkpoint(tenant=row.tenant, seq=row.seq, kind=row.kind, hash=row.hash,
                      ts=format_ts(row.ts), key_id=row.key_id, signature=row.signature)


async def store_checkpoint(session: AsyncSession, checkpoint: Checkpoint) -> None:
    """Insert (idempotent per tenant, seq, kind) in the caller's transaction."""
    await session.execute(
        insert(AuditCheckpointRow)
        .values(tenant=checkpoint.tenant, seq=checkpoint.seq, kind=checkpoint.kind,
                hash=checkpoint.hash, ts=datetime.fromisoformat(checkpoint.ts),
                key_id=checkpoint.key_id, signature=checkpoint.signature)
        .on_conflict_do_nothing()
    )


def log_checkpoint(checkpoint: Checkpoint) -> None:
    """Write the checkpoint to the log: a copy outside the database."""
    log.info("audit_checkpoint", **{f"checkpoint_{k}": v for k, v in checkpoint.as_dict().items()})


async def load_checkpoints(session: AsyncSession, tenant: str, *, min_seq: int = 0,
                           max_seq: int | None = None) -> list[Checkpoint]:
    """A tenant's checkpoints with min_seq <= seq (<= max_seq), in seq order."""
    query = select(AuditCheckpointRow).where(
        AuditCheckpointRow.tenant == tenant, AuditCheckpointRow.seq >= min_seq
    )
    if max_seq is not None:
        query = query.where(AuditCheckpointRow.seq <= max_seq)
    rows = (await session.scalars(query.order_by(AuditCheckpointRow.seq, AuditCheckpointRow.kind))).all()
    return [_from_row(row) for row in rows]


async def latest_prune(session: AsyncSession, tenant: str) -> Checkpoint | None:
    """The newest prune checkpoint of a chain: where verification starts."""
    row = (await session.scalars(
        select(AuditCheckpointRow)
        .where(AuditCheckpointRow.tenant == tenant, AuditCheckpointRow.kind == "prune")
        .order_by(AuditCheckpointRow.seq.desc()).limit(1)
    )).first()
    return None if row is None else _from_row(row)


"""Recompute a chain and report the first bad event: edited, missing, reordered, checkpoint_mismatch.

`ChainWalk` is the pure rule set, shared by the database verifier (`verify_tenant`)
and the offline verifier of export files (`gateway.audit.offline`). It walks one
tenant's events in chain order from an anchor (genesis, the newest signed prune
checkpoint, or a signed manifest) and checks, for each event:

- its seq follows the previous one (a gap: `missing`; going backwards: `reordered`);
- its `prev_hash` is the previous event's hash; when not, the event whose hash it
  names sits later in the chain (`reordered`), or one of the two was rewritten
  (`edited`: the event itself when its own hash is wrong, else its predecessor);
- its hash is the SHA-256 of its canonical document, sources included (`edited`);
- every signed checkpoint at its seq is validly signed and names its hash
  (`checkpoint_mismatch`), and no checkpoint lies beyond the last event (the newest
  events were dropped: `checkpoint_mismatch`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.audit.canonical import GENESIS_HASH, document_hash
from gateway.audit.checkpoints import Checkpoint
from gateway.audit.store import AuditStore, EventQuery, SeqRange

REASONS = ("edited", "missing", "reordered", "checkpoint_mismatch")


@dataclass(frozen=True)
class BadEvent:
    """The first event that fails, and why. `id` is None when the event is gone."""

    tenant: str
    seq: int | None
    id: str | None
    reason: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """Wire form of `first_bad_event`."""
        return {"id": self.id, "seq": self.seq, "reason": self.reason, "tenant": self.tenant,
                "detail": self.detail}


@dataclass(frozen=True)
class ChainReport:
    """The outcome for one tenant's chain."""

    tenant: str
    events_checked: int
    checkpoints_checked: int
    first_bad_event: BadEvent | None
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None

    @property
    def ok(self) -> bool:
        """Nothing bad was found."""
        return self.first_bad_event is None

    def as_dict(self) -> dict[str, Any]:
        """Wire form."""
        return {"tenant": self.tenant, "ok": self.ok, "events_checked": self.events_checked,
                "checkpoints_checked": self.checkpoints_checked, "first_seq": self.first_seq,
                "last_seq": self.last_seq, "last_hash": self.last_hash,
                "first_bad_event": None if self.first_bad_event is None else self.first_bad_event.as_dict()}


@dataclass(frozen=True)
class VerifyReport:
    """The outcome over one or more chains; `first_bad_event` is the first failing chain's."""

    chains: list[ChainReport] = field(default_factory=list)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every chain verified."""
        return all(chain.ok for chain in self.chains)

    def as_dict(self) -> dict[str, Any]:
        """`{ok, events_checked, first_bad_event, ...}` (SPEC §12) plus per-chain detail."""
        bad = next((c.first_bad_event for c in self.chains if c.first_bad_event), None)
        return {"ok": self.ok, "events_checked": sum(c.events_checked for c in self.chains),
                "first_bad_event": None if bad is None else bad.as_dict(),
                "checkpoints_checked": sum(c.checkpoints_checked for c in self.chains),
                "chains": [c.as_dict() for c in self.chains], **self.extra}


@dataclass(frozen=True)
class Anchor:
    """The trusted point a walk starts after: (seq, hash) of the event before the first one."""

    seq: int
    hash: str
    what: str


GENESIS = Anchor(0, GENESIS_HASH, "the start of the chain")


@dataclass(frozen=True)
class LinkBreak:
    """An event whose prev_hash is not its predecessor's hash; resolved with a lookup."""

    seq: int
    id: str
    prev_hash: str
    self_consistent: bool


@dataclass(frozen=True)
class Gap:
    """Seqs `first`..`seq - 1` are absent before this event: missing, unless they come later."""

    first: int
    seq: int
    id: str


class ChainWalk:
    """The verification rules over one chain, fed one event at a time."""

    def __init__(self, tenant: str, anchor: Anchor | None, checkpoints: Iterable[Checkpoint],
                 jwk: Mapping[str, Any]) -> None:
        self.tenant = tenant
        self._jwk = dict(jwk)
        self._anchor = anchor
        self.prev_seq: int | None = None if anchor is None else anchor.seq
        self.prev_hash: str | None = None if anchor is None else anchor.hash
        self.prev_id: str | None = None
        self.first_seq: int | None = None
        self.checked = 0
        self.checkpoints_checked = 0
        self._pending: dict[int, list[Checkpoint]] = defaultdict(list)
        for cp in checkpoints:
            if anchor is None or cp.seq > anchor.seq:
                self._pending[cp.seq].append(cp)

    def bad(self, reason: str, seq: int | None, event_id: str | None, detail: str) -> BadEvent:
        """A finding about this chain."""
        return BadEvent(tenant=self.tenant, seq=seq, id=event_id, reason=reason, detail=detail)

    def step(self, document: Mapping[str, Any],
             stored_hash: str) -> BadEvent | LinkBreak | Gap | None:
        """Check the next event; None when it is sound."""
        self.checked += 1
        seq, event_id = int(document["seq"]), str(document["id"])
        self_consistent = document_hash(document) == stored_hash
        if self.prev_seq is None:
            for stale in [s for s in self._pending if s < seq]:
                del self._pending[stale]
            self.first_seq = seq
        else:
            if seq <= self.prev_seq:
                return self.bad("reordered", seq, event_id, f"seq {seq} comes after seq {self.prev_seq}")
            if seq > self.prev_seq + 1:
                return Gap(self.prev_seq + 1, seq, event_id)
            if self.first_seq is None:
                self.first_seq = seq
            if document["prev_hash"] != self.prev_hash:
                return LinkBreak(seq, event_id, str(document["prev_hash"]), self_consistent)
        if not self_consistent:
            return self.bad("edited", seq, event_id, "its content does not match its hash")
        bad = self._check_checkpoints(seq, event_id, stored_hash)
        if bad is None:
            self.prev_seq, self.prev_hash, self.prev_id = seq, stored_hash, event_id
        return bad

    def _check_checkpoints(self, seq: int, event_id: str, stored_hash: str) -> BadEvent | None:
        for cp in self._pending.pop(seq, []):
            self.checkpoints_checked += 1
            if not cp.is_valid(self._jwk):
                return self.bad("checkpoint_mismatch", seq, event_id,
                                 f"the {cp.kind} checkpoint at seq {seq} is not signed by the audit key")
            if cp.hash != stored_hash:
                return self.bad("checkpoint_mismatch", seq, event_id,
                                 f"the hash differs from the signed {cp.kind} checkpoint at seq {seq}")
        return None

    def resolve(self, brk: LinkBreak, predecessor_hash_is_later: bool) -> BadEvent:
        """Classify a broken link, knowing whether the hash it names belongs to a later event."""
        if predecessor_hash_is_later:
            return self.bad("reordered", brk.seq, brk.id,
                             "its prev_hash is the hash of an event later in the chain")
        if brk.self_consistent and self.prev_id is not None:
            return self.bad("edited", self.prev_seq, self.prev_id,
                             f"rewritten: the event at seq {brk.seq} does not link to it")
        if brk.self_consistent and self._anchor is not None and self._anchor is not GENESIS:
            return self.bad("checkpoint_mismatch", brk.seq, brk.id,
                             f"it does not link to {self._anchor.what}")
        return self.bad("edited", brk.seq, brk.id, "it does not link to its predecessor")

    def resolve_gap(self, gap: Gap, first_appears_later: bool) -> BadEvent:
        """Classify a gap, knowing whether the first absent seq turns up further on."""
        if first_appears_later:
            return self.bad("reordered", gap.seq, gap.id, f"seq {gap.first} comes after it")
        return self.bad("missing", gap.first, None, f"events {gap.first}..{gap.seq - 1} are missing; "
                        f"the next present event is {gap.id} at seq {gap.seq}")

    def finish(self) -> BadEvent | None:
        """After the last event: a signed checkpoint beyond it means the newest events were dropped."""
        beyond = sorted(s for s in self._pending if self.prev_seq is None or s > self.prev_seq)
        if not beyond:
            return None
        end = self.prev_seq or 0
        return self.bad("checkpoint_mismatch", end + 1, None,
                         f"a signed checkpoint names seq {beyond[0]} but the chain ends at seq {end}")

    def report(self, bad: BadEvent | None) -> ChainReport:
        """The chain's outcome."""
        return ChainReport(tenant=self.tenant, events_checked=self.checked,
                           checkpoints_checked=self.checkpoints_checked, first_bad_event=bad,
                           first_seq=self.first_seq, last_seq=self.prev_seq,
                           last_hash=self.prev_hash if self.prev_id else None)


async def verify_tenant(store: AuditStore, tenant: str, jwk: Mapping[str, Any], *,
                        since: datetime | None = None) -> ChainReport:
    """Verify a tenant's chain from its anchor (or from `since`) to its head as of now."""
    prune = await store.latest_prune(tenant)
    anchor: Anchor | None = GENESIS
    if prune is not None:
        anchor = Anchor(prune.seq, prune.hash, f"the prune checkpoint at seq {prune.seq}")
    if prune is not None and not prune.is_valid(dict(jwk)):
        walk = ChainWalk(tenant, anchor, (), jwk)
        return walk.report(walk.bad("checkpoint_mismatch", prune.seq, None,
                                     "the prune checkpoint is not signed by the audit key"))
    after = anchor.seq if anchor is not None else 0
    if since is not None:
        span = await store.seq_range(EventQuery(tenant, since=since))
        if span.after > after:
            anchor, after = None, span.after
    checkpoints = await store.checkpoints(tenant, min_seq=after + 1)
    head = await store.head(tenant)
    walk = ChainWalk(tenant, anchor, checkpoints, jwk)
    async for event in store.events(EventQuery(tenant), SeqRange(after, head[0] if head else 0)):
        found = walk.step(event.document, event.hash)
        if isinstance(found, Gap):
            found = walk.resolve_gap(found, False)
        elif isinstance(found, LinkBreak):
            later = await store.seq_of_hash(tenant, found.prev_hash)
            found = walk.resolve(found, later is not None and later > found.seq)
        if found is not None:
            return walk.report(found)
    return walk.report(walk.finish())


async def verify_store(store: AuditStore, jwk: Mapping[str, Any], *, tenants: Iterable[str] | None = None,
                       since: datetime | None = None) -> VerifyReport:
    """Verify several chains (every chain when `tenants` is None)."""
    names = list(tenants) if tenants is not None else await store.tenants()
    return VerifyReport([await verify_tenant(store, name, jwk, since=since) for name in names])

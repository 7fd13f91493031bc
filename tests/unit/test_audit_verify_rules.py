"""The verification rules on in-memory chains: each kind of damage gets its reason and place."""

import uuid
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.canonical import GENESIS_HASH, document_hash, event_document
from gateway.audit.checkpoints import sign_checkpoint
from gateway.audit.export import csv_safe
from gateway.audit.signing import AuditSigner, public_jwk, verify_signature
from gateway.audit.verify import GENESIS, Anchor, ChainWalk, Gap, LinkBreak

SIGNER = AuditSigner(Ed25519PrivateKey.generate())
START = datetime(2026, 1, 1, tzinfo=UTC)


def _chain(count=10):
    events, prev = [], GENESIS_HASH
    for seq in range(1, count + 1):
        row = {"id": uuid.UUID(int=seq), "tenant": "acme", "seq": seq, "ts": START + timedelta(seconds=seq),
               "request_id": f"r{seq}", "action": "search", "status": "ok", "subject": "alice", "issuer": "i",
               "groups": [], "roles": [], "clearance": None, "attributes": {}, "query": f"q{seq}",
               "query_sha256": None, "detail": {}, "prev_hash": prev}
        document = event_document(row, [])
        prev = document_hash(document)
        events.append((document, prev))
    return events


def _walk(events, checkpoints=(), anchor=GENESIS):
    walk = ChainWalk("acme", anchor, checkpoints, SIGNER.jwk)
    for position, (document, stored) in enumerate(events):
        found = walk.step(document, stored)
        rest = events[position + 1:]
        if isinstance(found, Gap):
            found = walk.resolve_gap(found, any(d["seq"] == found.first for d, _ in rest))
        elif isinstance(found, LinkBreak):
            found = walk.resolve(found, any(h == found.prev_hash for _, h in rest))
        if found is not None:
            return found.reason, found.seq
    found = walk.finish()
    return None if found is None else (found.reason, found.seq)


def _cp(events, seq):
    return sign_checkpoint(SIGNER, tenant="acme", seq=seq, kind="periodic", head_hash=events[seq - 1][1], ts=START)


def test_a_sound_chain_passes_with_its_checkpoints():
    events = _chain()
    assert _walk(events, [_cp(events, 5), _cp(events, 10)]) is None


def test_an_edited_event_is_edited_at_its_seq():
    events = _chain()
    events[3] = ({**events[3][0], "query": "changed"}, events[3][1])
    assert _walk(events) == ("edited", 4)


def test_a_rehashed_event_is_found_through_its_successor():
    events = _chain()
    changed = {**events[3][0], "query": "changed"}
    events[3] = (changed, document_hash(changed))
    assert _walk(events) == ("edited", 4)


def test_a_gap_is_missing_at_the_first_absent_seq():
    events = _chain()
    del events[4:6]
    assert _walk(events) == ("missing", 5)


def test_swapped_positions_are_reordered():
    events = _chain()
    a, b = events[6], events[7]
    events[6] = ({**b[0], "seq": 7}, b[1])
    events[7] = ({**a[0], "seq": 8}, a[1])
    assert _walk(events) == ("reordered", 7)


def test_out_of_order_lines_are_reordered():
    events = _chain()
    events[2], events[3] = events[3], events[2]
    assert _walk(events) == ("reordered", 4)


def test_a_dropped_tail_is_found_by_a_later_checkpoint():
    events = _chain()
    checkpoint = _cp(events, 10)
    assert _walk(events[:7], [checkpoint]) == ("checkpoint_mismatch", 8)


def test_a_checkpoint_with_a_bad_signature_or_hash_is_a_mismatch():
    events = _chain()
    forged = sign_checkpoint(AuditSigner(Ed25519PrivateKey.generate()), tenant="acme", seq=5, kind="manual",
                             head_hash=events[4][1], ts=START)
    assert _walk(events, [forged]) == ("checkpoint_mismatch", 5)
    wrong = sign_checkpoint(SIGNER, tenant="acme", seq=6, kind="manual", head_hash=events[4][1], ts=START)
    assert _walk(events, [wrong]) == ("checkpoint_mismatch", 6)


def test_a_walk_from_a_prune_anchor_needs_the_first_event_to_link_to_it():
    events = _chain()
    anchor = Anchor(4, events[3][1], "the prune checkpoint")
    assert _walk(events[4:], anchor=anchor) is None
    assert _walk(events[5:], anchor=anchor) == ("missing", 5)
    assert _walk(events[4:], anchor=Anchor(4, "f" * 64, "the prune checkpoint")) == ("checkpoint_mismatch", 5)


def test_signatures_cover_the_canonical_payload():
    signature = SIGNER.sign({"b": 1, "a": [1.5]})
    assert verify_signature(public_jwk(SIGNER._key.public_key()), {"a": [1.5], "b": 1}, signature)
    assert not verify_signature(SIGNER.jwk, {"a": [1.5], "b": 2}, signature)
    assert not verify_signature({"kty": "EC"}, {"a": [1.5], "b": 1}, signature)


def test_csv_cells_that_could_be_formulas_are_quoted():
    for risky in ("=1+1", "+SUM(A1)", "-2", "@cmd", "\tx", "\rx"):
        assert csv_safe(risky) == "'" + risky
    for plain in ("alice", "1.5", "", " =not-at-start", "'already"):
        assert csv_safe(plain) == plain

"""Offline verification of an export (`gateway audit verify --file`): no database, no trust in it.

Checks the manifest's signature (against a pinned public key when given, else the key
the manifest carries, whose `kid` is reported so it can be compared with the one the
operator publishes), then walks every chain in the file with the same rules as the
database verifier, anchored at the manifest's first link and bounded by its last
hash and count, and finally checks the file's SHA-256. Without a manifest (an API
export) each chain is walked from its first event with no checkpoints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.canonical import GENESIS_HASH
from gateway.audit.checkpoints import Checkpoint
from gateway.audit.export import manifest_path
from gateway.audit.signing import public_jwk, verify_signature
from gateway.audit.verify import (
    GENESIS,
    Anchor,
    BadEvent,
    ChainReport,
    ChainWalk,
    Gap,
    LinkBreak,
    VerifyReport,
)
from gateway.errors import InvalidInputError


def load_public_key(path: Path) -> dict[str, Any]:
    """A pinned audit public key: a JWK (JSON) or an Ed25519 PEM public key."""
    raw = path.read_bytes()
    if raw.lstrip().startswith(b"{"):
        return dict(json.loads(raw))
    key = serialization.load_pem_public_key(raw)
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInputError(f"{path} is not an Ed25519 public key")
    return public_jwk(key)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        yield from enumerate(handle, start=1)


def _parse(raw: bytes) -> tuple[dict[str, Any], str]:
    document = json.loads(raw)
    if not isinstance(document, dict):
        raise ValueError("not an event")
    stored = document.pop("hash")
    if not isinstance(stored, str) or not isinstance(document["tenant"], str):
        raise ValueError("not an event")
    int(document["seq"])
    return document, stored


def _appears_later(path: Path, tenant: str, after_line: int, *, event_hash: str | None = None,
                   seq: int | None = None) -> bool:
    """Whether an event of `tenant` with this hash (or seq) sits after line `after_line`."""
    for number, raw in _lines(path):
        if number <= after_line:
            continue
        try:
            document, stored = _parse(raw)
        except (ValueError, KeyError, TypeError):
            continue
        if document["tenant"] == tenant and (stored == event_hash or int(document["seq"]) == seq):
            return True
    return False


class _FileVerifier:
    def __init__(self, path: Path, manifest: dict[str, Any] | None, jwk: dict[str, Any]) -> None:
        self.path, self.manifest, self.jwk = path, manifest, jwk
        self.meta = {c["tenant"]: c for c in manifest["chains"]} if manifest else {}
        self.reports: list[ChainReport] = []

    def _walk(self, tenant: str) -> ChainWalk:
        meta = self.meta.get(tenant)
        if self.manifest is None:
            return ChainWalk(tenant, None, (), self.jwk)
        checkpoints = [Checkpoint.from_dict(c) for c in (meta or {}).get("checkpoints", [])]
        if meta is None:
            anchor = GENESIS
        elif meta["first_seq"] == 1:
            anchor = Anchor(0, GENESIS_HASH, "the start of the chain")
        else:
            anchor = Anchor(meta["first_seq"] - 1, meta["first_prev_hash"], "the signed manifest")
        return ChainWalk(tenant, anchor, checkpoints, self.jwk)

    def _close(self, walk: ChainWalk) -> BadEvent | None:
        bad = walk.finish()
        meta = self.meta.get(walk.tenant)
        if bad is None and self.manifest is not None:
            if meta is None:
                bad = walk.bad("checkpoint_mismatch", walk.first_seq, None,
                               "the signed manifest lists no events of this tenant")
            elif (walk.prev_seq, walk.prev_hash, walk.checked) != (
                    meta["last_seq"], meta["last_hash"], meta["count"]):
                bad = walk.bad("checkpoint_mismatch", (walk.prev_seq or 0) + 1, None,
                               f"the signed manifest lists {meta['count']} events through seq "
                               f"{meta['last_seq']} with hash {meta['last_hash']}")
        self.reports.append(walk.report(bad))
        return bad

    def _fail(self, walk: ChainWalk, bad: BadEvent) -> BadEvent:
        self.reports.append(walk.report(bad))
        return bad

    def _switch(self, walk: ChainWalk | None, tenant: str, number: int,
                seen: set[str]) -> tuple[ChainWalk, BadEvent | None]:
        """Close the chain that ended and open the next one."""
        if walk is not None:
            bad = self._close(walk)
            if bad is not None:
                return walk, bad
        fresh = self._walk(tenant)
        if tenant in seen:
            return fresh, self._fail(fresh, fresh.bad(
                "reordered", None, None, f"line {number}: this tenant's chain appeared earlier"))
        seen.add(tenant)
        return fresh, None

    def run(self) -> BadEvent | None:
        digest = hashlib.sha256()
        walk: ChainWalk | None = None
        seen: set[str] = set()
        for number, raw in _lines(self.path):
            digest.update(raw)
            try:
                document, stored = _parse(raw)
            except (ValueError, KeyError, TypeError):
                current = walk or ChainWalk("", None, (), self.jwk)
                return self._fail(current, current.bad("edited", None, None,
                                                       f"line {number} is not an audit event"))
            if walk is None or document["tenant"] != walk.tenant:
                walk, bad = self._switch(walk, document["tenant"], number, seen)
                if bad is not None:
                    return bad
            found = walk.step(document, stored)
            if isinstance(found, Gap):
                found = walk.resolve_gap(found, _appears_later(self.path, walk.tenant, number,
                                                               seq=found.first))
            elif isinstance(found, LinkBreak):
                found = walk.resolve(found, _appears_later(self.path, walk.tenant, number,
                                                           event_hash=found.prev_hash))
            if found is not None:
                return self._fail(walk, found)
        if walk is not None and self._close(walk):
            return self.reports[-1].first_bad_event
        return self._check_whole_file(digest.hexdigest(), seen)

    def _check_whole_file(self, sha256: str, seen: set[str]) -> BadEvent | None:
        if self.manifest is None:
            return None
        for tenant, meta in self.meta.items():
            if tenant not in seen:
                walk = self._walk(tenant)
                return self._fail(walk, walk.bad(
                    "checkpoint_mismatch", meta["first_seq"], None,
                    "the signed manifest lists events of this tenant; none are in the file"))
        if sha256 != self.manifest["events_sha256"]:
            walk = ChainWalk("", None, (), self.jwk)
            return self._fail(walk, walk.bad(
                "checkpoint_mismatch", None, None, "the file's SHA-256 differs from the signed manifest"))
        return None


def _manifest_problem(manifest: dict[str, Any], jwk: dict[str, Any], pinned: bool) -> str | None:
    if manifest.get("events_format") != "jsonl":
        raise InvalidInputError("only JSON Lines exports can be verified; export with --format jsonl")
    if pinned and manifest.get("public_key", {}).get("kid") != jwk.get("kid"):
        return "the manifest was signed with another key than the pinned one"
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    if not verify_signature(jwk, unsigned, str(manifest.get("signature", ""))):
        return "the manifest's signature is invalid"
    return None


def verify_file(path: Path, *, public_key: dict[str, Any] | None = None) -> VerifyReport:
    """Verify an export file (and its manifest when present) offline."""
    if not path.is_file():
        raise InvalidInputError(f"{path} is not a file")
    manifest_file = manifest_path(path)
    manifest = json.loads(manifest_file.read_text("utf-8")) if manifest_file.is_file() else None
    jwk = public_key or (manifest or {}).get("public_key") or {}
    extra = {"file": str(path), "manifest": manifest is not None, "key_id": jwk.get("kid"),
             "key_pinned": public_key is not None}
    if manifest is not None:
        problem = _manifest_problem(manifest, jwk, public_key is not None)
        if problem is not None:
            walk = ChainWalk("", None, (), jwk)
            return VerifyReport([walk.report(walk.bad("checkpoint_mismatch", None, None, problem))], extra)
    verifier = _FileVerifier(path, manifest, jwk)
    verifier.run()
    return VerifyReport(verifier.reports, extra)

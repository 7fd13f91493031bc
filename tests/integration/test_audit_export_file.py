"""Export files with a signed manifest verify offline, and any change to them is located."""

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.export import manifest_path, write_export
from gateway.audit.offline import verify_file
from gateway.audit.signing import AuditSigner
from gateway.audit.store import EventQuery
from gateway.errors import InvalidInputError
from tests.support.audit import DOC_B, audit_kit, event, source

pytestmark = pytest.mark.integration


@pytest.fixture
async def export(settings, tmp_path):
    """acme: 25 events (checkpoints every 10), globex: 4, exported to one file."""
    async with audit_kit(settings, checkpoint_every=10) as kit:
        for n in range(25):
            await kit.log.record(event(subject=f"u{n % 4}", query=f"q{n}", sources=[source(1), source(2, DOC_B)]))
        for n in range(4):
            await kit.log.record(event(tenant="globex", query=f"g{n}"))
        out = tmp_path / "audit.jsonl"
        spans = [(t, await kit.store.seq_range(EventQuery(t))) for t in await kit.store.tenants()]
        manifest = await write_export(kit.store, kit.signer, spans, "jsonl", out, {"since": None})
        yield out, manifest, kit


def _rewrite(path, change):
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(change(lines)))


def _bad(path, **kw):
    report = verify_file(path, **kw).as_dict()
    assert report["ok"] is False
    bad = report["first_bad_event"]
    return bad["reason"], bad["seq"], bad["tenant"]


async def test_an_export_verifies_offline_with_its_manifest(export):
    out, manifest, kit = export
    report = verify_file(out, public_key=kit.signer.jwk).as_dict()
    assert report["ok"], report
    assert (report["events_checked"], report["checkpoints_checked"]) == (29, 2)
    assert [(c["tenant"], c["first_seq"], c["last_seq"]) for c in manifest["chains"]] == [
        ("acme", 1, 25), ("globex", 1, 4)]
    assert manifest["public_key"]["kid"] == kit.signer.key_id
    assert len(out.read_bytes().splitlines()) == manifest["events"] == 29


async def test_an_edited_line_is_located(export):
    out, _, _ = export

    def edit(lines):
        event = json.loads(lines[6])
        event["subject"] = "mallory"
        lines[6] = json.dumps(event).encode() + b"\n"
        return lines

    _rewrite(out, edit)
    assert _bad(out) == ("edited", 7, "acme")


async def test_a_removed_line_is_missing(export):
    out, _, _ = export
    _rewrite(out, lambda lines: lines[:11] + lines[12:])
    assert _bad(out) == ("missing", 12, "acme")


async def test_dropping_the_newest_events_of_a_chain_breaks_the_signed_manifest(export):
    out, _, _ = export
    _rewrite(out, lambda lines: lines[:23] + lines[25:])
    assert _bad(out) == ("checkpoint_mismatch", 24, "acme")


async def test_swapped_lines_are_reordered(export):
    out, _, _ = export
    _rewrite(out, lambda lines: lines[:3] + [lines[4], lines[3]] + lines[5:])
    assert _bad(out) == ("reordered", 5, "acme")


async def test_an_edited_manifest_fails_its_signature(export):
    out, manifest, _ = export
    manifest["chains"][0]["count"] = 24
    manifest_path(out).write_text(json.dumps(manifest))
    assert _bad(out)[0] == "checkpoint_mismatch"


async def test_a_manifest_signed_by_another_key_fails_against_the_pinned_key(export):
    out, manifest, kit = export
    other = AuditSigner(Ed25519PrivateKey.generate())
    forged = {k: v for k, v in manifest.items() if k != "signature"}
    forged["public_key"] = other.jwk
    forged["signature"] = other.sign(forged)
    manifest_path(out).write_text(json.dumps(forged))
    assert _bad(out) == ("checkpoint_mismatch", 10, "acme")  # the real key's checkpoints do not verify
    for chain in forged["chains"]:
        chain["checkpoints"] = []
    forged["signature"] = other.sign({k: v for k, v in forged.items() if k != "signature"})
    manifest_path(out).write_text(json.dumps(forged))
    unpinned = verify_file(out)
    assert unpinned.ok and unpinned.as_dict()["key_id"] == other.key_id != kit.signer.key_id
    assert _bad(out, public_key=kit.signer.jwk)[0] == "checkpoint_mismatch"


async def test_csv_exports_are_refused_for_offline_verification(export, tmp_path):
    _, _, kit = export
    out = tmp_path / "audit.csv"
    await write_export(kit.store, kit.signer, [("acme", await kit.store.seq_range(EventQuery("acme")))],
                       "csv", out, {})
    assert out.read_text().startswith('"id","seq","ts"')
    with pytest.raises(InvalidInputError):
        verify_file(out)

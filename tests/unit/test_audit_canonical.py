"""The canonical JSON (RFC 8785) and the event hash a third party recomputes."""

import json
import math
import uuid
from datetime import UTC, datetime

import pytest

from gateway.audit.canonical import (
    GENESIS_HASH,
    body_hash,
    canonical_json,
    document_hash,
    event_document,
    format_ts,
    normalize_json,
)

# The worked example of docs/audit.md.
ROW = {"id": "7d9f5b0e-2c1a-4e55-9a53-0c6f1d2b7e10", "tenant": "acme", "seq": 1,
       "ts": datetime(2026, 11, 26, 9, 30, 0, 123456, tzinfo=UTC), "request_id": "req-1", "action": "search",
       "status": "ok", "subject": "alice", "issuer": "https://idp.example.com", "groups": ["finance"], "roles": [],
       "clearance": "internal", "attributes": {"region": ["EU"]}, "query": "What is the travel policy?",
       "query_sha256": "5d2c1b9c51fd3c3de3b1bc1d1aef4e3c2b1cf5ff98d2be3c1f1b2e0b1a3c4d5e", "detail": {},
       "prev_hash": GENESIS_HASH}
SOURCES = [{"rank": 1, "document_id": "3f2a8c44-9e1b-4d0a-8c57-5b2d7e9f1a23", "external_id": "hr-travel",
            "document_version": 2, "chunk_id": 17,
            "content_sha256": "9b74c9897bac770ffc029102a200c5de9b74c9897bac770ffc029102a200c5de",
            "score": 0.8315, "granted_by": "group:finance", "policy_name": "finance-docs", "policy_version": 3}]


@pytest.mark.parametrize(("value", "expected"), [
    (333333333.33333329, "333333333.3333333"), (1e30, "1e+30"), (4.50, "4.5"), (2e-3, "0.002"),
    (1e-27, "1e-27"), (-0.0, "0"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
    (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"), (-1.5, "-1.5"),
    (0.000001, "0.000001"), (1e-7, "1e-7"), (123456789012345680000.0, "123456789012345680000"),
])
def test_numbers_follow_ecmascript_formatting(value, expected):
    assert canonical_json(value).decode() == expected


def test_keys_sort_by_utf16_code_units_not_code_points():
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    text = canonical_json({k: 0 for k in keys}).decode()
    order = [json.loads("{" + part + "}") for part in text[1:-1].split(",")]
    assert [next(iter(o)) for o in order] == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_strings_escape_like_json_stringify():
    assert canonical_json("a\"b\\c\n\u000f\u007f\u00e9") == '"a\\"b\\\\c\\n\\u000f\u007f\u00e9"'.encode()


def test_plain_documents_match_sorted_compact_json():
    document = event_document(ROW, SOURCES)
    expected = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(document).decode() == expected


def test_non_finite_numbers_and_unknown_types_are_refused():
    with pytest.raises(ValueError):
        canonical_json(math.nan)
    with pytest.raises(TypeError):
        canonical_json({"when": datetime.now(UTC)})


def test_the_documented_example_hashes_to_the_documented_values():
    document = event_document(ROW, SOURCES)
    assert body_hash(document) == "8fba340195db3afa5f5662050b3a77e45b4916da73947206b61dd1554bd127d4"
    assert document_hash(document) == "ebc206e9b34f3012a83525756f72b737a1b43c9ff195e984f497c7f89979e3c9"


@pytest.mark.parametrize("change", [
    {"subject": "mallory"}, {"seq": 2}, {"ts": "2026-11-26T09:30:00.123457Z"}, {"prev_hash": "1" * 64},
    {"groups": ["finance", "hr"]}, {"query": None},
])
def test_any_change_changes_the_hash(change):
    document = event_document(ROW, SOURCES)
    assert document_hash({**document, **change}) != document_hash(document)


def test_a_changed_source_changes_the_hash():
    changed = [{**SOURCES[0], "score": 0.8316}]
    assert document_hash(event_document(ROW, changed)) != document_hash(event_document(ROW, SOURCES))
    assert document_hash(event_document(ROW, [])) != document_hash(event_document(ROW, SOURCES))


def test_timestamps_are_utc_with_microseconds():
    assert format_ts(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"
    with pytest.raises(ValueError):
        format_ts(datetime(2026, 1, 2))


def test_json_is_normalised_the_way_jsonb_returns_it():
    assert normalize_json({"big": 1.5e300, "small": 1e-7, "t": (1, 2)}) == {
        "big": 15 * 10**299, "small": 1e-7, "t": [1, 2]}
    with pytest.raises(ValueError):
        normalize_json({"x": math.inf})
    when = datetime(2026, 1, 2, tzinfo=UTC)
    assert normalize_json({"at": when, "doc": uuid.UUID(int=1)}) == {
        "at": "2026-01-02T00:00:00.000000Z", "doc": "00000000-0000-0000-0000-000000000001"}
    with pytest.raises(TypeError):
        normalize_json({"x": object()})

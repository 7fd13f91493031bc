"""The canonical form of an audit event, and its hash (documented in docs/audit.md).

An event's document is a JSON object with the SPEC §12 field names, its source rows
included. It is hashed in two steps, both SHA-256 (lowercase hex) of a JSON value
serialised per RFC 8785 (JSON Canonicalization Scheme: keys sorted by UTF-16 code
units, no whitespace, UTF-8, ECMAScript number formatting; integers written in full):

    body_sha256 = H(JCS(document without seq, ts, prev_hash, hash))
    hash        = H(JCS({"body_sha256", "prev_hash", "seq", "ts"}))

The body is hashed by the gateway before the chain is locked; the link is hashed by
the database inside the one append statement (`audit_append`), which is what keeps
the lock short. A third party recomputes both from an export with any JCS library.
The writer and every verifier build documents through `event_document`, so what is
hashed at append time is exactly what is re-hashed from the stored rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

GENESIS_HASH = "0" * 64
"""`prev_hash` of the first event of every chain."""


def _number(value: float) -> str:
    """ECMAScript Number::toString, as RFC 8785 §3.2.2.3 requires."""
    if not math.isfinite(value):
        raise ValueError("NaN and infinities have no canonical JSON form")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k, n = len(digits), int(exponent) + len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        body = "0." + "0" * -n + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        body = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


def _write(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, bool):
        out.append("null" if value is None else "true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: str(k).encode("utf-16-be"))):
            if not isinstance(key, str):
                raise TypeError("object keys must be strings")
            out.append(("," if i else "") + json.dumps(key, ensure_ascii=False) + ":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} has no canonical JSON form")


def _same_as_sorted_json(value: Any) -> bool:
    """Whether `json.dumps(sort_keys=True)` already writes `value` exactly as RFC 8785 does.

    True unless a float is integral, tiny (< 1e-4, where Python switches to exponents)
    or not finite, or an object key holds a character outside the BMP (where code point
    order and UTF-16 order differ), or a key is not a string.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str or kind is int or item is None or kind is bool:
            continue
        if kind is float:
            if not (math.isfinite(item) and not item.is_integer() and abs(item) >= 1e-4):
                return False
        elif kind is dict:
            for key in item:
                if type(key) is not str or not (key.isascii() or max(key) <= "\uffff"):
                    return False
            pending.extend(item.values())
        elif kind is list or kind is tuple:
            pending.extend(item)
        else:
            return False
    return True


def canonical_json(value: Any) -> bytes:
    """Serialise `value` per RFC 8785 (UTF-8 bytes).

    The C JSON encoder does the work whenever its output is already canonical (the
    usual case); the exact, slower writer handles the rest.
    """
    if _same_as_sorted_json(value):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    out: list[str] = []
    _write(value, out)
    return "".join(out).encode("utf-8")


def _float_as_postgres_returns_it(text: str) -> float | int:
    """Jsonb prints numbers of 1e21 and above as integer digits, so they come back as ints."""
    value = float(text)
    return int(Decimal(text)) if math.isfinite(value) and abs(value) >= 1e21 else value


def _jsonable(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return format_ts(value)
    raise TypeError(f"{type(value).__name__} cannot be stored in an audit event")


def normalize_json(value: Any) -> Any:
    """`value` as it will read back from a jsonb column, so the append-time hash is the stored one.

    UUIDs and aware datetimes become strings; anything else that is not JSON is refused.
    """
    text = json.dumps(value, allow_nan=False, default=_jsonable)
    return json.loads(text, parse_float=_float_as_postgres_returns_it)


def sha256_hex(data: bytes) -> str:
    """SHA-256, lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def format_ts(ts: datetime) -> str:
    """UTC, microseconds always written: `2026-11-26T09:30:00.000000Z`."""
    if ts.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _uuid_text(value: Any) -> str:
    return str(value) if isinstance(value, uuid.UUID) else str(uuid.UUID(str(value)))


def source_document(row: Mapping[str, Any]) -> dict[str, Any]:
    """A source row (column names) as the wire and the hash see it."""
    name, version = row["policy_name"], row["policy_version"]
    return {
        "rank": int(row["rank"]),
        "document_id": _uuid_text(row["document_id"]),
        "external_id": row["external_id"],
        "version": int(row["document_version"]),
        "chunk_id": int(row["chunk_id"]),
        "content_sha256": row["content_sha256"],
        "score": float(row["score"]),
        "granted_by": row["granted_by"],
        "policy": None if name is None and version is None else {"name": name, "version": version},
    }


def body_document(row: Mapping[str, Any], sources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The part of an event fixed before it joins the chain (column names in, wire names out)."""
    return {
        "id": _uuid_text(row["id"]),
        "tenant": row["tenant"],
        "request_id": row["request_id"],
        "action": row["action"],
        "status": row["status"],
        "subject": row["subject"],
        "issuer": row["issuer"],
        "groups": list(row["groups"]),
        "roles": list(row["roles"]),
        "clearance": row["clearance"],
        "attributes": row["attributes"],
        "query": row["query"],
        "query_sha256": row["query_sha256"],
        "detail": row["detail"],
        "sources": [source_document(s) for s in sorted(sources, key=lambda s: int(s["rank"]))],
    }


def event_document(row: Mapping[str, Any], sources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The whole document of a stored event and its source rows; no `hash`."""
    return {**body_document(row, sources), "seq": int(row["seq"]), "ts": format_ts(row["ts"]),
            "prev_hash": row["prev_hash"]}


LINK_FIELDS = ("seq", "ts", "prev_hash", "hash")


def body_hash(document: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the document without its chain link fields."""
    return sha256_hex(canonical_json({k: v for k, v in document.items() if k not in LINK_FIELDS}))


def link_hash(body_sha256: str, prev_hash: str, seq: int, ts: str) -> str:
    """The event's `hash`: binds its body to its place in the chain and its time."""
    return sha256_hex(canonical_json({"body_sha256": body_sha256, "prev_hash": prev_hash, "seq": seq,
                                      "ts": ts}))


def document_hash(document: Mapping[str, Any]) -> str:
    """The hash an event document must carry (its own `hash`, if present, is ignored)."""
    return link_hash(body_hash(document), str(document["prev_hash"]), int(document["seq"]),
                     str(document["ts"]))


def export_line(document: Mapping[str, Any], stored_hash: str) -> bytes:
    """One JSON Lines record: the document plus its stored hash, canonical, newline-terminated."""
    return canonical_json({**document, "hash": stored_hash}) + b"\n"

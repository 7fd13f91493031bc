"""Principal indexes: an HNSW graph over the access postings of one principal string.

A caller whose permitted set is one large group (10% of the index, say) makes a filtered
HNSW search over `chunks` walk a graph mostly of rows it may not read; the group's own
graph holds only its rows and is searched almost unfiltered (docs/benchmarks.md). The
index is a partial HNSW index on `chunk_postings` for one key, recorded in
`principal_indexes` so the planner learns with its estimate which of a caller's
strings have one (`gateway.retrieval.planner`).

Managed by the owner role (`gateway index create-principal`, `drop-principal`):
- built CONCURRENTLY, so ingestion and searches go on while the graph is built;
- recorded only once PostgreSQL marks it valid, and unrecorded before it is dropped;
  the planner also checks validity itself, so it never plans with a missing index;
- named from a hash of the key (index names are limited to 63 bytes), its predicate
  the key as a quoted literal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import psycopg
from psycopg import sql

from gateway.retrieval.repository import KEY_SEPARATOR

INDEX_PREFIX = "ix_chunk_postings_hnsw_"
HNSW_OPTIONS = {"m": 16, "ef_construction": 128}  # as the main index (migration 0004)
_LISTING = """
SELECT p.tenant, p.principal, p.index_name, p.created_at,
       coalesce(i.indisvalid, false) AS valid,
       coalesce(pg_relation_size(i.indexrelid), 0) AS bytes,
       greatest(coalesce(c.reltuples, 0), 0)::bigint AS postings
FROM principal_indexes AS p
LEFT JOIN pg_index AS i ON i.indexrelid = to_regclass(p.index_name)
LEFT JOIN pg_class AS c ON c.oid = i.indexrelid
WHERE %(tenant)s::text IS NULL OR p.tenant = %(tenant)s
ORDER BY p.tenant, p.principal
"""


class PrincipalIndexError(ValueError):
    """A principal index cannot be created or dropped as asked (the message says why)."""


@dataclass(frozen=True)
class PrincipalIndex:
    """One recorded principal index and its state."""

    tenant: str
    principal: str
    index_name: str
    valid: bool
    bytes: int
    postings: int  # as of the last build, VACUUM or ANALYZE (pg_class.reltuples)


def posting_key(tenant: str, principal: str) -> str:
    """The `chunk_postings` key of `principal` in `tenant`."""
    return f"{tenant}{KEY_SEPARATOR}{principal}"


def index_name(tenant: str, principal: str) -> str:
    """A stable index name for the key (a hash: keys are free text, names are identifiers)."""
    return INDEX_PREFIX + hashlib.sha256(posting_key(tenant, principal).encode()).hexdigest()[:20]


def _check(tenant: str, principal: str) -> None:
    if not tenant or not principal:
        raise PrincipalIndexError("tenant and principal string must not be empty")
    if "\x00" in tenant or "\x00" in principal:
        raise PrincipalIndexError("tenant and principal string must not contain NUL")


def create(owner_url: str, tenant: str, principal: str) -> PrincipalIndex:
    """Build the index (concurrently), then record it; returns its state."""
    _check(tenant, principal)
    name = index_name(tenant, principal)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM principal_indexes WHERE tenant = %s AND principal = %s",
                        (tenant, principal)).fetchone():
            raise PrincipalIndexError(f"{principal!r} of tenant {tenant!r} already has a principal index")
        # a build interrupted earlier leaves an invalid index of this name behind
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)))
        options = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.SQL(key), sql.Literal(value))
                                     for key, value in HNSW_OPTIONS.items())
        conn.execute(sql.SQL(
            "CREATE INDEX CONCURRENTLY {} ON chunk_postings USING hnsw (embedding vector_cosine_ops) "
            "WITH ({}) WHERE key = {}"
        ).format(sql.Identifier(name), options, sql.Literal(posting_key(tenant, principal))))
        conn.execute("INSERT INTO principal_indexes (tenant, principal, index_name) VALUES (%s, %s, %s)",
                     (tenant, principal, name))
    return next(i for i in listing(owner_url, tenant) if i.principal == principal)


def drop(owner_url: str, tenant: str, principal: str) -> None:
    """Unrecord the index (the planner stops using it), then drop it concurrently."""
    _check(tenant, principal)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        row = conn.execute("DELETE FROM principal_indexes WHERE tenant = %s AND principal = %s "
                           "RETURNING index_name", (tenant, principal)).fetchone()
        if row is None:
            raise PrincipalIndexError(f"{principal!r} of tenant {tenant!r} has no principal index")
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(row[0])))


def listing(owner_url: str, tenant: str | None = None) -> list[PrincipalIndex]:
    """Every recorded principal index (of `tenant` only, when given) with its size and state."""
    with psycopg.connect(owner_url) as conn:
        rows = conn.execute(_LISTING, {"tenant": tenant}).fetchall()
    return [PrincipalIndex(r[0], r[1], r[2], bool(r[4]), int(r[5]), int(r[6])) for r in rows]

"""Access postings hold unit vectors, so exact search ranks them by inner product.

Exact search computes a distance for every posting of the caller's keys. Cosine
distance sums three products per dimension (the dot product and both norms); for unit
vectors it is 1 - dot, one sum (measured at 100k chunks: 0.36 against 0.26
microseconds per posting scored, a third of an exact search's time per posting once
its sort is bounded). The postings now store each chunk's vector l2-normalised; the
query is normalised once and `<#>` (negative inner product) ranks them, so the cosine
distance is 1 + that value. `chunks` keeps its vectors as written: the HNSW index and
the answers' sources use them.

The postings are emptied and posted again from `chunks` in key order, as 0005's
backfill did (a rewrite in place would leave the table twice its size).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STORED = ", r.embedding FROM"
UNIT = ", l2_normalize(r.embedding) FROM"


def _postings_0005():
    """Migration 0005 as a module: the postings' SELECT and the maintaining trigger function."""
    path = Path(__file__).with_name("2026_11_26_0005_access_postings.py")
    spec = importlib.util.spec_from_file_location("postings_0005", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _with_vectors(sql: str, vectors: str) -> str:
    """`sql` (0005's text) posting `vectors` instead of the chunk's vector as stored."""
    if STORED not in sql:
        raise RuntimeError("migration 0005's postings SELECT is not the one this migration rewrites")
    return sql.replace(STORED, vectors)


def _repost(postings, vectors: str) -> None:
    """Maintain and re-post the postings with `vectors` (FORCE lifted inside this transaction only)."""
    maintain = postings.MAINTAIN.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    op.execute(_with_vectors(maintain, vectors))
    op.execute("TRUNCATE chunk_postings")
    for table in ("chunks", "chunk_postings"):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"INSERT INTO {postings.POSTED} {_with_vectors(postings._postings_of('chunks'), vectors)}")
    for table in ("chunks", "chunk_postings"):
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def upgrade() -> None:
    _repost(_postings_0005(), UNIT)


def downgrade() -> None:
    _repost(_postings_0005(), STORED)

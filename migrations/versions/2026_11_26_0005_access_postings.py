"""Access postings: each chunk's vector stored once per allow entry, grouped by that entry.

Exact search reached a principal's rows through the access index and then read each
one from `chunks`: about 3 wide rows per page, scattered over the table, each checked
against the row-level-security policy before its distance was computed (measured at
1M chunks: 3-4 microseconds per permitted row). `chunk_postings` holds, for every allow
entry of every chunk, the entry as a tenant-qualified key (the same keys as
`chunk_scan_keys`, without the writers' `*`), the chunk id, its classification and its
vector. An exact search reads the postings of the caller's keys (a range scan of one
narrow index, 0.7 microseconds per row with the distance), orders them by distance and
checks only the nearest against `chunks` (its policy and the query's predicate), one
primary-key lookup each, until k pass. The postings are candidates, never results:
every row returned still passes the full access rule on `chunks`.

Maintained by statement-level triggers on `chunks` (insert, delete, and updates that
change the tenant, allow list, classification or vector); the application never
writes the table. Row-level security: a reader sees only the postings of its own keys,
at or below its clearance; a bound writer only its tenant's (the triggers run as the
writer). Costs one extra copy of each vector per allow entry (docs/decisions.md).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

RUNTIME = "gateway_runtime"
KEY = "{r}.tenant || chr(31) || {p}"  # chunk_scan_keys' key for one allow entry (0004)


def _postings_of(rows: str, where: str = "") -> str:
    """The postings of `rows` (chunks or a transition table), one per distinct allow entry.

    In key order, so that each key's postings of one statement lie together on disk.
    """
    return (f"SELECT DISTINCT {KEY.format(r='r', p='p')}, r.id, r.tenant, r.classification, r.embedding "
            f"FROM {rows} AS r, unnest(r.allow) AS p {where} ORDER BY 1, 2")


POSTED = "chunk_postings (key, chunk_id, tenant, classification, embedding)"
CHANGED = """
    SELECT n.id FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
    WHERE (o.tenant, o.allow, o.classification) IS DISTINCT FROM (n.tenant, n.allow, n.classification)
       OR o.embedding <> n.embedding
"""
MAINTAIN = f"""
CREATE FUNCTION chunk_postings_maintain() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {POSTED} {_postings_of('new_rows')};
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM chunk_postings WHERE chunk_id IN (SELECT id FROM old_rows);
    ELSE
        DELETE FROM chunk_postings WHERE chunk_id IN ({CHANGED});
        INSERT INTO {POSTED}
        {_postings_of('new_rows', f'WHERE r.id IN ({CHANGED})')};
    END IF;
    RETURN NULL;
END $$
"""
TRUNCATED = """
CREATE FUNCTION chunk_postings_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM chunk_postings;
    RETURN NULL;
END $$
"""


def _rls_0002():
    """Migration 0002 as a module: its setting readers."""
    path = Path(__file__).with_name("2026_11_26_0002_access_policies_and_rls.py")
    spec = importlib.util.spec_from_file_location("rls_0002", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _create_table() -> None:
    op.create_table(
        "chunk_postings",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("chunk_id", sa.BigInteger(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("classification", sa.SmallInteger(), nullable=False),
        sa.Column("embedding", Vector(384), nullable=False),
        sa.PrimaryKeyConstraint("key", "chunk_id", name="pk_chunk_postings"),
    )
    op.execute("ALTER TABLE chunk_postings ALTER COLUMN embedding SET STORAGE PLAIN")
    op.create_index("ix_chunk_postings_chunk_id", "chunk_postings", ["chunk_id"])
    op.execute(f"GRANT SELECT, INSERT, DELETE ON chunk_postings TO {RUNTIME}")


def _security(rls) -> None:
    op.execute("ALTER TABLE chunk_postings ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE chunk_postings FORCE ROW LEVEL SECURITY")
    keys = (f"ARRAY(SELECT {rls.TENANT} || chr(31) || p FROM jsonb_array_elements_text("
            "nullif(current_setting('gateway.principals', true), '')::jsonb) AS p)")
    op.execute(
        "CREATE POLICY chunk_postings_read ON chunk_postings FOR SELECT USING ("
        f"chunk_postings.tenant = (SELECT {rls.TENANT}) "
        f"AND chunk_postings.key = ANY ({keys}) "
        f"AND chunk_postings.classification <= (SELECT {rls.CLEARANCE}))"
    )
    writer = f"chunk_postings.tenant = (SELECT {rls.TENANT}) AND (SELECT {rls.WRITER})"
    op.execute(f"CREATE POLICY chunk_postings_write ON chunk_postings FOR ALL "
               f"USING ({writer}) WITH CHECK ({writer})")


def _backfill() -> None:
    """Post the rows already there, in key order (FORCE is lifted inside this transaction only)."""
    op.execute("ALTER TABLE chunks NO FORCE ROW LEVEL SECURITY")
    op.execute(f"INSERT INTO {POSTED} {_postings_of('chunks')}")
    op.execute("ALTER TABLE chunks FORCE ROW LEVEL SECURITY")


def upgrade() -> None:
    _create_table()
    _backfill()
    _security(_rls_0002())
    op.execute(MAINTAIN)
    op.execute(TRUNCATED)
    for event, refs in (("INSERT", "NEW TABLE AS new_rows"), ("DELETE", "OLD TABLE AS old_rows"),
                        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows")):
        op.execute(f"CREATE TRIGGER chunks_postings_{event.lower()} AFTER {event} ON chunks "
                   f"REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION chunk_postings_maintain()")
    op.execute("CREATE TRIGGER chunks_postings_truncate AFTER TRUNCATE ON chunks "
               "FOR EACH STATEMENT EXECUTE FUNCTION chunk_postings_truncated()")


def downgrade() -> None:
    for event in ("insert", "delete", "update", "truncate"):
        op.execute(f"DROP TRIGGER chunks_postings_{event} ON chunks")
    op.execute("DROP FUNCTION chunk_postings_maintain()")
    op.execute("DROP FUNCTION chunk_postings_truncated()")
    op.drop_table("chunk_postings")

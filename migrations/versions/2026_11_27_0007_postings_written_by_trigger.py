"""Access postings are written by their trigger only, so a reader's scan carries one policy.

`chunk_postings` had two permissive policies for every role: the reader's (its own keys,
at or below its clearance) and the bound writer's (FOR ALL, so that the statement
triggers on `chunks` could keep the postings in step as the writer). PostgreSQL ORs
permissive policies, so a search tested every posting it scanned against both, and the
reader's `key = ANY (...)` could not become a condition of the index scan. Measured at
1M chunks, interleaved: 0.6 ms of the 1% principal's 7-7.5 ms p50 search (9,448
postings), 0.9 ms of the combined cell's 8.5-9.5.

Now the maintenance trigger runs with its owner's rights (SECURITY DEFINER, fixed
search_path, EXECUTE revoked from PUBLIC so that no role can attach it to a table of its
own) and the writer policy is gone: the runtime role keeps SELECT alone, so the
service can change postings only by writing `chunks`, whose forced policies check every
write, and a reader's SELECT meets the read policy only, whose key condition the scan of
`pk_chunk_postings` uses as an index condition. Row security no longer binds the owner
here (ENABLE, not FORCE), as on `principal_indexes`: the trigger posts whatever rows the
chunk write let through, for a superuser's bulk load as for a bound writer.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

RUNTIME = "gateway_runtime"
WRITER = (
    "chunk_postings.tenant = (SELECT nullif(current_setting('gateway.tenant', true), '')) "
    "AND (SELECT coalesce(nullif(current_setting('gateway.writer', true), '') = 'on', false))"
)


def upgrade() -> None:
    op.execute(f"REVOKE INSERT, DELETE ON chunk_postings FROM {RUNTIME}")
    op.execute("DROP POLICY chunk_postings_write ON chunk_postings")
    op.execute("ALTER TABLE chunk_postings NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER FUNCTION chunk_postings_maintain() SECURITY DEFINER "
               "SET search_path = public, pg_temp")
    # Only the triggers on chunks may run it: EXECUTE is checked when a trigger is
    # created, so without this any role could attach it to a temporary table of its own.
    op.execute("REVOKE ALL ON FUNCTION chunk_postings_maintain() FROM PUBLIC")


def downgrade() -> None:
    op.execute("GRANT EXECUTE ON FUNCTION chunk_postings_maintain() TO PUBLIC")
    op.execute("ALTER FUNCTION chunk_postings_maintain() SECURITY INVOKER RESET search_path")
    op.execute("ALTER TABLE chunk_postings FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY chunk_postings_write ON chunk_postings FOR ALL "
               f"USING ({WRITER}) WITH CHECK ({WRITER})")
    op.execute(f"GRANT INSERT, DELETE ON chunk_postings TO {RUNTIME}")

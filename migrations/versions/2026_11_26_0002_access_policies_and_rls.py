"""Named access policies with version history, and row-level security on content tables.

Row-level security is the second, independent lock behind the access predicate the
service puts in every query (SPEC §6). It reads the principal that the service bound to
the *transaction* (`set_config(..., true)`, see gateway/db/access.py):

    gateway.tenant      the tenant                      (readers and writers)
    gateway.principals  JSON array of principal strings (readers)
    gateway.clearance   clearance rank                  (readers)
    gateway.attributes  JSON object attr -> [values]    (readers)
    gateway.now         the decision time, ISO 8601     (readers)
    gateway.writer      'on' for ingest/admin writes    (writers)

Unset settings read as NULL (`nullif(current_setting(name, true), '')`), so a
transaction with nothing bound sees no row and may write none. FORCE makes the tables'
owner obey the same policies; superusers and BYPASSRLS roles are the only way around.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RUNTIME = "gateway_runtime"
CONTENT_TABLES = ("documents", "chunks")
POLICY_TABLES = ("access_policies", "access_policy_versions")

TENANT = "nullif(current_setting('gateway.tenant', true), '')"
PRINCIPALS = (
    "ARRAY(SELECT jsonb_array_elements_text("
    "nullif(current_setting('gateway.principals', true), '')::jsonb))"
)
CLEARANCE = "nullif(current_setting('gateway.clearance', true), '')::smallint"
ATTRIBUTES = "coalesce(nullif(current_setting('gateway.attributes', true), '')::jsonb, '{}'::jsonb)"
NOW = "nullif(current_setting('gateway.now', true), '')::timestamptz"
WRITER = "coalesce(nullif(current_setting('gateway.writer', true), '') = 'on', false)"


def rule_admits(t: str) -> str:
    """The same rule as policies.evaluate / policies.sql, over the columns of table alias `t`."""
    return f"""(
        {t}.allow && {PRINCIPALS}
        AND NOT ({t}.deny && {PRINCIPALS})
        AND {t}.classification <= {CLEARANCE}
        AND ({t}.valid_from IS NULL OR {t}.valid_from <= {NOW})
        AND ({t}.valid_until IS NULL OR {t}.valid_until > {NOW})
        AND NOT EXISTS (
            SELECT 1 FROM jsonb_each({t}.conditions) AS c(attribute, allowed)
            WHERE NOT (c.allowed ?| ARRAY(SELECT jsonb_array_elements_text(
                coalesce({ATTRIBUTES} -> c.attribute, '[]'::jsonb))))
        )
    )"""


def content_readable(t: str) -> str:
    """Tenant, the row's own rule, and its named policy (missing policy: nobody)."""
    return f"""
        {t}.tenant = {TENANT}
        AND {NOW} IS NOT NULL
        AND {rule_admits(t)}
        AND ({t}.policy_name IS NULL OR {t}.policy_name IN (
            SELECT p.name FROM access_policies AS p
            WHERE p.tenant = {TENANT} AND {rule_admits('p')}))
    """


def tenant_writer(t: str) -> str:
    """Ingest and admin work: the bound tenant's rows, and only with the writer flag."""
    return f"{t}.tenant = {TENANT} AND {WRITER}"


def _rule_columns() -> list[sa.Column]:
    return [
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("allow", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("deny", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("classification", sa.SmallInteger(), nullable=False),
        sa.Column("conditions", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
    ]


def _create_tables() -> None:
    op.create_table(
        "access_policies",
        *_rule_columns(),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_access_policies"),
        sa.UniqueConstraint("tenant", "name", name="uq_access_policies_tenant_name"),
    )
    op.create_table(
        "access_policy_versions",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("changed_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "name", "version", name="pk_access_policy_versions"),
    )
    op.create_index(
        "ix_documents_tenant_policy_name", "documents", ["tenant", "policy_name"],
        postgresql_where=sa.text("policy_name IS NOT NULL"),
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON access_policies TO {RUNTIME}")
    op.execute(f"GRANT SELECT, INSERT ON access_policy_versions TO {RUNTIME}")


def _enable_row_security() -> None:
    for table in (*CONTENT_TABLES, *POLICY_TABLES):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    for table in CONTENT_TABLES:
        op.execute(f"CREATE POLICY {table}_read ON {table} FOR SELECT USING ({content_readable(table)})")
        op.execute(
            f"CREATE POLICY {table}_write ON {table} FOR ALL "
            f"USING ({tenant_writer(table)}) WITH CHECK ({tenant_writer(table)})"
        )
    # Readers evaluate their tenant's named policies (inside the content policies above).
    op.execute(f"CREATE POLICY access_policies_read ON access_policies FOR SELECT "
               f"USING (access_policies.tenant = {TENANT})")
    op.execute(
        f"CREATE POLICY access_policies_write ON access_policies FOR ALL "
        f"USING ({tenant_writer('access_policies')}) WITH CHECK ({tenant_writer('access_policies')})"
    )
    op.execute(f"CREATE POLICY access_policy_versions_read ON access_policy_versions FOR SELECT "
               f"USING (access_policy_versions.tenant = {TENANT})")
    op.execute(f"CREATE POLICY access_policy_versions_append ON access_policy_versions FOR INSERT "
               f"WITH CHECK ({tenant_writer('access_policy_versions')})")


def upgrade() -> None:
    _create_tables()
    _enable_row_security()


def downgrade() -> None:
    for table in CONTENT_TABLES:
        op.execute(f"DROP POLICY IF EXISTS {table}_read ON {table}")
        op.execute(f"DROP POLICY IF EXISTS {table}_write ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.drop_index("ix_documents_tenant_policy_name", table_name="documents")
    op.drop_table("access_policy_versions")
    op.drop_table("access_policies")

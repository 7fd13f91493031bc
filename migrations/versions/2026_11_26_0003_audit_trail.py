"""Audit events and their sources; the runtime role may only INSERT and SELECT.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

RUNTIME = "gateway_runtime"


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), server_default=sa.func.clock_timestamp(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("groups", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("roles", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("clearance", sa.Text(), nullable=True),
        sa.Column("attributes", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("query_sha256", sa.Text(), nullable=True),
        sa.Column("detail", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_tenant_ts", "audit_events", ["tenant", "ts"])
    op.create_index("ix_audit_events_subject_ts", "audit_events", ["subject", "ts"])
    op.create_table(
        "audit_sources",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.UUID(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("document_version", sa.Integer(), nullable=False),
        sa.Column("chunk_id", sa.BigInteger(), nullable=False),
        sa.Column("content_sha256", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("granted_by", sa.Text(), nullable=True),
        sa.Column("policy_name", sa.Text(), nullable=True),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["audit_events.id"], name="fk_audit_sources_event_id_audit_events"),
        sa.PrimaryKeyConstraint("event_id", "rank", name="pk_audit_sources"),
    )
    op.create_index("ix_audit_sources_document_id", "audit_sources", ["document_id"])
    op.execute(f"GRANT SELECT, INSERT ON audit_events, audit_sources TO {RUNTIME}")


def downgrade() -> None:
    op.drop_table("audit_sources")
    op.drop_table("audit_events")

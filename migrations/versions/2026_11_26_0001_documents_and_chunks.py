"""Documents and chunks with access columns, HNSW cosine index, runtime grants.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RUNTIME = "gateway_runtime"


def _access_columns() -> list[sa.Column]:
    return [
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("allow", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("deny", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("classification", sa.SmallInteger(), nullable=False),
        sa.Column("conditions", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{RUNTIME}') "
        f"THEN CREATE ROLE {RUNTIME} NOLOGIN; END IF; END $$"
    )
    op.create_table(
        "documents",
        *_access_columns(),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=True),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("metadata", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("access", postgresql.JSONB(), nullable=False),
        sa.Column("policy_name", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_documents"),
        sa.UniqueConstraint("tenant", "external_id", name="uq_documents_tenant_external_id"),
    )
    op.create_table(
        "chunks",
        *_access_columns(),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("document_id", sa.UUID(), nullable=False),
        sa.Column("document_version", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.Text(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("heading_path", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("policy_name", sa.Text(), nullable=True),
        sa.Column("embedding", Vector(384), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name="fk_chunks_document_id_documents", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_chunks"),
    )
    op.create_index(
        "ix_chunks_embedding_hnsw",
        "chunks",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.create_index("ix_chunks_allow", "chunks", ["allow"], postgresql_using="gin")
    op.create_index("ix_chunks_tenant_classification", "chunks", ["tenant", "classification"])
    op.create_index("ix_chunks_document_id", "chunks", ["document_id"])
    op.execute(f"GRANT USAGE ON SCHEMA public TO {RUNTIME}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON documents, chunks TO {RUNTIME}")
    op.execute(f"GRANT USAGE, SELECT ON SEQUENCE chunks_id_seq TO {RUNTIME}")
    op.execute(f"GRANT SELECT ON alembic_version TO {RUNTIME}")


def downgrade() -> None:
    op.drop_table("chunks")
    op.drop_table("documents")

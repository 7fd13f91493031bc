"""Audit trail: hash-chained events per tenant, their sources, signed checkpoints.

Append-only is enforced by PostgreSQL: the runtime role may only INSERT and SELECT;
row triggers refuse UPDATE and DELETE and a statement trigger refuses TRUNCATE for
every role (owner and superuser included, unless they disable triggers). The one
exception is retention: `audit_prune()` (owner only) deletes a prefix of a chain older
than a cutoff, after recording a signed prune checkpoint, through a transaction-local
flag the triggers honour for exactly those rows. Row-level security binds the runtime
role to one tenant per transaction (`gateway.audit_tenant`).

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
AUDIT_TABLES = ("audit_events", "audit_sources", "audit_checkpoints", "audit_chains")
TENANT_TABLES = ("audit_events", "audit_sources", "audit_checkpoints")
HEX64 = "~ '^[0-9a-f]{64}$'"

# Lock class of pg_advisory_xact_lock(int, int): (class, hashtext(tenant)) = one chain.
CHAIN_LOCK_CLASS = 724003

PRUNE_ALLOWS = """
CREATE FUNCTION audit_prune_allows(p_tenant text, p_seq bigint, p_ts timestamptz)
RETURNS boolean LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
  SELECT coalesce(
    current_setting('gateway.audit_prune_tenant', true) = p_tenant
    AND p_seq <= nullif(current_setting('gateway.audit_prune_seq', true), '')::bigint
    AND p_ts < nullif(current_setting('gateway.audit_prune_before', true), '')::timestamptz
    AND EXISTS (
      SELECT 1 FROM audit_checkpoints c
      WHERE c.tenant = p_tenant AND c.kind = 'prune'
        AND c.seq = nullif(current_setting('gateway.audit_prune_seq', true), '')::bigint),
    false)
$$
"""

REFUSE_CHANGE = """
CREATE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF TG_TABLE_NAME = 'audit_events' THEN
      IF audit_prune_allows(OLD.tenant, OLD.seq, OLD.ts) THEN
        RETURN OLD;
      END IF;
    ELSIF TG_TABLE_NAME = 'audit_sources' THEN
      IF EXISTS (SELECT 1 FROM audit_events e
                 WHERE e.id = OLD.event_id AND audit_prune_allows(e.tenant, e.seq, e.ts)) THEN
        RETURN OLD;
      END IF;
    END IF;
  END IF;
  RAISE EXCEPTION 'the audit trail is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$
"""

REFUSE_TRUNCATE = """
CREATE FUNCTION audit_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only: TRUNCATE on % is refused', TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$
"""

# The whole append is this one statement, run in autocommit: the caller computed the
# body's hash before; here the tenant is bound, the chain's transaction-level advisory
# lock taken, the head read (VOLATILE plpgsql takes a fresh snapshot per statement, so
# it sees the previous holder's committed row), the link hash computed and the rows
# inserted; the implicit commit releases the lock. No client round trip happens while
# the lock is held. `held_s` is the time from lock to insert done (the commit follows).
APPEND = f"""
CREATE FUNCTION audit_append(p_event jsonb, p_sources jsonb, p_body_sha256 text)
RETURNS TABLE (seq bigint, hash text, ts timestamptz, held_s double precision)
LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp AS $$
DECLARE
  v_tenant text := p_event->>'tenant';
  v_locked timestamptz;
  v_head record;
  v_seq bigint := 1;
  v_prev text := repeat('0', 64);
  v_ts timestamptz;
  v_hash text;
BEGIN
  PERFORM set_config('gateway.audit_tenant', v_tenant, true);
  PERFORM pg_advisory_xact_lock({CHAIN_LOCK_CLASS}, hashtext(v_tenant));
  v_locked := clock_timestamp();
  v_ts := v_locked;
  SELECT h.seq, h.hash, h.ts INTO v_head FROM (
      (SELECT e.seq, e.hash, e.ts FROM audit_events e
        WHERE e.tenant = v_tenant ORDER BY e.seq DESC LIMIT 1)
      UNION ALL
      (SELECT c.seq, c.hash, c.ts FROM audit_checkpoints c
        WHERE c.tenant = v_tenant AND c.kind = 'prune' ORDER BY c.seq DESC LIMIT 1)
    ) h ORDER BY h.seq DESC LIMIT 1;
  IF FOUND THEN
    v_seq := v_head.seq + 1;
    v_prev := v_head.hash;
    v_ts := greatest(v_ts, v_head.ts);
  ELSE
    INSERT INTO audit_chains (tenant) VALUES (v_tenant) ON CONFLICT DO NOTHING;
  END IF;
  v_hash := encode(sha256(convert_to(
    '{{"body_sha256":"' || p_body_sha256 || '","prev_hash":"' || v_prev || '","seq":' || v_seq
    || ',"ts":"' || to_char(v_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"}}',
    'UTF8')), 'hex');
  INSERT INTO audit_events (id, tenant, seq, ts, request_id, action, status, subject, issuer, groups,
                            roles, clearance, attributes, query, query_sha256, detail, prev_hash, hash)
    SELECT e.id, v_tenant, v_seq, v_ts, e.request_id, e.action, e.status, e.subject, e.issuer,
           e.groups, e.roles, e.clearance, e.attributes, e.query, e.query_sha256, e.detail, v_prev,
           v_hash
    FROM jsonb_populate_record(NULL::audit_events, p_event) e;
  INSERT INTO audit_sources (event_id, rank, tenant, document_id, external_id, document_version,
                             chunk_id, content_sha256, score, granted_by, policy_name, policy_version)
    SELECT (p_event->>'id')::uuid, s.rank, v_tenant, s.document_id, s.external_id, s.document_version,
           s.chunk_id, s.content_sha256, s.score, s.granted_by, s.policy_name, s.policy_version
    FROM jsonb_populate_recordset(NULL::audit_sources, p_sources) s;
  RETURN QUERY SELECT v_seq, v_hash, v_ts, extract(epoch FROM clock_timestamp() - v_locked)::float8;
END
$$
"""

PRUNE = f"""
CREATE FUNCTION audit_prune(p_tenant text, p_through_seq bigint, p_before timestamptz,
                            p_hash text, p_ts timestamptz, p_key_id text, p_signature text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_hash text;
  v_ts timestamptz;
  v_deleted bigint;
BEGIN
  PERFORM pg_advisory_xact_lock({CHAIN_LOCK_CLASS}, hashtext(p_tenant));
  SELECT hash, ts INTO v_hash, v_ts FROM audit_events WHERE tenant = p_tenant AND seq = p_through_seq;
  IF NOT FOUND OR v_hash <> p_hash OR v_ts >= p_before THEN
    RAISE EXCEPTION 'prune point % of tenant % does not match the chain', p_through_seq, p_tenant
      USING ERRCODE = 'check_violation';
  END IF;
  IF EXISTS (SELECT 1 FROM audit_events WHERE tenant = p_tenant AND seq <= p_through_seq
             AND ts >= p_before) THEN
    RAISE EXCEPTION 'events up to % of tenant % are not all older than %', p_through_seq,
      p_tenant, p_before USING ERRCODE = 'check_violation';
  END IF;
  INSERT INTO audit_checkpoints (tenant, seq, kind, hash, ts, key_id, signature)
    VALUES (p_tenant, p_through_seq, 'prune', p_hash, p_ts, p_key_id, p_signature);
  PERFORM set_config('gateway.audit_prune_tenant', p_tenant, true);
  PERFORM set_config('gateway.audit_prune_seq', p_through_seq::text, true);
  PERFORM set_config('gateway.audit_prune_before', p_before::text, true);
  DELETE FROM audit_sources s USING audit_events e
    WHERE s.event_id = e.id AND e.tenant = p_tenant AND e.seq <= p_through_seq;
  DELETE FROM audit_events WHERE tenant = p_tenant AND seq <= p_through_seq;
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  PERFORM set_config('gateway.audit_prune_tenant', '', true);
  PERFORM set_config('gateway.audit_prune_seq', '', true);
  PERFORM set_config('gateway.audit_prune_before', '', true);
  RETURN v_deleted;
END
$$
"""


def _create_tables() -> None:
    op.create_table(
        "audit_chains",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", name="pk_audit_chains"),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("groups", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("roles", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("clearance", sa.Text(), nullable=True),
        sa.Column("attributes", postgresql.JSONB(), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("query_sha256", sa.Text(), nullable=True),
        sa.Column("detail", postgresql.JSONB(), nullable=False),
        sa.Column("prev_hash", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.CheckConstraint("seq > 0", name=op.f("ck_audit_events_seq_positive")),
        sa.CheckConstraint(f"hash {HEX64} AND prev_hash {HEX64}", name=op.f("ck_audit_events_hashes_hex")),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.UniqueConstraint("tenant", "seq", name="uq_audit_events_tenant_seq"),
    )
    op.create_index("ix_audit_events_tenant_ts", "audit_events", ["tenant", "ts"])
    op.create_index("ix_audit_events_tenant_subject_seq", "audit_events", ["tenant", "subject", "seq"])
    op.create_index("ix_audit_events_hash", "audit_events", ["hash"])
    op.create_table(
        "audit_sources",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
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
    op.create_index("ix_audit_sources_tenant_document_id", "audit_sources", ["tenant", "document_id"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.CheckConstraint("kind IN ('periodic', 'manual', 'prune')", name=op.f("ck_audit_checkpoints_kind")),
        sa.PrimaryKeyConstraint("tenant", "seq", "kind", name="pk_audit_checkpoints"),
    )


def _protect(table: str) -> None:
    op.execute(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate()"
    )


def _bind_tenant(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY {table}_tenant ON {table} TO {RUNTIME} "
        "USING (tenant = current_setting('gateway.audit_tenant', true)) "
        "WITH CHECK (tenant = current_setting('gateway.audit_tenant', true))"
    )


def upgrade() -> None:
    _create_tables()
    for statement in (PRUNE_ALLOWS, REFUSE_CHANGE, REFUSE_TRUNCATE, APPEND, PRUNE):
        op.execute(statement)
    for table in AUDIT_TABLES:
        _protect(table)
    for table in TENANT_TABLES:
        _bind_tenant(table)
    op.execute(f"GRANT SELECT, INSERT ON {', '.join(AUDIT_TABLES)} TO {RUNTIME}")
    op.execute("REVOKE ALL ON FUNCTION audit_prune(text, bigint, timestamptz, text, timestamptz, text, text) FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION audit_append(jsonb, jsonb, text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION audit_append(jsonb, jsonb, text) TO {RUNTIME}")


def downgrade() -> None:
    for table in ("audit_sources", "audit_checkpoints", "audit_events", "audit_chains"):
        op.drop_table(table)
    op.execute("DROP FUNCTION audit_prune(text, bigint, timestamptz, text, timestamptz, text, text)")
    op.execute("DROP FUNCTION audit_append(jsonb, jsonb, text)")
    op.execute("DROP FUNCTION audit_refuse_truncate()")
    op.execute("DROP FUNCTION audit_refuse_change()")
    op.execute("DROP FUNCTION audit_prune_allows(text, bigint, timestamptz)")

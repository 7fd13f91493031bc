"""Audit events are committed with their sources; the query can be kept as a hash only."""

import uuid

import psycopg
import pytest

from gateway.audit.service import AuditLog, query_digest
from gateway.db.engine import create_engine, session_factory
from gateway.domain import AuditEvent, AuditSource, Principal
from gateway.metrics import Metrics
from gateway.settings import AuditSettings

pytestmark = pytest.mark.integration

ALICE = Principal(subject="alice", tenant="acme", groups=("finance",), roles=("ingest",))


def _event(query="what is our travel policy?"):
    source = AuditSource(rank=1, document_id=uuid.uuid4(), external_id="hr-1", document_version=2,
                         chunk_id=7, content_sha256="ab" * 32, score=0.83, granted_by="group:finance")
    return AuditEvent(request_id="req-1", action="search", principal=ALICE, status="ok",
                      query=query, sources=(source,))


async def _record(settings, event, store_query=True):
    engine = create_engine(settings.database.url, settings.database)
    try:
        log = AuditLog(session_factory(engine), AuditSettings(store_query=store_query), Metrics())
        return await log.record(event)
    finally:
        await engine.dispose()


async def test_event_and_sources_are_committed(settings, db_urls):
    event_id = await _record(settings, _event())
    with psycopg.connect(db_urls.runtime) as conn:
        row = conn.execute("SELECT subject, tenant, query, query_sha256 FROM audit_events WHERE id = %s",
                           (event_id,)).fetchone()
        sources = conn.execute("SELECT rank, external_id, granted_by FROM audit_sources WHERE event_id = %s",
                               (event_id,)).fetchall()
    assert row == ("alice", "acme", "what is our travel policy?", query_digest("what is our travel policy?"))
    assert sources == [(1, "hr-1", "group:finance")]


async def test_query_kept_only_as_hash_when_configured(settings, db_urls):
    event_id = await _record(settings, _event("secret merger plans"), store_query=False)
    with psycopg.connect(db_urls.runtime) as conn:
        query, digest = conn.execute("SELECT query, query_sha256 FROM audit_events WHERE id = %s",
                                     (event_id,)).fetchone()
    assert query is None
    assert digest == query_digest("secret merger plans")


def test_runtime_role_cannot_update_or_delete_audit(db_urls):
    with psycopg.connect(db_urls.runtime) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE audit_events SET status = 'x'")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_sources")

"""Load test documents through the real ingestion service, as a bound tenant writer.

Row-level security admits writes only in a transaction bound with
`gateway.db.access.bind_writer`; these sessions bind every transaction they begin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Session

from gateway.db.access import binding_statement, writer_settings
from gateway.db.engine import create_engine
from gateway.ingestion.documents import DocumentInput
from gateway.ingestion.embedders import Embedder
from gateway.ingestion.service import IngestFailure, IngestionService
from gateway.ingestion.store import Written
from gateway.settings import Settings
from policies.principal import Principal


class _TenantWriterSession(Session):
    """A session whose every transaction is bound as `info["tenant"]`'s writer."""


@event.listens_for(_TenantWriterSession, "after_begin")
def _bind_writer(session: Session, transaction: Any, connection: Any) -> None:
    connection.execute(*binding_statement(writer_settings(session.info["tenant"])))


def document(external_id: str, title: str, text: str, access: dict[str, Any], **extra: Any) -> DocumentInput:
    return DocumentInput(external_id=external_id, title=title, content=text, access=access, **extra)


async def load_documents(url: str, settings: Settings, embedder: Embedder,
                         documents: Sequence[DocumentInput], *, tenant: str = "acme",
                         tokenizer: Any = None) -> list[Written]:
    """Ingest `documents` into `tenant` over `url`; every one must succeed."""
    engine = create_engine(url, settings.database)
    try:
        sessions = async_sessionmaker(engine, expire_on_commit=False,
                                      sync_session_class=_TenantWriterSession, info={"tenant": tenant})
        service = IngestionService(sessions, embedder, settings, tokenizer=tokenizer)
        loader = Principal(subject="loader", tenant=tenant, roles=("ingest",))
        outcomes = await service.ingest_many(loader, list(documents))
    finally:
        await engine.dispose()
    failures = [o for o in outcomes if isinstance(o, IngestFailure)]
    if failures:
        raise AssertionError(f"ingestion failed: {[(f.external_id, f.error.detail) for f in failures]}")
    return [o for o in outcomes if isinstance(o, Written)]

"""`gateway demo`: load the bundled demo corpus into the database (idempotent).

Acme Robotics (tenant `acme`) and Globex Shipping (tenant `globex`) are loaded from
`gateway/demo/corpus/<tenant>/` with the access their sidecar files give them, as a
system principal holding the ingest role in each tenant. Running it again re-embeds
nothing that did not change.
"""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console

from gateway.audit.service import AuditLog
from gateway.cli import runtime
from gateway.cli.ingest import system_principal
from gateway.db.engine import create_engine, session_factory
from gateway.demo import CORPUS, TENANTS
from gateway.errors import GatewayError
from gateway.ingestion.bulk import BulkReport, ingest_items
from gateway.ingestion.embedders import build_embedder
from gateway.ingestion.service import IngestionService
from gateway.ingestion.sources import iter_documents
from gateway.logs import configure_logging
from gateway.metrics import Metrics
from gateway.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    parser = commands.add_parser("demo", help="load the bundled demo corpus (two fictional companies)")
    parser.set_defaults(handler=demo)


async def load_corpus(config: Settings, database_url: str, console: Console) -> dict[str, BulkReport]:
    """Ingest every tenant's demo documents; one report per tenant."""
    engine = create_engine(database_url, config.database)
    sessions = session_factory(engine)
    service = IngestionService(sessions, build_embedder(config.embedding), config,
                               audit=AuditLog(sessions, config.audit, Metrics()))
    reports: dict[str, BulkReport] = {}
    try:
        for tenant in TENANTS:
            with console.status(f"loading {tenant} documents"):
                items = iter_documents([CORPUS / tenant], default_access=None,
                                       max_bytes=config.ingestion.max_document_bytes)
                reports[tenant] = await ingest_items(service, system_principal(config, tenant), items,
                                                     batch_size=64)
    finally:
        await engine.dispose()
    return reports


def demo(args: argparse.Namespace) -> int:
    """Load the corpus and say what was loaded; a document that fails is an error."""
    config = runtime.settings()
    configure_logging(config.server)
    console = Console(stderr=True)
    prepared = runtime.prepare_database(config)
    try:
        reports = asyncio.run(load_corpus(config, prepared.urls.runtime, console))
    finally:
        if prepared.embedded is not None:
            prepared.embedded.stop()
    for tenant, report in reports.items():
        print(f"{tenant}: {report.documents} documents loaded ({report.chunks} chunks), "
              f"{report.skipped} unchanged")
    failures = [f"{tenant}/{label}: {reason}" for tenant, report in reports.items()
                for label, reason in report.failures]
    if failures:
        raise GatewayError("the demo corpus did not load: " + "; ".join(failures))
    return 0

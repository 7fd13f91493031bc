"""`gateway ingest PATH...`: bulk-load folders and JSON Lines files, with a progress bar.

The command acts as a system principal holding the ingest role in one tenant
(`--tenant`, default GATEWAY_DEFAULT_TENANT). It runs against the embedded database
(started like `gateway serve` does) or DATABASE_URL, prints a summary, and exits 1 if
any document failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gateway.audit.service import AuditLog
from gateway.audit.signing import AuditSigner
from gateway.cli import runtime
from gateway.db.engine import create_engine, session_factory
from gateway.ingestion.bulk import BulkReport, ingest_items
from gateway.ingestion.embedders import build_embedder
from gateway.ingestion.service import IngestionService
from gateway.ingestion.sources import count_documents, iter_documents
from gateway.logs import configure_logging
from gateway.metrics import Metrics
from gateway.settings import Settings
from policies.principal import Principal

CLI_SUBJECT = "gateway-cli"


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `ingest` subcommand."""
    parser = commands.add_parser(
        "ingest", help="bulk-load documents from folders and JSON Lines files",
        description="Load .txt .md .html .pdf files (folders are walked recursively) and .jsonl "
                    "files (one document per line, as POST /v1/documents). Access comes from each "
                    "document's own block, a <file>.access.json sidecar, the nearest access.json "
                    "folder file, or these options, most specific first.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--allow", action="append", default=[], metavar="PRINCIPAL",
                        help="default allow entry, e.g. group:finance or everyone (repeatable)")
    parser.add_argument("--deny", action="append", default=[], metavar="PRINCIPAL",
                        help="default deny entry (repeatable)")
    parser.add_argument("--classification", help="default classification level")
    parser.add_argument("--policy", help="default named policy")
    parser.add_argument("--condition", action="append", default=[], type=_condition, metavar="ATTR=VALUE",
                        help="default attribute condition (repeatable)")
    parser.add_argument("--tenant", help="tenant to ingest into (default GATEWAY_DEFAULT_TENANT)")
    parser.add_argument("--batch-size", type=_positive, default=64, help="documents per batch (default 64)")
    parser.set_defaults(handler=ingest)


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) <= 0:
        raise argparse.ArgumentTypeError("expected a positive integer")
    return int(raw)


def _condition(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError("expected ATTR=VALUE")
    return name, value


def default_access(args: argparse.Namespace) -> dict[str, Any] | None:
    """The access block the options describe, or None if they name no principal or policy."""
    if not args.allow and not args.policy:
        return None
    block: dict[str, Any] = {"allow": list(args.allow)} if args.allow else {}
    for key, value in (("deny", args.deny), ("classification", args.classification),
                       ("policy", args.policy), ("tenant", args.tenant)):
        if value:
            block[key] = value
    conditions: dict[str, list[str]] = {}
    for name, value in args.condition:
        conditions.setdefault(name, []).append(value)
    if conditions:
        block["conditions"] = conditions
    return block


def system_principal(config: Settings, tenant: str | None) -> Principal:
    """The principal the command acts as: the ingest role in one tenant."""
    return Principal(subject=CLI_SUBJECT, tenant=tenant or config.auth.default_tenant,
                     issuer="urn:gateway:cli", roles=(config.auth.role_ingest,))


async def load(config: Settings, database_url: str, principal: Principal, paths: list[Path],
               access: Any, batch_size: int, console: Console) -> BulkReport:
    """Ingest every document under `paths` with a progress bar on `console`."""
    engine = create_engine(database_url, config.database)
    sessions = session_factory(engine)
    service = IngestionService(sessions, build_embedder(config.embedding), config,
                               audit=AuditLog(sessions, config.audit, Metrics(),
                                                        AuditSigner.from_settings(config)))
    total = count_documents(paths)
    columns = (TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("ingest", total=total)
            items = iter_documents(paths, default_access=access,
                                   max_bytes=config.ingestion.max_document_bytes)
            return await ingest_items(service, principal, items, batch_size=batch_size,
                                      progress=lambda done: progress.advance(task, done))
    finally:
        await engine.dispose()


def print_summary(report: BulkReport, out: Any = None) -> None:
    """The end-of-run summary: documents, chunks, skipped unchanged, failures with reasons."""
    out = out or sys.stdout
    print(f"documents: {report.documents} ingested ({report.created} new, "
          f"{report.new_versions} new versions), {report.chunks} chunks", file=out)
    print(f"skipped unchanged: {report.skipped} ({report.metadata_updated} with new metadata "
          "or access)", file=out)
    print(f"failed: {len(report.failures)}", file=out)
    for label, reason in report.failures:
        print(f"  {label}: {reason}", file=out)


def ingest(args: argparse.Namespace) -> int:
    """Prepare the database, load everything, print the summary; 1 if anything failed."""
    config = runtime.settings()
    configure_logging(config.server)
    access = default_access(args)
    prepared = runtime.prepare_database(config)
    try:
        report = asyncio.run(load(
            config, prepared.urls.runtime, system_principal(config, args.tenant), args.paths,
            access, args.batch_size, Console(stderr=True),
        ))
    finally:
        if prepared.embedded is not None:
            prepared.embedded.stop()
    print_summary(report)
    return 0 if report.ok else 1

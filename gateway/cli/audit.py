"""`gateway audit verify|export|report|checkpoint|prune`: the operator's side of the audit trail.

Reads go through the runtime role (row-level security bound per tenant); `prune` needs
the owner role (GATEWAY_MIGRATION_DATABASE_URL for an external database), because only
the owner may run the controlled prune function. `verify --file` needs no database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from gateway.audit.export import FORMATS, manifest_path, write_export
from gateway.audit.offline import load_public_key, verify_file
from gateway.audit.reports import document_report, subject_report
from gateway.audit.retention import prune
from gateway.audit.service import AuditLog
from gateway.audit.signing import AuditSigner
from gateway.audit.store import AuditStore, EventQuery
from gateway.audit.trail import checkpoint_now, operator_principal
from gateway.audit.verify import verify_store
from gateway.cli import runtime
from gateway.db.engine import create_engine, session_factory
from gateway.domain import AuditEvent
from gateway.errors import ConfigurationError
from gateway.logs import configure_logging
from gateway.metrics import Metrics
from gateway.settings import Settings

T = TypeVar("T")


def _iso(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an ISO 8601 time, e.g. 2026-01-31T00:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _days(raw: str) -> int:
    if not raw.isdigit() or int(raw) <= 0:
        raise argparse.ArgumentTypeError("expected a positive number of days")
    return int(raw)


def register(commands: argparse._SubParsersAction) -> None:
    """Add `audit` and its subcommands."""
    audit = commands.add_parser("audit", help="verify, export, report on and prune the audit trail")
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = sub.add_parser("verify", help="recompute the hash chains (or check an export offline)")
    verify.add_argument("--since", type=_iso, help="verify from this time on (ISO 8601)")
    verify.add_argument("--tenant", help="one tenant's chain (default: every chain)")
    verify.add_argument("--file", type=Path, help="an export to verify offline (with its manifest)")
    verify.add_argument("--public-key", type=Path, help="pin the audit public key (JWK or PEM)")
    verify.set_defaults(handler=run_verify)
    export = sub.add_parser("export", help="write events and a signed manifest")
    export.add_argument("--since", type=_iso)
    export.add_argument("--until", type=_iso)
    export.add_argument("--tenant", help="one tenant (default: every chain)")
    export.add_argument("--format", choices=FORMATS, default="jsonl")
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(handler=run_export)
    report = sub.add_parser("report", help="what a user was shown, or who saw a document")
    target = report.add_mutually_exclusive_group(required=True)
    target.add_argument("--subject")
    target.add_argument("--document", type=uuid.UUID)
    report.add_argument("--tenant", help="tenant (default GATEWAY_DEFAULT_TENANT)")
    report.add_argument("--out", type=Path, help="write to a file instead of stdout")
    report.set_defaults(handler=run_report)
    checkpoint = sub.add_parser("checkpoint", help="sign the current head of the chains now")
    checkpoint.add_argument("--tenant", help="one tenant (default: every chain)")
    checkpoint.set_defaults(handler=run_checkpoint)
    pruning = sub.add_parser("prune", help="archive and delete events older than N days")
    pruning.add_argument("--older-than", type=_days, required=True, metavar="DAYS")
    pruning.add_argument("--archive", type=Path, help="export the pruned events here first")
    pruning.set_defaults(handler=run_prune)


def _settings() -> Settings:
    """Settings, with logs (checkpoints included) on stderr so stdout stays JSON."""
    config = runtime.settings()
    configure_logging(config.server)
    return config


def _with_database(config: Settings,
                   body: Callable[[runtime.PreparedDatabase], Coroutine[Any, Any, T]]) -> T:
    prepared = runtime.prepare_database(config)
    try:
        return asyncio.run(body(prepared))
    finally:
        if prepared.embedded is not None:
            prepared.embedded.stop()


async def _with_store(config: Settings, url: str,
                      body: Callable[[AuditStore, AuditLog], Awaitable[T]]) -> T:
    engine = create_engine(url, config.database)
    try:
        sessions = session_factory(engine)
        log = AuditLog(sessions, config.audit, Metrics(), AuditSigner.from_settings(config))
        return await body(AuditStore(sessions), log)
    finally:
        await engine.dispose()


async def _tenants(store: AuditStore, tenant: str | None) -> list[str]:
    return [tenant] if tenant else await store.tenants()


async def _record(log: AuditLog, tenant: str, action: str, detail: dict[str, Any]) -> None:
    await log.record(AuditEvent(request_id=uuid.uuid4().hex, action=action,
                                principal=operator_principal(tenant), status="ok", detail=detail))


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def run_verify(args: argparse.Namespace) -> int:
    """Print the verification report; exit 1 when something is wrong."""
    if args.file is not None:
        pinned = load_public_key(args.public_key) if args.public_key else None
        result = verify_file(args.file, public_key=pinned).as_dict()
    else:
        config = _settings()
        jwk = load_public_key(args.public_key) if args.public_key else AuditSigner.from_settings(config).jwk

        async def body(prepared: runtime.PreparedDatabase) -> dict[str, Any]:
            async def check(store: AuditStore, _: AuditLog) -> dict[str, Any]:
                tenants = await _tenants(store, args.tenant)
                return (await verify_store(store, jwk, tenants=tenants, since=args.since)).as_dict()
            return await _with_store(config, prepared.urls.runtime, check)

        result = _with_database(config, body)
    _print(result)
    return 0 if result["ok"] else 1


def run_export(args: argparse.Namespace) -> int:
    """Write the export and its manifest; print the manifest's summary."""
    config = _settings()
    filters = {"since": args.since and args.since.isoformat(), "until": args.until and args.until.isoformat(),
               "tenant": args.tenant}

    async def export(store: AuditStore, log: AuditLog) -> dict[str, Any]:
        spans = []
        for tenant in await _tenants(store, args.tenant):
            span = await store.seq_range(EventQuery(tenant, since=args.since, until=args.until))
            await _record(log, tenant, "audit.export", {**filters, "format": args.format,
                                                        "through_seq": span.through})
            spans.append((tenant, span))
        signer = AuditSigner.from_settings(config)
        return await write_export(store, signer, spans, args.format, args.out, filters)

    manifest = _with_database(config, lambda p: _with_store(config, p.urls.runtime, export))
    _print({"file": str(args.out), "manifest": str(manifest_path(args.out)), "events": manifest["events"],
            "events_sha256": manifest["events_sha256"], "key_id": manifest["public_key"]["kid"]})
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Stream the report as JSON to stdout or a file."""
    config = _settings()
    tenant = args.tenant or config.auth.default_tenant

    async def report(store: AuditStore, log: AuditLog) -> None:
        stream: AsyncIterator[bytes]
        if args.subject is not None:
            stream = await subject_report(store, tenant, args.subject)
        else:
            stream = await document_report(store, tenant, args.document)
        await _record(log, tenant, "audit.report", {"subject": args.subject,
                                                    "document_id": args.document and str(args.document)})
        out = args.out.open("wb") if args.out else sys.stdout.buffer
        try:
            async for chunk in stream:
                out.write(chunk)
            out.write(b"\n")
        finally:
            if args.out:
                out.close()

    _with_database(config, lambda p: _with_store(config, p.urls.runtime, report))
    return 0


def run_checkpoint(args: argparse.Namespace) -> int:
    """Sign each chain's head now and print the checkpoints."""
    config = _settings()

    async def sign(store: AuditStore, _: AuditLog) -> list[dict[str, Any]]:
        signer = AuditSigner.from_settings(config)
        tenants = await _tenants(store, args.tenant)
        return [(await checkpoint_now(store, signer, t)).as_dict() for t in tenants]

    _print(_with_database(config, lambda p: _with_store(config, p.urls.runtime, sign)))
    return 0


def run_prune(args: argparse.Namespace) -> int:
    """Archive, then prune through the owner-only controlled path; print what went."""
    config = _settings()
    if config.database.url is not None and config.database.migration_url is None:
        raise ConfigurationError("gateway audit prune needs GATEWAY_MIGRATION_DATABASE_URL (the owner "
                                 "role): only the owner may run the controlled prune")

    async def run(prepared: runtime.PreparedDatabase) -> list[dict[str, Any]]:
        engine = create_engine(prepared.urls.owner, config.database)
        try:
            return await prune(session_factory(engine), AuditSigner.from_settings(config),
                               older_than_days=args.older_than, archive=args.archive,
                               checkpoint_every=config.audit.checkpoint_every)
        finally:
            await engine.dispose()

    _print(_with_database(config, run))
    return 0

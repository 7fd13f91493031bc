"""`gateway demo`: load the demo corpus and named policies, then answer for several users.

Acme Robotics (tenant `acme`) and Globex Shipping (tenant `globex`) are loaded from
`gateway/demo/corpus/<tenant>/` with the access their sidecar files give them, as a
system principal holding the ingest role in each tenant (loading again re-embeds nothing
that did not change). Then each demo question goes through the real query pipeline
(access-filtered retrieval, audit, generation) once per user, so the same question gets
different answers and citations depending on who asks.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

from rich.console import Console

from gateway.app import create_app
from gateway.cli import runtime
from gateway.cli.ingest import system_principal
from gateway.demo import CORPUS, POLICIES, QUESTIONS, TENANTS
from gateway.domain import Answer, Principal
from gateway.errors import GatewayError
from gateway.ingestion.bulk import BulkReport, ingest_items
from gateway.ingestion.sources import iter_documents
from gateway.pipeline import make_question
from gateway.settings import Settings
from policies.files import load_policy_files

TOP_K = 3


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    parser = commands.add_parser(
        "demo", help="load the bundled demo corpus and show how access changes answers")
    parser.add_argument("--load-only", action="store_true", help="load the corpus, ask nothing")
    parser.set_defaults(handler=demo)


async def load_corpus(state: Any, config: Settings, console: Console) -> dict[str, BulkReport]:
    """Apply the demo's named policies, then ingest every tenant's documents."""
    levels = config.policy.classification_levels()
    await state.policies.apply(system_principal(config, TENANTS[0]),
                               load_policy_files([POLICIES], levels))
    reports: dict[str, BulkReport] = {}
    for tenant in TENANTS:
        with console.status(f"loading {tenant} documents"):
            items = iter_documents([CORPUS / tenant], default_access=None,
                                   max_bytes=config.ingestion.max_document_bytes)
            reports[tenant] = await ingest_items(state.ingestion, system_principal(config, tenant),
                                                 items, batch_size=64)
    return reports


def describe(principal: Principal) -> str:
    """Who is asking, as the access model sees them."""
    attributes = ", ".join(f"{k}={'/'.join(v)}" for k, v in principal.attributes.items())
    parts = [f"tenant {principal.tenant}", f"groups {', '.join(principal.groups) or '-'}",
             f"clearance {principal.clearance}", attributes]
    return f"{principal.subject} ({'; '.join(p for p in parts if p)})"


def render(principal: Principal, answer: Answer, audit_id: uuid.UUID) -> list[str]:
    """An answer with its citations, the way a user would read it."""
    lines = [f"  {describe(principal)}", f"    {answer.text.strip() or '(no answer)'}"]
    for citation in answer.citations:
        chunk = citation.chunk
        where = " > ".join(chunk.heading_path) or chunk.title
        lines.append(f"    [{citation.n}] {where} ({chunk.external_id}, "
                     f"chars {chunk.char_start}-{chunk.char_end})")
    lines.append(f"    audit event {audit_id}")
    return lines


async def ask_all(state: Any, config: Settings) -> list[str]:
    """Each demo question for each of its users, through the query pipeline."""
    lines: list[str] = []
    for text, users in QUESTIONS:
        lines += ["", f"Q: {text}"]
        for principal in users:
            question = make_question(text, TOP_K, uuid.uuid4().hex, "query", config)
            retrieved, answer = await state.pipeline.answer(principal, question)
            lines += render(principal, answer, retrieved.audit_id)
    return lines


async def run_demo(
    config: Settings, load_only: bool, console: Console
) -> tuple[dict[str, BulkReport], list[str]]:
    """Load the corpus and, unless `load_only`, ask the questions; the app is built once."""
    app = create_app(config)
    try:
        reports = await load_corpus(app.state, config, console)
        failed = any(report.failures for report in reports.values())
        answers = [] if load_only or failed else await ask_all(app.state, config)
    finally:
        await app.state.engine.dispose()
    return reports, answers


def demo(args: argparse.Namespace) -> int:
    """Load, report what was loaded, then print the answers; a document that fails is an error."""
    config = runtime.settings()
    prepared = runtime.prepare_database(config)
    try:
        config = runtime.settings()  # now with the DATABASE_URL the prepared database exports
        reports, answers = asyncio.run(run_demo(config, args.load_only, Console(stderr=True)))
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
    print("\n".join(answers))
    return 0

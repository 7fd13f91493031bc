"""`gateway index tune`: the retrieval index and the planner on the current data, with advice.

Read-only. Index facts come from PostgreSQL's catalog and statistics; tenant figures
(only for the tenants named with --tenant) from a transaction bound as that tenant's
writer, so row-level security shows nothing of any other tenant.
"""

from __future__ import annotations

import argparse
import asyncio

from gateway.cli import runtime
from gateway.db.engine import create_engine, session_factory
from gateway.retrieval.planner import Estimate, RetrievalPlanner
from gateway.retrieval.tuning import (
    IndexFacts,
    TenantReport,
    describe,
    index_facts,
    recommendations,
    tenant_report,
)
from gateway.settings import Settings

SELECTIVITIES = (1.0, 0.1, 0.01, 0.001)


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `index` subcommand and its `tune` action."""
    parser = commands.add_parser("index", help="inspect the retrieval index")
    actions = parser.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    tune = actions.add_parser("tune", help="print the planner's view of the data and recommendations")
    tune.add_argument("--tenant", action="append", default=[], metavar="TENANT",
                      help="also report this tenant's size and largest principals (repeatable)")
    tune.add_argument("--k", type=int, help="results per query to plan for (default GATEWAY_DEFAULT_TOP_K)")
    tune.set_defaults(handler=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    """Gather the facts, print them and the recommendations."""
    config = runtime.settings()
    k = args.k or config.retrieval.default_top_k
    if k < 1:
        raise SystemExit("gateway: error: --k must be a positive integer")
    prepared = runtime.prepare_database(config)
    try:
        facts, tenants = asyncio.run(_gather(config, prepared.urls.runtime, args.tenant, k))
    finally:
        if prepared.embedded:
            prepared.embedded.stop()
    planner = RetrievalPlanner(config.retrieval, config.policy.classification_levels())
    print("\n".join(report(facts, tenants, planner, k)))
    return 0


async def _gather(config: Settings, url: str, tenants: list[str],
                  k: int) -> tuple[IndexFacts, list[TenantReport]]:
    engine = create_engine(url, config.database)
    sessions = session_factory(engine)
    planner = RetrievalPlanner(config.retrieval, config.policy.classification_levels())
    try:
        async with sessions() as session, session.begin():
            facts = await index_facts(session)
        reports = []
        for tenant in tenants:
            async with sessions() as session, session.begin():
                reports.append(await tenant_report(session, tenant, facts, planner, k))
        return facts, reports
    finally:
        await engine.dispose()


def report(facts: IndexFacts, tenants: list[TenantReport], planner: RetrievalPlanner, k: int) -> list[str]:
    """The printed report, line by line."""
    rows = max(facts.rows, facts.live_rows, 1)
    options = ", ".join(f"{key} {value}" for key, value in sorted(facts.hnsw_options.items())) or "defaults"
    lines = [
        f"chunks: {rows:,} rows, table {_mb(facts.table_bytes)}, "
        f"HNSW index {_mb(facts.hnsw_bytes)} ({options}), access postings {_mb(facts.postings_bytes)}",
        f"planner at k={k}: exact up to {planner.exact_limit(rows, k):,} permitted rows by cost; "
        f"below {planner.recall_floor(rows, k):,} permitted rows HNSW cannot be accurate, so exact "
        "while affordable",
        "a principal seeing this share of the index is searched by:",
    ]
    for share in SELECTIVITIES:
        permitted = max(int(rows * share), 1)
        plan = describe(planner, Estimate(permitted, permitted, 0, rows), k)
        lines.append(f"  {share:>7.1%}  {permitted:>12,} rows  {plan}")
    for tenant in tenants:
        lines.append(f"tenant {tenant.tenant}: {tenant.chunks:,} chunks ({tenant.share:.2%} of the index); "
                     "largest principal strings:")
        lines += [f"  {p.principal:<32} {p.chunks:>12,}  {p.plan}" for p in tenant.principals]
        if not tenant.principals:
            lines.append("  (no chunks)")
    advice = recommendations(facts, tenants, planner, k)
    lines.append("recommendations:" if advice else "recommendations: none")
    lines += [f"- {line}" for line in advice]
    return lines


def _mb(count: int) -> str:
    return f"{count / 2**20:,.0f} MB"

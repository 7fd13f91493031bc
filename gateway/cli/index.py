"""`gateway index tune|create-principal|drop-principal|list-principals`: the retrieval indexes.

`tune` is read-only: the retrieval index and the planner on the current data, with
advice. Index facts come from PostgreSQL's catalog and statistics; tenant figures (only
for the tenants named with --tenant) from a transaction bound as that tenant's writer,
so row-level security shows nothing of any other tenant.

`create-principal`, `drop-principal` and `list-principals` manage principal indexes
(`gateway.retrieval.principal_indexes`) as the owner role (GATEWAY_MIGRATION_DATABASE_URL
with an external database). A request that cannot be done (a duplicate, a missing index,
no owner rights) prints one line and exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import TypeVar

import psycopg

from gateway.cli import runtime
from gateway.db.engine import create_engine, session_factory
from gateway.retrieval import principal_indexes
from gateway.retrieval.planner import Estimate, RetrievalPlanner
from gateway.retrieval.principal_indexes import PrincipalIndex, PrincipalIndexError
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
T = TypeVar("T")


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `index` subcommand and its `tune` and principal index actions."""
    parser = commands.add_parser("index", help="inspect and tune the retrieval indexes")
    actions = parser.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    tune = actions.add_parser("tune", help="print the planner's view of the data and recommendations")
    tune.add_argument("--tenant", action="append", default=[], metavar="TENANT",
                      help="also report this tenant's size, largest principals and principal indexes "
                           "(repeatable)")
    tune.add_argument("--k", type=int, help="results per query to plan for (default GATEWAY_DEFAULT_TOP_K)")
    tune.set_defaults(handler=run_tune)
    for name, handler, summary in (
            ("create-principal", run_create_principal,
             "build an HNSW index over one principal string's postings (concurrently)"),
            ("drop-principal", run_drop_principal, "drop a principal string's index")):
        action = actions.add_parser(name, help=summary)
        action.add_argument("--tenant", required=True, help="the tenant the principal string belongs to")
        action.add_argument("principal", metavar="PRINCIPAL",
                            help="a principal string as allow lists name it, e.g. group:finance")
        action.set_defaults(handler=handler)
    listing = actions.add_parser("list-principals", help="list the principal indexes and their state")
    listing.add_argument("--tenant", help="only this tenant's")
    listing.set_defaults(handler=run_list_principals)


def run_create_principal(args: argparse.Namespace) -> int:
    """Build and record the principal index; print its name, postings and size."""
    def build(owner_url: str) -> PrincipalIndex:
        print(f"building the principal index of {args.principal!r} in tenant {args.tenant!r} "
              "(concurrently; a minute or more on large data) ...", flush=True)
        return principal_indexes.create(owner_url, args.tenant, args.principal)

    index = _as_owner(build)
    print(f"created {index.index_name}: {index.postings:,} postings, {_mb1(index.bytes)}")
    return 0


def run_drop_principal(args: argparse.Namespace) -> int:
    """Unrecord and drop the principal index."""
    _as_owner(lambda url: principal_indexes.drop(url, args.tenant, args.principal))
    print(f"dropped the principal index of {args.principal!r} in tenant {args.tenant!r}")
    return 0


def run_list_principals(args: argparse.Namespace) -> int:
    """One line per principal index: tenant, principal, postings, size, validity."""
    indexes = _as_owner(lambda url: principal_indexes.listing(url, args.tenant))
    print("\n".join(listing_lines(indexes)))
    return 0


def listing_lines(indexes: list[PrincipalIndex]) -> list[str]:
    """The printed listing, line by line."""
    if not indexes:
        return ["no principal indexes"]
    return [f"{i.tenant:<16} {i.principal:<32} {i.postings:>12,} postings {_mb1(i.bytes):>12}  "
            f"{'valid' if i.valid else 'INVALID'}" for i in indexes]


_OWNS_PRINCIPAL_INDEXES = """
SELECT r.rolsuper OR r.rolbypassrls OR pg_has_role(current_user, c.relowner, 'USAGE')
FROM pg_roles AS r, pg_class AS c
WHERE r.rolname = current_user AND c.oid = 'principal_indexes'::regclass
"""


def _as_owner(work: Callable[[str], T]) -> T:
    """Run `work` with the owner role's URL; user errors become one line and exit 1.

    Any other role is refused first: row-level security would show it none of the
    recorded indexes, so a listing would be wrongly empty.
    """
    config = runtime.settings()
    prepared = runtime.prepare_database(config)
    try:
        with psycopg.connect(prepared.urls.owner) as conn:
            row = conn.execute(_OWNS_PRINCIPAL_INDEXES).fetchone()
        if not (row and row[0]):
            raise SystemExit("gateway: error: principal indexes are managed by the owner role; set "
                             "GATEWAY_MIGRATION_DATABASE_URL to its URL")
        return work(prepared.urls.owner)
    except PrincipalIndexError as exc:
        raise SystemExit(f"gateway: error: {exc}") from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise SystemExit(f"gateway: error: {_first_line(exc)}: principal indexes are managed by the owner "
                         "role; set GATEWAY_MIGRATION_DATABASE_URL to its URL") from None
    except psycopg.Error as exc:
        raise SystemExit(f"gateway: error: {_first_line(exc)}") from None
    finally:
        if prepared.embedded:
            prepared.embedded.stop()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
        lines.append(f"principal indexes of {tenant.tenant}:" if tenant.indexes
                     else f"principal indexes of {tenant.tenant}: none")
        lines += [f"  {i.principal:<32} {i.chunks:>12,}  {_mb1(i.bytes)}, {'valid' if i.valid else 'INVALID'}"
                  for i in tenant.indexes]
    advice = recommendations(facts, tenants, planner, k)
    lines.append("recommendations:" if advice else "recommendations: none")
    lines += [f"- {line}" for line in advice]
    return lines


def _mb(count: int) -> str:
    return f"{count / 2**20:,.0f} MB"


def _mb1(count: int) -> str:
    return f"{count / 2**20:,.1f} MB"

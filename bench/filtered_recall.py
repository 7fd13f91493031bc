"""Filtered retrieval benchmark: recall@k and latency of HNSW post-filter, pgvector iterative
scan and the gateway's planner, against exact search over each principal's permitted set.

    python -m bench.filtered_recall --chunks 100000 --queries 200 --out docs/benchmarks.md \
        --principal-index acme:group:sel-10pct --principal-index acme:group:dept-3

Builds (once per --chunks/--seed, reused afterwards) a synthetic corpus in a dedicated
embedded PostgreSQL under --data-dir (or the database `bench` of --database-url, a
superuser URL), with the real migrations, loaded by COPY. Every mode runs through the
production path: runtime role with row-level security, principal-bound transaction,
compiled access predicate. See bench/corpus.py for the corpus and the principals.
The principal indexes (`gateway index create-principal`) are made exactly the ones named
with --principal-index (others are dropped), before anything is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import calibrate, plan_cache, sidechannel
from bench.corpus import Cell, Geometry, cells
from bench.corpus_load import benchmark_arguments, load, loaded, manifest
from bench.database import BenchDatabase, open_database, server_memory
from bench.measure import MODES, Runner, complete_share, percentiles, recall
from bench.report import Row, markdown_table, plan_mix, text_table, write_block
from bench.truth import Vectors, nearest, permitted_ids, read_vectors
from gateway.db.engine import create_engine
from gateway.retrieval import principal_indexes
from gateway.settings import DatabaseSettings, RetrievalSettings, load_settings
from policies.model import ClassificationLevels

BIG_EXACT = 50_000  # above this many permitted rows the exact mode runs --exact-queries only


def arguments() -> argparse.Namespace:
    parser = benchmark_arguments(__doc__, chunks=100_000, queries=200)
    parser.add_argument("--exact-queries", type=int, default=20,
                        help="queries for the exact mode where more than 50k rows are permitted")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="embedded server directory (default .bench/corpus-<chunks>)")
    parser.add_argument("--database-url", default=None, help="a superuser URL instead of the embedded server")
    parser.add_argument("--out", type=Path, default=None, help="write the tables into this Markdown file")
    parser.add_argument("--calibrate", action="store_true", help="also measure the exact/HNSW crossover")
    parser.add_argument("--gateway", action="store_true",
                        help="also measure through HTTP (bench.gateway_http)")
    parser.add_argument("--principal-index", action="append", default=[], metavar="TENANT:PRINCIPAL",
                        help="give this principal string an HNSW index of its own (repeatable)")
    return parser.parse_args()


def prepare(args: argparse.Namespace) -> BenchDatabase:
    """Open the benchmark database, (re)loading the corpus if it is not the requested one."""
    data_dir = args.data_dir or Path(f".bench/corpus-{args.chunks}")
    db = open_database(data_dir, args.database_url)
    wanted = manifest(args.chunks, args.seed)
    if not loaded(db.urls.superuser, wanted):
        db.close()
        db = open_database(data_dir, args.database_url, fresh=True)
        print(f"loading {args.chunks:,} chunks (seed {args.seed})...", flush=True)
        load(db.urls.superuser, args.chunks, args.seed)
    keep_principal_indexes(db.urls.owner, [tuple(p.split(":", 1)) for p in args.principal_index])
    return db


def keep_principal_indexes(owner_url: str, wanted: list[tuple[str, ...]]) -> None:
    """Make the principal indexes exactly `wanted` (tenant, principal string): build or drop."""
    present = {(i.tenant, i.principal) for i in principal_indexes.listing(owner_url) if i.valid}
    for tenant, principal in sorted(present - set(wanted)):
        principal_indexes.drop(owner_url, tenant, principal)
    for tenant, principal in sorted(set(wanted) - present):
        started = time.perf_counter()
        built = principal_indexes.create(owner_url, tenant, principal)
        print(f"principal index {tenant}:{principal}: {built.postings:,} postings, "
              f"{built.bytes / 2**20:,.0f} MB, built in {time.perf_counter() - started:.0f} s", flush=True)


def describe_principal_indexes(owner_url: str) -> str:
    """The principal indexes in use, for the report's header."""
    indexes = principal_indexes.listing(owner_url)
    if not indexes:
        return "no principal indexes"
    return "principal indexes: " + ", ".join(
        f"{i.tenant}:{i.principal} ({i.postings:,} postings, {i.bytes / 2**20:,.0f} MB)" for i in indexes)


async def measure_cell(runner: Runner, cell: Cell, vectors: Vectors, queries: np.ndarray,
                       args: argparse.Namespace) -> tuple[list[Row], np.ndarray, list[np.ndarray]]:
    """All modes for one principal, ground truth first.

    The modes that run every query run them interleaved (`Runner.run_interleaved`); an
    exact search of a large permitted set runs its few queries afterwards, on its own, so
    its seconds-long queries do not outlast the planner's cached estimate in between.
    """
    permitted = await permitted_ids(runner.engine, cell.principal, runner.levels, datetime.now(UTC))
    truth = nearest(vectors, permitted, queries, args.k)
    counts = {mode: args.exact_queries if mode == "exact" and permitted.size > BIG_EXACT else len(queries)
              for mode in MODES}
    for mode in MODES:
        await runner.run(mode, cell.principal, queries[:5], args.k)  # warm-up, not measured
    outcomes = await runner.run_interleaved([m for m in MODES if counts[m] == len(queries)],
                                            cell.principal, queries, args.k)
    for mode in MODES:
        if mode not in outcomes:
            outcomes[mode] = await runner.run(mode, cell.principal, queries[:counts[mode]], args.k)
    rows = []
    for mode in MODES:
        count, outcome = counts[mode], outcomes[mode]
        p50, p95, p99 = percentiles(outcome.db_seconds)
        rows.append(Row(cell.name, permitted.size / vectors.ids.size, int(permitted.size), mode, count,
                        recall(outcome.ids, truth[:count], args.k),
                        complete_share(outcome.ids, int(permitted.size), args.k),
                        p50, p95, p99, percentiles(outcome.seconds)[0],
                        float(np.mean(outcome.examined)), plan_mix(outcome.plans)))
        print(text_table(rows[-1:]).splitlines()[-1], flush=True)
    return rows, permitted, truth


async def benchmark(args: argparse.Namespace, db: BenchDatabase) -> str:
    """Run every cell and mode; return the Markdown report."""
    started = time.perf_counter()
    assert db.urls.superuser is not None
    memory = server_memory(db.urls.superuser)
    indexes = describe_principal_indexes(db.urls.owner)
    vectors = read_vectors(db.urls.superuser)
    queries = Geometry(args.seed).queries(args.queries, args.seed + 1000)
    retrieval: RetrievalSettings = load_settings().retrieval
    engine = create_engine(db.urls.runtime, DatabaseSettings(statement_timeout_ms=600_000))
    runner = Runner(engine, retrieval, ClassificationLevels())
    rows: list[Row] = []
    evidence = {}
    try:
        # The server starts with cold buffers: walk the HNSW graph near every query once
        # (plain post-filter, the whole tenant), and run every cell's queries once through
        # the planner (its postings and principal indexes), so no mode pays for the cold
        # start: shared_buffers holds the whole working set once it is read.
        await runner.run("hnsw", cells()[0].principal, queries, args.k)
        for cell in cells():
            await runner.run("planner", cell.principal, queries, args.k)
        print(text_table([]), flush=True)
        for cell in cells():
            cell_rows, permitted, truth = await measure_cell(runner, cell, vectors, queries, args)
            rows += cell_rows
            if cell.name in sidechannel.CELLS:
                evidence[cell.name] = (permitted, truth)
        channel = await sidechannel.measure(runner, vectors, queries, evidence, args.k)
        planning = await plan_cache.measure(runner, queries[:100], args.k)
        crossover = await calibrate.measure(runner, vectors, queries, args.k) if args.calibrate else ""
    finally:
        await engine.dispose()
    minutes = (time.perf_counter() - started) / 60
    return "\n\n".join(part for part in (
        f"{args.chunks:,} chunks, {args.queries} queries, k={args.k}, "
        f"GATEWAY_EXACT_SCAN_THRESHOLD={retrieval.exact_threshold}, "
        f"ef_search={retrieval.ef_search}, max_scan_tuples<={retrieval.max_scan_tuples}, "
        f"GATEWAY_PLANNER_ESTIMATE_TTL_SECONDS={retrieval.estimate_ttl_s:g}, {memory}, {indexes} "
        f"(measured in {minutes:.0f} min)",
        markdown_table(rows), channel, planning, crossover) if part)


def main() -> None:
    args = arguments()
    db = prepare(args)
    try:
        report = asyncio.run(benchmark(args, db))
        if args.gateway:
            from bench import gateway_http

            report += "\n\n" + gateway_http.run(db.urls.runtime, args)
    finally:
        db.close()
    print(report)
    if args.out:
        write_block(args.out, f"filtered-recall:{args.chunks}", report)


if __name__ == "__main__":
    main()

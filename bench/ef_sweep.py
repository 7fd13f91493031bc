"""Recall and latency of HNSW candidate-list sizes, against pgvector's iterative scan.

    python -m bench.ef_sweep --chunks 1000000 --cell 100%:64,80,100 --cell 10%:310,414

For each `--cell NAME:EF,EF,...` (cells of bench/corpus.py) the queries run through the
production path with an HNSW plan of each ef_search (max_scan_tuples as the planner
would set it, at least 4 x ef_search) and with pgvector's iterative-scan defaults, all
interleaved query by query (`Runner.run_interleaved`). Prints recall@k and database
p50/p95 per list, and p95 as a multiple of the iterative scan's: the figures behind the
planner's EF_PER_WANTED and GATEWAY_HNSW_EF_SEARCH (docs/decisions.md). Runs on the
corpus `bench.filtered_recall` loaded.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path

from bench.corpus import Geometry, cells
from bench.corpus_load import benchmark_arguments, loaded_corpus
from bench.measure import BASELINES, Runner, percentiles, recall
from bench.truth import nearest, permitted_ids, read_vectors
from gateway.db.engine import create_engine
from gateway.retrieval.plans import AnnPlan
from gateway.settings import DatabaseSettings, load_settings
from policies.model import ClassificationLevels


def arguments() -> argparse.Namespace:
    parser = benchmark_arguments(__doc__, chunks=1_000_000, queries=200)
    parser.add_argument("--cell", action="append", required=True, help="NAME:EF[,EF...]")
    return parser.parse_args()


async def sweep(db_urls: tuple[str, str], args: argparse.Namespace) -> None:
    superuser, runtime = db_urls
    vectors = read_vectors(superuser)
    queries = Geometry(args.seed).queries(args.queries, args.seed + 1000)
    engine = create_engine(runtime, DatabaseSettings(statement_timeout_ms=600_000))
    runner = Runner(engine, load_settings().retrieval, ClassificationLevels())
    principals = {c.name: c.principal for c in cells()}
    try:
        await runner.run("hnsw", principals["100%"], queries, args.k)  # warm the graph
        for spec in args.cell:
            name, lists = spec.split(":")
            permitted = await permitted_ids(runner.engine, principals[name], runner.levels,
                                            datetime.now(UTC))
            truth = nearest(vectors, permitted, queries, args.k)
            planned = runner.planner.ann(permitted.size, vectors.ids.size, args.k)
            modes = ["iterative"]
            for ef in (int(e) for e in lists.split(",")):
                BASELINES[f"ef_search {ef}"] = AnnPlan(ef, max(planned.max_scan_tuples, 4 * ef))
                modes.append(f"ef_search {ef}")
            for mode in modes:
                await runner.run(mode, principals[name], queries[:5], args.k)
            outcomes = await runner.run_interleaved(modes, principals[name], queries, args.k)
            baseline = percentiles(outcomes["iterative"].db_seconds)[1]
            for mode in modes:
                p50, p95, _ = percentiles(outcomes[mode].db_seconds)
                print(f"{name:10s} {mode:15s} recall {recall(outcomes[mode].ids, truth, args.k):.3f} "
                      f"p50 {p50:6.2f} p95 {p95:6.2f} ms  {p95 / baseline:.2f}x", flush=True)
    finally:
        await engine.dispose()


def main() -> None:
    args = arguments()
    with loaded_corpus(Path(f".bench/corpus-{args.chunks}"), args.chunks, args.seed) as urls:
        asyncio.run(sweep(urls, args))


if __name__ == "__main__":
    main()

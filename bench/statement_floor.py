"""What one exact search costs before access control: the floor under the planner's statement.

    python -m bench.statement_floor --chunks 1000000 --cell 0.1% --cell 0.01%

For each cell searched exactly, the same queries run interleaved (the order rotating
from one query to the next) through five statements, each doing a little more of the
exact plan's work, and the round trip of each is timed from the client:
- `SELECT 1`: the round trip itself (prepared, on psycopg's async connection);
- the count of the caller's postings: the btree range and the heap rows it reads;
- the sum of their distances to the query: every permitted vector read and scored;
- their `depth` nearest (ORDER BY distance LIMIT depth; every posting sorted where the
  plan sorts them all): the exact plan's first step, and all of its scoring;
- the planner's search run by the superuser: the same statement with the same
  principal bound, its access predicate included, but row-level security bypassed;
- the planner's search as production runs it (`bench.measure.Runner`, mode `planner`):
  runtime role with row-level security, the access predicate, the nearest postings
  looked up in `chunks`, the documents and policies joined, the rows examined counted.
The first four run as the superuser (no row-level security, nothing checked, nothing
joined, no rows returned but numbers): a lower bound for any exact search of that
permitted set in PostgreSQL on this machine. Runs on the corpus `bench.filtered_recall`
loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async

from bench.corpus import Geometry, cells
from bench.corpus_load import benchmark_arguments, loaded_corpus
from bench.measure import Runner, percentiles
from gateway.db.access import bind_principal
from gateway.db.engine import create_engine
from gateway.retrieval.plans import ExactPlan
from gateway.retrieval.repository import posting_keys
from gateway.settings import DatabaseSettings, load_settings
from policies.model import ClassificationLevels
from policies.principal import Principal

COUNT = "SELECT count(*) FROM chunk_postings WHERE key = ANY(%(keys)s)"
SCORE = "SELECT sum(embedding <=> %(vector)s) FROM chunk_postings WHERE key = ANY(%(keys)s)"
NEAREST = ("SELECT chunk_id, embedding <=> %(vector)s AS distance FROM chunk_postings "
           "WHERE key = ANY(%(keys)s) ORDER BY distance, chunk_id LIMIT %(depth)s")
Step = Callable[[np.ndarray], Awaitable[float]]


def arguments() -> argparse.Namespace:
    parser = benchmark_arguments(__doc__, chunks=1_000_000, queries=200)
    parser.add_argument("--cell", action="append", default=None,
                        help="a cell of bench/corpus.py searched exactly (default: 0.1%% and 0.01%%)")
    return parser.parse_args()


async def exact_depth(runner: Runner, principal: Principal, k: int) -> int | None:
    """How many nearest postings the planner's exact plan keeps for `principal` (None: all, sorted)."""
    async with runner.engine.connect() as connection, connection.begin():
        await bind_principal(connection, principal, runner.levels, datetime.now(UTC))
        estimate = await runner.planner.estimate(connection, principal)
    plan = runner.planner.choose(estimate, k, len(principal.principal_strings))
    if not isinstance(plan, ExactPlan):
        raise SystemExit(f"the planner does not search this principal exactly ({plan.name})")
    return plan.depth


def statement_steps(raw: psycopg.AsyncConnection[object], keys: list[str],
                    depth: int | None) -> dict[str, Step]:
    """The bare statements, each timed from sending it to its last row."""
    def timed(sql: str) -> Step:
        async def step(vector: np.ndarray) -> float:
            started = time.perf_counter()
            await (await raw.execute(sql, {"vector": vector, "keys": keys, "depth": depth})).fetchall()
            return time.perf_counter() - started
        return step

    return {
        "SELECT 1 (the round trip)": timed("SELECT 1"),
        "count the postings": timed(COUNT),
        "score every posting": timed(SCORE),
        f"nearest {depth} postings" if depth else "every posting, sorted": timed(NEAREST),
    }


def planner_step(runner: Runner, principal: Principal, k: int) -> Step:
    """The planner's retrieval through `runner`, timed as the benchmark times it (`Runner`)."""
    async def step(vector: np.ndarray) -> float:
        await runner.query("planner", principal, vector.tolist(), k)
        return runner.clock.total
    return step


async def measure(superuser: str, runtime: str, args: argparse.Namespace) -> None:
    queries = Geometry(args.seed).queries(args.queries, args.seed + 1000).astype(np.float32)
    settings = DatabaseSettings(statement_timeout_ms=600_000)
    runner = Runner(create_engine(runtime, settings), load_settings().retrieval, ClassificationLevels())
    unpoliced = Runner(create_engine(superuser, settings), load_settings().retrieval, ClassificationLevels())
    raw = await psycopg.AsyncConnection.connect(superuser, autocommit=True, prepare_threshold=0)
    await register_vector_async(raw)
    principals = {c.name: c.principal for c in cells()}
    try:
        for name in args.cell or ["0.1%", "0.01%"]:
            principal = principals[name]
            keys = posting_keys(principal)
            depth = await exact_depth(runner, principal, args.k)

            steps = {**statement_steps(raw, keys, depth),
                     "the planner's search, as the superuser": planner_step(unpoliced, principal, args.k),
                     "the planner's search (production)": planner_step(runner, principal, args.k)}
            seconds: dict[str, list[float]] = {label: [] for label in steps}
            for vector in queries[:5]:  # untimed: bring the cell's postings and chunks in
                for run in steps.values():
                    await run(vector)
            names = list(steps)
            for i, vector in enumerate(queries):
                for label in [*names[i % len(names):], *names[:i % len(names)]]:
                    seconds[label].append(await steps[label](vector))
            postings = (await (await raw.execute(COUNT, {"keys": keys})).fetchone() or (0,))[0]
            print(f"{name} ({postings:,} postings, {args.queries} queries, interleaved)", flush=True)
            for label, values in seconds.items():
                p50, p95, _ = percentiles(values)
                print(f"  {label:40s} p50 {p50:5.2f}  p95 {p95:5.2f} ms", flush=True)
    finally:
        await raw.close()
        await runner.engine.dispose()
        await unpoliced.engine.dispose()


def main() -> None:
    args = arguments()
    with loaded_corpus(Path(f".bench/corpus-{args.chunks}"), args.chunks, args.seed) as (superuser, runtime):
        asyncio.run(measure(superuser, runtime, args))


if __name__ == "__main__":
    main()

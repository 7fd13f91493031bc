"""PostgreSQL's shared memory on huge pages against ordinary 4 kB pages, for retrieval.

    python -m bench.huge_pages --chunks 1000000 --queries 100 --out docs/benchmarks.md

Runs on the corpus `bench.filtered_recall` loaded (run that first). The server restarts
four times, alternating `huge_pages = off` and `on` (off, on, off, on), so a slow spell
of the machine falls on both; after each start every cell and mode runs its queries
once untimed (the pages they touch are then in shared_buffers, as on a server in
steady state), then once timed, through the production path (`bench.measure.Runner`). Both settings run with
the same shared_buffers. `on` needs pages reserved by the operating system
(`vm.nr_hugepages` of at least the server's `shared_memory_size_in_huge_pages`); the
script stops with that number when they are missing instead of measuring ordinary pages
twice.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import numpy as np
import psycopg

from bench.corpus import Geometry, cells
from bench.corpus_load import benchmark_arguments, loaded_corpus
from bench.database import open_database, server_memory
from bench.measure import Runner, percentiles
from bench.report import write_block
from gateway.db.engine import create_engine
from gateway.settings import DatabaseSettings, load_settings
from policies.model import ClassificationLevels

CELLS = ("100%", "10%", "combined", "1%", "0.1%")
MODES = ("iterative", "planner")
ROUNDS = ("off", "on", "off", "on")


def arguments() -> argparse.Namespace:
    parser = benchmark_arguments(__doc__, chunks=1_000_000, queries=100)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="embedded server directory (default .bench/corpus-<chunks>)")
    parser.add_argument("--out", type=Path, default=None, help="write the table into this Markdown file")
    return parser.parse_args()


async def measure(runtime_url: str, queries: np.ndarray, k: int) -> dict[tuple[str, str], list[float]]:
    """Database seconds per query, per (cell, mode), each measured after an untimed pass."""
    engine = create_engine(runtime_url, DatabaseSettings(statement_timeout_ms=600_000))
    runner = Runner(engine, load_settings().retrieval, ClassificationLevels())
    principals = {c.name: c.principal for c in cells()}
    seconds = {}
    try:
        for name in CELLS:
            for mode in MODES:
                await runner.run(mode, principals[name], queries, k)
                seconds[name, mode] = (await runner.run(mode, principals[name], queries, k)).db_seconds
    finally:
        await engine.dispose()
    return seconds


def run_round(data_dir: Path, setting: str, queries: np.ndarray, args: argparse.Namespace
              ) -> tuple[str, dict[tuple[str, str], list[float]]]:
    """Restart the server with `huge_pages = setting` and measure; returns its memory line too."""
    # `try` rather than `on`: a server short of pages then starts, and says so below.
    with loaded_corpus(data_dir, args.chunks, args.seed,
                       settings={"huge_pages": "off" if setting == "off" else "try"}) as (superuser, runtime):
        memory = server_memory(superuser)
        if setting == "on" and not memory.endswith("huge pages on"):
            raise SystemExit(_missing_pages(superuser))
        return memory, asyncio.run(measure(runtime, queries, args.k))


def _missing_pages(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_setting('shared_memory_size_in_huge_pages')").fetchone()
    assert row is not None
    return (f"the server could not map its shared memory on huge pages: reserve at least {row[0]} "
            f"(sysctl vm.nr_hugepages={row[0]}, as root) and run again")


def report(memory: dict[str, str], seconds: dict[str, dict[tuple[str, str], list[float]]],
           args: argparse.Namespace) -> str:
    lines = [f"{args.chunks:,} chunks, {args.queries} queries per cell and round, k={args.k}, "
             f"rounds {', '.join(ROUNDS)}; {memory['off']} / {memory['on']}. "
             "Database time per query (ms), both rounds of a setting pooled.", "",
             "| cell | mode | off p50 | off p95 | on p50 | on p95 | p50 change |",
             "|---|---|---|---|---|---|---|"]
    for name in CELLS:
        for mode in MODES:
            off, on = (percentiles(seconds[s][name, mode]) for s in ("off", "on"))
            lines.append(f"| {name} | {mode} | {off[0]:.2f} | {off[1]:.2f} | {on[0]:.2f} | {on[1]:.2f} "
                         f"| {100 * (on[0] / off[0] - 1):+.0f}% |")
    return "\n".join(lines)


def main() -> None:
    args = arguments()
    data_dir = args.data_dir or Path(f".bench/corpus-{args.chunks}")
    queries = Geometry(args.seed).queries(args.queries, args.seed + 1000)
    memory: dict[str, str] = {}
    seconds: dict[str, dict[tuple[str, str], list[float]]] = {s: {} for s in ROUNDS}
    try:
        for setting in ROUNDS:
            memory[setting], measured = run_round(data_dir, setting, queries, args)
            for key, values in measured.items():
                seconds[setting].setdefault(key, []).extend(values)
            print(f"round huge_pages={setting} done ({memory[setting]})", flush=True)
    finally:
        open_database(data_dir, None).close()  # back to SERVER_SETTINGS (huge_pages = try)
    table = report(memory, seconds, args)
    print(table)
    if args.out:
        write_block(args.out, f"huge-pages:{args.chunks}", table)


if __name__ == "__main__":
    main()

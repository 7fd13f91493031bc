"""Where a request's time goes: CPU per request of the client, the gateway and PostgreSQL.

    python -m bench.gateway_cpu --chunks 100000 --requests 1000

Runs on a corpus `bench.filtered_recall` has loaded (its principal indexes untouched).
Sequential requests, so a request's wall time is the sum of what the three processes
spend on it (they share the machine's cores) plus scheduling. For each route the CPU
time (user + system, from /proc) of the load generator, of the gateway process
(`bench.serve_gateway`, one uvicorn worker) and of every process of the benchmark's
PostgreSQL server is divided by the number of requests. The routes, slowest last:
`GET /health/live` (HTTP only), `GET /v1/me` (HTTP and bearer authentication), and
`POST /v1/search` for some cells of bench/corpus.py; each cell's retrieval transaction
is also run directly (the planner, as in the filtered-recall tables' `total`), in this
process, so what the gateway adds to it shows process by process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import numpy as np

from bench.corpus import Cell, Geometry, cells
from bench.corpus_load import loaded, manifest
from bench.database import BenchDatabase, open_database
from bench.gateway_http import claims, start_gateway
from bench.measure import Runner, percentiles
from bench.serve_gateway import bench_settings
from gateway.auth.devkeys import load_or_create_private_key, mint_dev_token
from gateway.db.engine import create_engine
from gateway.settings import DatabaseSettings, load_settings
from policies.model import ClassificationLevels

WARM_UP = 50
TICKS = os.sysconf("SC_CLK_TCK")


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per route")
    parser.add_argument("--cells", default="0.1%,10%", help="comma-separated cells of bench/corpus.py")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="embedded server directory (default .bench/corpus-<chunks>)")
    return parser.parse_args()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def server_cpu(postmaster: int) -> float:
    """CPU seconds of a PostgreSQL server: its postmaster and every process it started."""
    total = process_cpu(postmaster)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == postmaster:
                total += process_cpu(int(entry.name))
        except (OSError, ValueError):
            continue  # the process ended while we looked
    return total


def own_cpu() -> float:
    """User + system CPU seconds of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """Times `count` requests and splits their CPU between the three processes."""

    def __init__(self, gateway_pid: int | None, postmaster: int) -> None:
        self._gateway_pid = gateway_pid
        self._postmaster = postmaster

    def _sample(self) -> tuple[float, float, float]:
        gateway = process_cpu(self._gateway_pid) if self._gateway_pid else 0.0
        return own_cpu(), gateway, server_cpu(self._postmaster)

    async def measure(self, name: str, request: Callable[[int], Awaitable[object]], count: int) -> str:
        """One table row: p50 wall time and CPU per request of each process."""
        for i in range(WARM_UP):
            await request(i)
        seconds = []
        before = self._sample()
        for i in range(count):
            started = time.perf_counter()
            await request(i)
            seconds.append(time.perf_counter() - started)
        after = self._sample()
        client, gateway, server = (1000 * (b - a) / count for a, b in zip(before, after, strict=True))
        gateway_cell = f"{gateway:.2f}" if self._gateway_pid else "-"
        return f"| {name} | {percentiles(seconds)[0]:.2f} | {client:.2f} | {gateway_cell} | {server:.2f} |"


def postmaster_pid(data_dir: Path) -> int:
    """The embedded server's postmaster, from its pid file."""
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])


async def direct_rows(runtime_url: str, chosen: list[Cell], queries: np.ndarray, count: int,
                      postmaster: int) -> list[str]:
    """Each cell's retrieval transaction run here, as the filtered-recall tables' `total`."""
    engine = create_engine(runtime_url, DatabaseSettings())
    try:
        runner = Runner(engine, load_settings().retrieval, ClassificationLevels())
        meter = CpuMeter(None, postmaster)
        rows = []
        for cell in chosen:
            def retrieve(i: int, cell: Cell = cell) -> Awaitable[object]:
                return runner.query("planner", cell.principal, queries[i % len(queries)].tolist(), 10)
            rows.append(await meter.measure(f"retrieval only, {cell.name}", retrieve, count))
        return rows
    finally:
        await engine.dispose()


async def gateway_rows(base: str, gateway_pid: int, tokens: dict[str, str], queries: np.ndarray,
                       count: int, postmaster: int) -> list[str]:
    """The HTTP routes, cheapest first: liveness, `/v1/me`, then one search route per cell."""
    meter = CpuMeter(gateway_pid, postmaster)
    first = next(iter(tokens.values()))
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        async def live(i: int) -> None:
            (await client.get("/health/live")).raise_for_status()

        async def me(i: int) -> None:
            (await client.get("/v1/me", headers={"Authorization": f"Bearer {first}"})).raise_for_status()

        rows = [await meter.measure("GET /health/live", live, count),
                await meter.measure("GET /v1/me", me, count)]
        for name, token in tokens.items():
            async def search(i: int, token: str = token) -> None:
                body = {"query": f"q{i % len(queries)}", "top_k": 10}
                headers = {"Authorization": f"Bearer {token}"}
                (await client.post("/v1/search", json=body, headers=headers)).raise_for_status()
            rows.append(await meter.measure(f"POST /v1/search, {name}", search, count))
    return rows


def run(args: argparse.Namespace, db: BenchDatabase, data_dir: Path) -> list[str]:
    """The table: direct retrievals first, then the routes through the gateway."""
    queries = Geometry(args.seed).queries(200, args.seed + 1000)
    by_name = {c.name: c for c in cells()}
    chosen = [by_name[name] for name in args.cells.split(",")]
    postmaster = postmaster_pid(data_dir)
    lines = ["| request | wall p50 ms | client CPU ms | gateway CPU ms | PostgreSQL CPU ms |",
             "|---|---|---|---|---|"]
    lines += asyncio.run(direct_rows(db.urls.runtime, chosen, queries, args.requests, postmaster))
    with tempfile.TemporaryDirectory() as tmp:
        gateway_dir = Path(tmp)
        np.save(gateway_dir / "queries.npy", queries)
        settings = bench_settings(db.urls.runtime, gateway_dir)
        load_or_create_private_key(gateway_dir)
        base, process = start_gateway(db.urls.runtime, gateway_dir)
        try:
            tokens = {c.name: mint_dev_token(settings, **claims(c), ttl_s=3600) for c in chosen}
            lines += asyncio.run(gateway_rows(base, process.pid, tokens, queries, args.requests, postmaster))
        finally:
            process.terminate()
            process.wait(timeout=30)
    return lines


def main() -> None:
    args = arguments()
    data_dir = args.data_dir or Path(f".bench/corpus-{args.chunks}")
    db = open_database(data_dir, None)
    try:
        if not loaded(db.urls.superuser, manifest(args.chunks, args.seed)):
            raise SystemExit(f"no {args.chunks:,}-chunk corpus under {data_dir}: "
                             "run bench.filtered_recall first")
        print(f"{args.chunks:,} chunks, {args.requests} sequential requests per row, k=10; "
              "CPU per request by process:\n", flush=True)
        print("\n".join(run(args, db, data_dir)))
    finally:
        db.close()


if __name__ == "__main__":
    main()

"""The same retrieval through the whole gateway: HTTP, bearer auth, policy, retrieval, audit.

The gateway runs in its own process (bench.serve_gateway, one uvicorn worker) so the
load generator does not share its interpreter. For each cell we time the planner's
database retrieval directly and `POST /v1/search` for the same queries; the difference of
medians is what the gateway adds per request (token verification, policy compilation,
the audit event committed before the response, JSON). Then a mixed workload (all cells
interleaved) runs at concurrency 8 for a fixed time. Query embedding is excluded there
and measured on its own with the bundled local model.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.corpus import Cell, Geometry, cells
from bench.measure import Runner, percentiles
from bench.serve_gateway import bench_settings
from gateway.auth.devkeys import load_or_create_private_key, mint_dev_token
from gateway.db.engine import create_engine, session_factory
from gateway.settings import DatabaseSettings, load_settings
from policies.model import ClassificationLevels

SEQUENTIAL_CELLS = ("100%", "10%", "1%", "0.1%", "anti 1%")
CONCURRENCY = 8
MIXED_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _claims(cell: Cell) -> dict[str, object]:
    p = cell.principal
    return {"sub": p.subject, "groups": list(p.groups), "tenant": p.tenant, "clearance": p.clearance,
            "attributes": {k: list(v) for k, v in p.attributes.items()}}


def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the gateway exited during startup")
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("the gateway did not start")


async def _direct(runtime_url: str, cell: Cell, queries: np.ndarray, k: int) -> list[float]:
    engine = create_engine(runtime_url, DatabaseSettings())
    try:
        runner = Runner(session_factory(engine), load_settings().retrieval, ClassificationLevels())
        await runner.run("planner", cell.principal, queries[:5], k)
        return (await runner.run("planner", cell.principal, queries, k)).seconds
    finally:
        await engine.dispose()


def _http(client: httpx.Client, token: str, count: int, k: int) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    seconds = []
    for i in range(count):
        started = time.perf_counter()
        response = client.post("/v1/search", json={"query": f"q{i}", "top_k": k}, headers=headers)
        seconds.append(time.perf_counter() - started)
        response.raise_for_status()
    return seconds


async def _mixed(base: str, tokens: list[str], queries: int, k: int) -> tuple[int, int, list[float]]:
    done, errors, seconds = 0, 0, []
    deadline = time.monotonic() + MIXED_SECONDS

    async def worker(offset: int, client: httpx.AsyncClient) -> None:
        nonlocal done, errors
        i = offset
        while time.monotonic() < deadline:
            token = tokens[i % len(tokens)]
            started = time.perf_counter()
            response = await client.post("/v1/search", json={"query": f"q{i % queries}", "top_k": k},
                                         headers={"Authorization": f"Bearer {token}"})
            seconds.append(time.perf_counter() - started)
            done += 1
            errors += response.status_code != 200
            i += CONCURRENCY

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        await asyncio.gather(*(worker(n, client) for n in range(CONCURRENCY)))
    return done, errors, seconds


def _embedding_p50(count: int = 50) -> float:
    from gateway.ingestion.embedders import LocalEmbedder

    embedder = LocalEmbedder()
    embedder.embed_query("warm up")
    seconds = []
    for i in range(count):
        started = time.perf_counter()
        embedder.embed_query(f"what is the travel expense policy for region {i}?")
        seconds.append(time.perf_counter() - started)
    return percentiles(seconds)[0]


def run(runtime_url: str, args: argparse.Namespace) -> str:
    """Measure through HTTP; return a Markdown section."""
    queries = Geometry(args.seed).queries(args.queries, args.seed + 1000)
    by_name = {c.name: c for c in cells()}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        np.save(data_dir / "queries.npy", queries)
        settings = bench_settings(runtime_url, data_dir)
        load_or_create_private_key(data_dir)
        port = _free_port()
        process = subprocess.Popen([
            sys.executable, "-m", "bench.serve_gateway", "--database-url", runtime_url,
            "--data-dir", str(data_dir), "--vectors", str(data_dir / "queries.npy"), "--port", str(port),
        ])
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, process)
            tokens = {c.name: mint_dev_token(settings, **_claims(c), ttl_s=3600) for c in cells()}
            lines = ["Through the gateway (HTTP + bearer auth + policy + retrieval + audit commit; "
                     "query embedding excluded), one uvicorn worker, sequential requests, ms:", "",
                     "| cell | database p50 | HTTP p50 | HTTP p95 | added p50 |", "|---|---|---|---|---|"]
            with httpx.Client(base_url=base, timeout=60) as client:
                for name in SEQUENTIAL_CELLS:
                    direct = percentiles(asyncio.run(_direct(runtime_url, by_name[name], queries, args.k)))
                    _http(client, tokens[name], 5, args.k)
                    http = percentiles(_http(client, tokens[name], len(queries), args.k))
                    lines.append(f"| {name} | {direct[0]:.2f} | {http[0]:.2f} | {http[1]:.2f} | "
                                 f"{http[0] - direct[0]:.2f} |")
            done, errors, seconds = asyncio.run(_mixed(base, list(tokens.values()), len(queries), args.k))
        finally:
            process.terminate()
            process.wait(timeout=30)
    p50, p95, p99 = percentiles(seconds)
    lines += ["", f"Mixed workload (all {len(tokens)} cells interleaved), concurrency {CONCURRENCY}, "
              f"{MIXED_SECONDS:.0f} s: {done / MIXED_SECONDS:.0f} requests/s, p50 {p50:.1f} ms, "
              f"p95 {p95:.1f} ms, p99 {p99:.1f} ms, {errors} errors.", "",
              f"Query embedding (bundled all-MiniLM-L6-v2, CPU, not included above): "
              f"p50 {_embedding_p50():.1f} ms per query."]
    return "\n".join(lines)

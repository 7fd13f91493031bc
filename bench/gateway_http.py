"""The same retrieval through the whole gateway: HTTP, bearer auth, policy, retrieval, audit.

The gateway runs in its own process (bench.serve_gateway, one uvicorn worker) so the
load generator does not share its interpreter. For each cell we time the planner's
retrieval transaction directly and `POST /v1/search` for the same queries, interleaved
query by query, sent by a minimal client (`bench.lean_http`: httpx's own Python would be
counted otherwise); the difference of medians is what the gateway adds per request
(token verification, policy compilation, the audit event committed before the response,
JSON). Then a mixed workload (all cells
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
from bench.lean_http import LeanClient
from bench.measure import Runner, percentiles
from bench.serve_gateway import bench_settings
from gateway.auth.devkeys import load_or_create_private_key, mint_dev_token
from gateway.db.engine import create_engine
from gateway.settings import DatabaseSettings, load_settings
from policies.model import ClassificationLevels

SEQUENTIAL_CELLS = ("100%", "10%", "1%", "0.1%", "anti 1%")
CONCURRENCY = 8
MIXED_SECONDS = 30.0
# A pause between interleaved requests: what one leaves running (the gateway's work after
# its response, PostgreSQL's after a commit) must not land on the next one's clock.
SETTLE_S = 0.002


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def claims(cell: Cell) -> dict[str, object]:
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


class DirectRetrieval:
    """The planner's retrieval transaction run in this process, one query at a time, on its own loop."""

    def __init__(self, runtime_url: str, k: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._engine = create_engine(runtime_url, DatabaseSettings())
        self._runner = Runner(self._engine, load_settings().retrieval,
                              ClassificationLevels())
        self._k = k

    def seconds(self, cell: Cell, vector: np.ndarray) -> float:
        """Wall time of one retrieval transaction for `cell`'s principal."""
        started = time.perf_counter()
        self._loop.run_until_complete(self._runner.query("planner", cell.principal, vector.tolist(), self._k))
        return time.perf_counter() - started

    def close(self) -> None:
        """Dispose of the engine and the loop."""
        self._loop.run_until_complete(self._engine.dispose())
        self._loop.close()


def _interleaved(direct: DirectRetrieval, lean: LeanClient, client: httpx.Client, cell: Cell, token: str,
                 queries: np.ndarray, k: int) -> tuple[list[float], list[float], list[float]]:
    """Each query retrieved directly, then sent by the lean client and by httpx (the order rotating)."""
    headers = {"Authorization": f"Bearer {token}"}
    bodies = [{"query": f"q{i}", "top_k": k} for i in range(len(queries))]
    requests = [lean.encode_post("/v1/search", body, headers) for body in bodies]

    def by_lean(i: int) -> float:
        started = time.perf_counter()
        status, answer = lean.send(requests[i])
        if status != 200:
            raise RuntimeError(f"POST /v1/search answered {status}: {answer[:200]!r}")
        return time.perf_counter() - started

    def by_httpx(i: int) -> float:
        started = time.perf_counter()
        client.post("/v1/search", json=bodies[i], headers=headers).raise_for_status()
        return time.perf_counter() - started

    def directly(i: int) -> float:
        return direct.seconds(cell, queries[i])

    ways = (directly, by_lean, by_httpx)
    times: tuple[list[float], list[float], list[float]] = ([], [], [])
    for i in range(len(queries)):
        for turn in range(len(ways)):
            way = (i + turn) % len(ways)
            times[way].append(ways[way](i))
            time.sleep(SETTLE_S)
    return times


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


def audit_write_mean_ms(metrics_text: str) -> float | None:
    """Mean audit write time from the gateway's Prometheus text (None if not exported)."""
    values = {}
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("gateway_audit_write_seconds_sum", "gateway_audit_write_seconds_count"):
            values[name] = float(value)
    count = values.get("gateway_audit_write_seconds_count")
    if not count:
        return None
    return 1000 * values["gateway_audit_write_seconds_sum"] / count


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


def _sequential(client: httpx.Client, lean: LeanClient, runtime_url: str, tokens: dict[str, str],
                queries: np.ndarray, k: int) -> list[str]:
    """Per cell: the planner's retrieval timed directly and the same queries over HTTP, interleaved.

    HTTP is timed with the lean client (`bench.lean_http`), so the figure is the gateway's
    and not the load generator's; the same requests sent with httpx are shown beside it.
    """
    by_name = {c.name: c for c in cells()}
    lines = ["Through the gateway (HTTP + bearer auth + policy + retrieval + audit commit; "
             "query embedding excluded), one uvicorn worker, sequential requests, ms "
             "(retrieval: the planner's transaction run directly; HTTP: the same query "
             "through the gateway from a minimal socket client; httpx: the same with httpx; the three "
             "interleaved query by query):", "",
             "| cell | retrieval p50 | HTTP p50 | HTTP p95 | added p50 | httpx p50 |",
             "|---|---|---|---|---|---|"]
    retrieval = DirectRetrieval(runtime_url, k)
    try:
        for name in SEQUENTIAL_CELLS:
            cell, token = by_name[name], tokens[name]
            _interleaved(retrieval, lean, client, cell, token, queries[:5], k)
            direct, http, with_httpx = map(percentiles, _interleaved(retrieval, lean, client, cell, token,
                                                                     queries, k))
            lines.append(f"| {name} | {direct[0]:.2f} | {http[0]:.2f} | {http[1]:.2f} | "
                         f"{http[0] - direct[0]:.2f} | {with_httpx[0]:.2f} |")
    finally:
        retrieval.close()
    audit_ms = audit_write_mean_ms(client.get("/metrics").text)
    if audit_ms is not None:
        lines += ["", "Of the added time, the audit event (its own committed transaction, "
                  f"written before the response) took {audit_ms:.2f} ms on average."]
    return lines


def start_gateway(runtime_url: str, data_dir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    process = subprocess.Popen([
        sys.executable, "-m", "bench.serve_gateway", "--database-url", runtime_url,
        "--data-dir", str(data_dir), "--vectors", str(data_dir / "queries.npy"), "--port", str(port),
    ])
    base = f"http://127.0.0.1:{port}"
    _wait_ready(base, process)
    return base, process


def run(runtime_url: str, args: argparse.Namespace) -> str:
    """Measure through HTTP; return a Markdown section."""
    queries = Geometry(args.seed).queries(args.queries, args.seed + 1000)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        np.save(data_dir / "queries.npy", queries)
        settings = bench_settings(runtime_url, data_dir)
        load_or_create_private_key(data_dir)
        base, process = start_gateway(runtime_url, data_dir)
        try:
            tokens = {c.name: mint_dev_token(settings, **claims(c), ttl_s=3600) for c in cells()}
            host, port = base.removeprefix("http://").split(":")
            with httpx.Client(base_url=base, timeout=60) as client, LeanClient(host, int(port)) as lean:
                lines = _sequential(client, lean, runtime_url, tokens, queries, args.k)
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

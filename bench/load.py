"""Load: throughput, latency and audit completeness of /v1/search and /v1/query under concurrency.

    python bench/load.py [--requests 200] [--concurrency 1,8,32,64] [--deadline 120]
                         [--endpoints search,query] [--workers 1] [--data-dir DIR]

Starts a throwaway gateway the way an operator would: `gateway demo` loads the bundled
corpus (35 documents of two tenants, with group, classification, attribute, named-policy
and embargo rules) into an embedded PostgreSQL under a temporary data dir, then
`gateway serve` runs on a loopback port (extractive answers: no LLM). For each endpoint
and each concurrency it sends a fixed number of requests, stopping early at the deadline,
from that many concurrent clients over keep-alive connections, each request with the
token of one of seven principals in turn (different groups, clearances, regions,
tenants). It prints throughput, latency percentiles, non-200 answers by status, and
compares the requests answered 200 with the audit events the database holds for them
(matched by the request id each request sends as X-Request-ID).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gateway.auth.devkeys import mint_dev_token  # noqa: E402
from gateway.db.embedded import EmbeddedDatabase  # noqa: E402
from gateway.db.roles import DATABASE, with_database  # noqa: E402
from gateway.settings import load_settings  # noqa: E402

PRINCIPALS = (  # (sub, tenant, groups, clearance, region)
    ("alice", "acme", ["engineering"], "internal", "US"),
    ("bob", "acme", ["finance"], "confidential", "EU"),
    ("carol", "acme", ["hr", "managers"], "restricted", "EU"),
    ("erin", "acme", ["legal"], "confidential", "EU"),
    ("frank", "acme", ["contractors"], "public", "US"),
    ("gina", "acme", ["executives", "managers"], "restricted", "US"),
    ("dave", "globex", ["crew"], "internal", "EU"),
)
QUESTIONS = (
    "How much will salaries increase in 2026?",
    "How many weeks of paid parental leave do new parents get?",
    "What is the on-call rotation for the robotics platform?",
    "How long do we keep staff records?",
    "Which vendors need a security review before signing?",
    "What are the safety rules on the vessel deck?",
    "When is the next reorganisation announced?",
    "What is the travel budget per night?",
)


@dataclass
class Run:
    """What one endpoint at one concurrency produced."""

    endpoint: str
    concurrency: int
    prefix: str
    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    answered: set[str] = field(default_factory=set)
    seconds: float = 0.0
    audited: int = 0
    audited_answered: int = 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


async def drive(base_url: str, tokens: list[str], run: Run, requests: int, deadline_s: float) -> None:
    """`run.concurrency` clients send `requests` requests in all, or fewer if the deadline passes."""
    path = f"/v1/{run.endpoint}"
    limits = httpx.Limits(max_connections=run.concurrency, max_keepalive_connections=run.concurrency)
    started = time.perf_counter()
    stop_at = started + deadline_s
    counter = iter(range(requests))
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=deadline_s) as client:

        async def client_loop() -> None:
            for n in counter:
                if time.perf_counter() > stop_at:
                    return
                request_id = f"{run.prefix}-{n}"
                headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}",
                           "X-Request-ID": request_id}
                body = {"query": QUESTIONS[n % len(QUESTIONS)], "top_k": 5}
                run.sent += 1
                sent_at = time.perf_counter()
                try:
                    response = await client.post(path, json=body, headers=headers)
                    status = str(response.status_code)
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                run.latencies.append(time.perf_counter() - sent_at)
                run.statuses[status] += 1
                if status == "200":
                    run.answered.add(request_id)

        await asyncio.gather(*(client_loop() for _ in range(run.concurrency)))
    run.seconds = time.perf_counter() - started


def count_audited(superuser_url: str, run: Run) -> None:
    """Audit events of the run's requests: all of them, and those of requests answered 200."""
    with psycopg.connect(superuser_url) as conn:
        rows = conn.execute(
            "SELECT request_id FROM audit_events WHERE request_id LIKE %s AND status = 'retrieved'",
            (f"{run.prefix}-%",)).fetchall()
    audited = [r[0] for r in rows]
    run.audited = len(audited)
    run.audited_answered = len(run.answered & set(audited))


def report_line(run: Run) -> str:
    errors = ", ".join(f"{s}: {n}" for s, n in sorted(run.statuses.items()) if s != "200") or "none"
    ms = [x * 1000 for x in run.latencies]
    return (f"{run.endpoint:<7}{run.concurrency:>5}{run.sent:>6}{len(run.answered):>9}"
            f"{len(run.answered) / run.seconds:>8.1f}{percentile(ms, 50):>8.0f}{percentile(ms, 95):>8.0f}"
            f"{percentile(ms, 99):>8.0f}{run.audited:>9}  {errors}")


HEADER = (f"{'route':<7}{'conc':>5}{'sent':>6}{'answered':>9}{'req/s':>8}{'p50 ms':>8}"
          f"{'p95 ms':>8}{'p99 ms':>8}{'audited':>9}  errors")


def start_gateway(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """`gateway serve` on `port`, once /health/ready answers."""
    handle = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
                            env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited: see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("gateway did not become ready")


def tokens_for(env: dict[str, str]) -> list[str]:
    settings = load_settings(env, dotenv=None)
    return [mint_dev_token(settings, sub=sub, tenant=tenant, groups=groups, clearance=clearance,
                           attributes={"region": [region]}, ttl_s=4 * 3600)
            for sub, tenant, groups, clearance, region in PRINCIPALS]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint and concurrency")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds per run, at most")
    parser.add_argument("--endpoints", default="search,query")
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    parser.add_argument("--data-dir", type=Path, help="default: a new temporary directory")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="gateway-load-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") and k != "DATABASE_URL"}
    env.update({"GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_LOG_LEVEL": "warning",
                "GATEWAY_LOG_FORMAT": "json", "GATEWAY_CLAIM_ATTRIBUTES": "region",
                "GATEWAY_WORKERS": str(args.workers), "HF_HUB_OFFLINE": "1"})
    print(f"# {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}; data dir {data_dir}")
    subprocess.run([sys.executable, "-m", "gateway.cli", "demo"], env=env, check=True,
                   stdin=subprocess.DEVNULL)
    port = free_port()
    gateway = start_gateway(env, port, data_dir / "gateway.log")
    database = EmbeddedDatabase(data_dir)  # joins the gateway's server, to count audit events
    superuser_url = with_database(database.superuser_url, DATABASE)
    base_url, tokens, runs = f"http://127.0.0.1:{port}", tokens_for(env), []
    try:
        warmup = Run("query", 2, f"warmup-{uuid.uuid4().hex[:6]}")
        asyncio.run(drive(base_url, tokens, warmup, 8, args.deadline))
        print(HEADER)
        session = uuid.uuid4().hex[:6]
        for endpoint in args.endpoints.split(","):
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                run = Run(endpoint, concurrency, f"load-{session}-{endpoint}-c{concurrency}")
                asyncio.run(drive(base_url, tokens, run, args.requests, args.deadline))
                count_audited(superuser_url, run)
                print(report_line(run), flush=True)
                runs.append(run)
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
        database.stop()
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")
    complete = all(r.audited == len(r.answered) == r.audited_answered for r in runs)
    print(f"# every answered request has its audit event, and no other was written: {complete}")
    sys.exit(0 if complete else 1)


if __name__ == "__main__":
    main()

"""100,000 events export in bounded memory (HTTP stream and CLI file + manifest) and verify offline.

Memory is measured as the peak resident set size (VmHWM, or wait4's ru_maxrss) of the
process doing the export, against the same process before it exported: tracemalloc
would slow the export path down tenfold.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gateway.audit.offline import verify_file
from gateway.auth.devkeys import mint_dev_token
from tests.support.audit import audit_kit, bulk_chain
from tests.support.process import gateway_env, running_gateway

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 100_000
GROWTH_BOUND_KIB = 48 * 1024


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _server_pid(port: int) -> int:
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    return int(out.split("pid=")[1].split(",")[0])


def _cli_peak_rss_kib(args: list[str], env: dict[str, str], cwd: Path) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read() if proc.stderr else ""
    return usage.ru_maxrss


def _head(path: Path, lines: int) -> str:
    """SHA-256 of the first `lines` lines."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for _, line in zip(range(lines), handle, strict=False):
            digest.update(line)
    return digest.hexdigest()


async def test_a_hundred_thousand_events_stream_in_bounded_memory_and_verify_offline(settings, db_urls, tmp_path):
    async with audit_kit(settings) as kit:
        started = time.perf_counter()
        bulk_chain(db_urls.owner, kit.signer, tenant="acme", count=EVENTS, start=datetime.now(UTC) - timedelta(days=2),
                   step=timedelta(seconds=1), checkpoint_every=10_000, batch=10_000)
        print(f"\ngenerated {EVENTS} chained events in {time.perf_counter() - started:.1f} s")
    env = gateway_env({"DATABASE_URL": db_urls.runtime, "GATEWAY_DATA_DIR": str(settings.database.data_dir),
                       "GATEWAY_LOG_LEVEL": "warning"})
    headers = {"Authorization": f"Bearer {mint_dev_token(settings, sub='audrey', roles=['auditor'], tenant='acme')}"}
    streamed = tmp_path / "api.jsonl"
    with running_gateway(env, tmp_path) as base:
        pid = _server_pid(int(base.rsplit(":", 1)[1]))
        assert httpx.get(base + "/v1/audit/events", params={"subject": "user1", "until": "2000-01-01T00:00:00Z"},
                         headers=headers).status_code == 200
        before = _peak_rss_kib(pid)
        started = time.perf_counter()
        with streamed.open("wb") as sink, httpx.stream("GET", base + "/v1/audit/events", headers=headers,
                                                       timeout=300) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                sink.write(chunk)
        growth = _peak_rss_kib(pid) - before
    size = streamed.stat().st_size
    print(f"HTTP export: {EVENTS} events, {size / 2**20:.1f} MiB in {time.perf_counter() - started:.1f} s; "
          f"server peak RSS grew by {growth / 1024:.1f} MiB (from {before / 1024:.1f} MiB)")
    assert growth < GROWTH_BOUND_KIB < size / 1024

    out = tmp_path / "cli.jsonl"
    idle = _cli_peak_rss_kib(["audit", "export", "--tenant", "acme", "--since", "2100-01-01T00:00:00Z",
                              "--out", str(tmp_path / "empty.jsonl")], env, tmp_path)
    started = time.perf_counter()
    peak = _cli_peak_rss_kib(["audit", "export", "--tenant", "acme", "--out", str(out)], env, tmp_path)
    print(f"CLI export: {time.perf_counter() - started:.1f} s; peak RSS {peak / 1024:.1f} MiB "
          f"(an empty export: {idle / 1024:.1f} MiB)")
    assert peak - idle < GROWTH_BOUND_KIB

    started = time.perf_counter()
    report = verify_file(out, public_key=kit.signer.jwk).as_dict()
    print(f"offline verify: {time.perf_counter() - started:.1f} s")
    assert report["ok"], report["first_bad_event"]
    manifest = json.loads((tmp_path / "cli.jsonl.manifest.json").read_text())
    # The generated events plus the audit events of the three exports before this one.
    assert report["events_checked"] == manifest["events"] == EVENTS + 3
    assert report["checkpoints_checked"] == 10
    assert _head(streamed, EVENTS) == _head(out, EVENTS)

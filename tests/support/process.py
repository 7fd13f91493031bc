"""Run the real `gateway` command as a subprocess and wait for it to answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.server import free_port


def gateway_env(extra: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> dict[str, str]:
    """A clean environment for the CLI: no inherited GATEWAY_* or DATABASE_URL."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GATEWAY_") and k != "DATABASE_URL"}
    env.update({"HF_HUB_OFFLINE": "1", "GATEWAY_LOG_FORMAT": "json"})
    env.update(extra or {})
    return env


def run_cli(args: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `gateway ARGS...` to completion."""
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], env=dict(env), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@dataclass
class GatewayProcess:
    """A running `gateway serve` subprocess, its base URL and what it has written so far."""

    proc: subprocess.Popen[str]
    base_url: str
    lines: list[str] = field(default_factory=list)

    def drain(self) -> None:
        """Read the process's output as it comes (an unread pipe would block its logging)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)


@contextmanager
def gateway_process(env: Mapping[str, str], cwd: Path, *, timeout: float = 90) -> Iterator[GatewayProcess]:
    """Start `gateway serve` on a free port; yield it once /health/live answers.

    On exit it is sent SIGINT (if still running) and reaped.
    """
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
        env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL,
    )
    process = GatewayProcess(proc, f"http://127.0.0.1:{port}")
    reader = threading.Thread(target=process.drain, daemon=True)
    reader.start()
    base = process.base_url
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                reader.join(timeout=5)
                raise RuntimeError(f"gateway exited early: {process.output()}")
            try:
                if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not start in time")
            time.sleep(0.2)
        yield process
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_gateway(env: Mapping[str, str], cwd: Path, *, timeout: float = 90) -> Iterator[str]:
    """Start `gateway serve` on a free port; yield its base URL once /health/live answers."""
    with gateway_process(env, cwd, timeout=timeout) as process:
        yield process.base_url

"""A TCP fault proxy: sits between the gateway and a dependency and misbehaves on request.

The proxy listens on a loopback port and forwards each connection to an upstream TCP
address or unix socket (the embedded PostgreSQL listens only on a unix socket). It runs
its own event loop in a background thread. Modes, switched at any time with
`set_mode`, apply to new connections and to the ones already open:

- `pass`      forward bytes both ways;
- `latency`   forward, but hold each chunk `latency_s` seconds first;
- `blackhole` accept and keep connections open, forward nothing (a silent network:
              held bytes flow again if the mode goes back to `pass`);
- `reset`     abort every connection with a TCP RST, and reset new ones on accept;
- `refuse`    stop listening (connects get ECONNREFUSED) and close open connections.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

MODES = ("pass", "latency", "blackhole", "reset", "refuse")
_CHUNK = 64 * 1024


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client side and the upstream side."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                _abort_with_rst(writer)
        for task in self.tasks:
            task.cancel()


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """A loopback TCP proxy to `upstream` ((host, port) or a unix socket path)."""

    def __init__(self, upstream: tuple[str, int] | str) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.latency_s = 0.0
        self.port = 0
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing: asyncio.Event | None = None

    # -- control (called from the test's thread) -------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def set_mode(self, mode: str, *, latency_s: float = 0.0) -> None:
        """Switch mode; returns once the change is in effect (listener closed, links reset)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self._call(self._apply(mode, latency_s))

    def stop(self) -> None:
        self._call(self._apply("refuse", 0.0))
        self._call(asyncio.sleep(0.05))  # let the cancelled links unwind
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    @property
    def open_links(self) -> int:
        return len(self._links)

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)  # type: ignore[arg-type]

    # -- inside the proxy's loop -----------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _apply(self, mode: str, latency_s: float) -> None:
        assert self._flowing is not None
        self.mode, self.latency_s = mode, latency_s
        if mode == "blackhole":
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode in ("reset", "refuse"):
            for link in list(self._links):
                link.reset()
            self._links.clear()
        if mode == "refuse" and self._server is not None:
            self._server.close()
            self._server = None
        elif mode != "refuse" and self._server is None:
            await self._listen()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(client=writer, tasks=[asyncio.current_task()])  # type: ignore[list-item]
        if self.mode in ("reset", "refuse"):
            link.reset()
            return
        self._links.add(link)
        try:
            await self._wait_flowing()
            up_reader, up_writer = await self._open_upstream()
        except OSError:
            self._links.discard(link)
            link.reset()
            return
        link.upstream = up_writer
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._links.discard(link)
            for side in (writer, up_writer):
                side.close()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if isinstance(self.upstream, str):
            return await asyncio.open_unix_connection(self.upstream)
        host, port = self.upstream
        return await asyncio.open_connection(host, port)

    async def _wait_flowing(self) -> None:
        assert self._flowing is not None
        await self._flowing.wait()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                with suppress(OSError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            await self._wait_flowing()
            if self.mode == "latency" and self.latency_s > 0:
                await asyncio.sleep(self.latency_s)
            writer.write(data)
            await writer.drain()


def postgres_socket(url: str) -> str:
    """The unix socket path of a `postgresql://...?host=/socket/dir` URL."""
    parsed = make_url(url)
    directory = parsed.query["host"]
    return f"{directory}/.s.PGSQL.{parsed.port or 5432}"


def via_proxy(url: str, proxy: FaultProxy) -> str:
    """The same role and database, reached over TCP through `proxy`."""
    parsed = make_url(url)
    return parsed.set(host="127.0.0.1", port=proxy.port,
                      query={"sslmode": "disable", "gssencmode": "disable"}).render_as_string(
                          hide_password=False)


@contextmanager
def fault_proxy(upstream: tuple[str, int] | str) -> Iterator[FaultProxy]:
    """A started proxy to `upstream`, stopped at the end of the block."""
    proxy = FaultProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()

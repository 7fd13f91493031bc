"""A minimal HTTP/1.1 client for timing the gateway, not the client.

httpx spends 1.3-2.2 ms of Python per `POST /v1/search` here (building the request,
reading and decoding a ten-chunk JSON response), on the same two cores as the gateway
and PostgreSQL, so an HTTP figure taken with it includes that. This client sends
pre-encoded requests over one keep-alive socket and reads back only the status line,
the headers and `Content-Length` bytes of body: tens of microseconds per request.
It understands only what the gateway answers (a complete, non-chunked response).
"""

from __future__ import annotations

import json
import socket
from typing import Any


class LeanClient:
    """One keep-alive connection to `host:port`."""

    def __init__(self, host: str, port: int) -> None:
        self._host = f"{host}:{port}"
        self._socket = socket.create_connection((host, port))
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pending = b""

    def close(self) -> None:
        """Close the connection."""
        self._socket.close()

    def __enter__(self) -> LeanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def encode_post(self, path: str, body: Any, headers: dict[str, str]) -> bytes:
        """A complete POST request with a JSON body, ready to send (encode once, send many times)."""
        payload = json.dumps(body).encode()
        lines = [f"POST {path} HTTP/1.1", f"Host: {self._host}", "Content-Type: application/json",
                 f"Content-Length: {len(payload)}", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload

    def send(self, request: bytes) -> tuple[int, bytes]:
        """Send one encoded request and return the response's status and body."""
        self._socket.sendall(request)
        while b"\r\n\r\n" not in self._pending:
            self._pending += self._receive()
        head, _, rest = self._pending.partition(b"\r\n\r\n")
        status_line, *header_lines = head.split(b"\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in header_lines
                       if line.lower().startswith(b"content-length:")), None)
        if length is None:
            raise ValueError("the response has no Content-Length")
        while len(rest) < length:
            rest += self._receive()
        self._pending = rest[length:]
        return int(status_line.split()[1]), rest[:length]

    def _receive(self) -> bytes:
        data = self._socket.recv(1 << 16)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

"""A stand-in IdP on loopback that tests control: discovery + JWKS, key rotation, outages.

It serves `/.well-known/openid-configuration` and `/jwks.json` from a real HTTP server
thread, counts requests per path, and can answer errors (`failing = True`), wait before
answering (`delay_s`), announce a different issuer, or stop listening altogether.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gateway.settings import Settings
from tests.support.jose import SigningKey


class StubIdp:
    """Publishes the public halves of `keys`; everything about it is adjustable at run time."""

    def __init__(self, keys: list[SigningKey] | None = None) -> None:
        self.keys: list[SigningKey] = list(keys or [])
        self.extra_jwks: list[dict[str, Any]] = []
        self.failing = False
        self.delay_s = 0.0
        self.announced_issuer: str | None = None
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks.json"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys] + list(self.extra_jwks)}

    def count(self, path: str = "/jwks.json") -> int:
        with self._lock:
            return self.requests[path]

    def start(self) -> StubIdp:
        """Listen (again) on the same port, once stopped."""
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused, as when the IdP is down."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StubIdp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, path: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests[path] += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.failing:
            return 503, {"error": "temporarily_unavailable"}
        if path == "/.well-known/openid-configuration":
            return 200, {"issuer": self.announced_issuer or self.issuer,
                         "jwks_uri": self.jwks_url, "id_token_signing_alg_values_supported": ["RS256"]}
        if path == "/jwks.json":
            return 200, self.jwks()
        return 404, {"error": "not_found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                status, body = idp._answer(self.path)
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


AUDIENCE = "api://retrieval-gateway"


def oidc_settings(base: Settings, idp: StubIdp, **auth: Any) -> Settings:
    """`base` switched to OIDC mode against `idp` (AuthSettings fields may be overridden)."""
    fields = {"oidc_issuer": idp.issuer, "audience": AUDIENCE, **auth}
    return base.replace(auth=dataclasses.replace(base.auth, **fields))

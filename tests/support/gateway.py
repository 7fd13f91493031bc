"""A gateway on real HTTP for end-to-end tests, plus token and ingestion helpers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.app import create_app
from gateway.auth.devkeys import mint_dev_token
from gateway.cli.serve import uvicorn_options
from gateway.settings import Settings
from tests.support.server import serve_in_thread


@dataclass
class LiveGateway:
    """Base URL and settings of a running gateway."""

    base_url: str
    settings: Settings

    def token(self, sub: str, **claims: Any) -> str:
        return mint_dev_token(self.settings, sub=sub, **claims)

    def client(self, sub: str, **claims: Any) -> httpx.Client:
        token = self.token(sub, **claims)
        return httpx.Client(base_url=self.base_url, timeout=60,
                            headers={"Authorization": f"Bearer {token}"})


@contextmanager
def live_gateway(settings: Settings, **components: Any) -> Iterator[LiveGateway]:
    """Serve create_app(settings, **components) on loopback, with the HTTP bounds of `gateway serve`."""
    options = uvicorn_options(settings)
    bounds = {k: options[k] for k in ("http", "h11_max_incomplete_event_size", "limit_concurrency")}
    with serve_in_thread(create_app(settings, **components), **bounds) as base:
        yield LiveGateway(base, settings)


def ingest(gw: LiveGateway, documents: Sequence[dict[str, Any]], *, tenant: str = "acme") -> list[dict[str, Any]]:
    """POST each document as an ingest-role principal of `tenant`; return the 201 bodies."""
    with gw.client("ingest-bot", roles=["ingest"], tenant=tenant) as client:
        bodies = []
        for doc in documents:
            response = client.post("/v1/documents", json=doc)
            assert response.status_code == 201, response.text
            bodies.append(response.json())
        return bodies

"""Serve the real gateway for the HTTP benchmark, with precomputed query vectors.

    python -m bench.serve_gateway --database-url URL --data-dir DIR --vectors Q.npy --port N

The only stand-in is the embedder: the query text `q<i>` maps to row i of the vectors
file, so embedding cost is excluded from the measured gateway latency (it is reported
separately). Everything else is `create_app`, served with `gateway serve`'s uvicorn options:
HTTP, auth, policy, retrieval, audit.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import uvicorn

from gateway.app import create_app
from gateway.cli.serve import uvicorn_options
from gateway.settings import (
    AuthSettings,
    DatabaseSettings,
    ServerSettings,
    Settings,
    load_settings,
)


class PrecomputedEmbedder:
    """Maps `q<i>` to the i-th precomputed vector; documents are never embedded here.

    Awaited on the event loop (`aembed_query`), as a remote embedder is: the embedding
    stage is left out of the gateway's figures whole, the bundled model's hand-off to a
    worker thread included.
    """

    dimension = 384

    def __init__(self, vectors: np.ndarray) -> None:
        self._vectors = vectors

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self._vectors[int(text.removeprefix("q"))]]

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        raise NotImplementedError("the HTTP benchmark does not ingest")


def bench_settings(database_url: str, data_dir: Path) -> Settings:
    """The gateway's settings for the benchmark (retrieval knobs from the environment)."""
    return Settings(
        database=DatabaseSettings(url=database_url, data_dir=data_dir, pool_size=16),
        server=ServerSettings(log_level="warning", log_format="json", max_concurrency=256),
        auth=AuthSettings(claim_attributes=("region",)),
        retrieval=load_settings().retrieval,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--vectors", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = bench_settings(args.database_url, args.data_dir)
    app = create_app(settings, embedder=PrecomputedEmbedder(np.load(args.vectors)))
    # The production server's options (HTTP parser, limits), on this benchmark's port.
    uvicorn.run(app, **{**uvicorn_options(settings), "host": "127.0.0.1", "port": args.port, "workers": 1})


if __name__ == "__main__":
    main()

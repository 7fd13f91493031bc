"""Ingestion throughput: chunks per second with the local embedder and with precomputed vectors.

    python bench/ingest.py [--documents 1000] [--batch-size 64]

Starts a throwaway embedded PostgreSQL (or uses DATABASE_URL + GATEWAY_MIGRATION_DATABASE_URL),
generates documents of a few paragraphs each, and ingests them through IngestionService
(extraction, chunking, embedding, one transaction per batch) twice, into two tenants:

- local:       the bundled all-MiniLM-L6-v2 on this machine (the default embedder);
- precomputed: vectors looked up from a table filled before the clock starts, so the figure
               is everything except the model (extraction, chunking, hashing, SQL writes).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gateway.db import migrate  # noqa: E402
from gateway.db.embedded import EmbeddedDatabase  # noqa: E402
from gateway.db.engine import create_engine, session_factory  # noqa: E402
from gateway.ingestion.chunking import Chunker  # noqa: E402
from gateway.ingestion.documents import DocumentInput, prepare  # noqa: E402
from gateway.ingestion.embedders import LocalEmbedder  # noqa: E402
from gateway.ingestion.service import IngestionService  # noqa: E402
from gateway.ingestion.tokens import WordPieceTokenizer  # noqa: E402
from gateway.settings import DatabaseSettings, Settings  # noqa: E402
from policies.principal import Principal  # noqa: E402

WORDS = ["policy", "budget", "leave", "travel", "invoice", "contract", "release", "incident",
         "customer", "revenue", "approval", "quarterly", "security", "onboarding", "audit", "vendor",
         "robot", "warehouse", "gripper", "fleet", "manager", "shipment", "forecast", "salary", "review"]


class PrecomputedEmbedder:
    """Vectors computed before timing starts, looked up by text."""

    dimension = 384

    def __init__(self, texts: Sequence[str]) -> None:
        rng = random.Random(1)
        self.table = {}
        for text in texts:
            vector = [rng.gauss(0, 1) for _ in range(self.dimension)]
            norm = math.sqrt(sum(x * x for x in vector))
            self.table[text] = [x / norm for x in vector]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.table[text] for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.table[text]


def generate(count: int, tenant: str) -> list[DocumentInput]:
    rng = random.Random(42)
    documents = []
    for n in range(count):
        paragraphs = [f"# Note {n}"] + [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 90))).capitalize() + "."
            for _ in range(rng.randint(2, 6))
        ]
        documents.append(DocumentInput(external_id=f"note-{n:05d}", title=f"Note {n}",
                                       content="\n\n".join(paragraphs), content_type="text/markdown",
                                       access={"allow": ["everyone"], "tenant": tenant}))
    return documents


async def run(settings: Settings, embedder, documents, tenant: str, batch_size: int) -> tuple[int, float]:
    engine = create_engine(settings.database.url or "", settings.database)
    service = IngestionService(session_factory(engine), embedder, settings, tokenizer=WordPieceTokenizer())
    principal = Principal(subject="bench", tenant=tenant, roles=("ingest",))
    service._chunker.chunk(prepare(documents[0], principal, settings.policy.classification_levels(),
                                   max_bytes=10**7).extracted)  # load the tokenizer untimed
    chunks = 0
    started = time.perf_counter()
    for first in range(0, len(documents), batch_size):
        for outcome in await service.ingest_many(principal, documents[first:first + batch_size]):
            chunks += getattr(outcome, "chunks", 0)
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return chunks, elapsed


def all_chunk_texts(settings: Settings, documents, tenant: str) -> list[str]:
    chunker = Chunker(WordPieceTokenizer(), settings.ingestion.chunk_tokens,
                      settings.ingestion.chunk_overlap_tokens)
    principal = Principal(subject="bench", tenant=tenant, roles=("ingest",))
    levels = settings.policy.classification_levels()
    return [c.text for d in documents
            for c in chunker.chunk(prepare(d, principal, levels, max_bytes=10**7).extracted)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    server = None
    url = os.environ.get("DATABASE_URL")
    if url is None:
        server = EmbeddedDatabase(Path(tempfile.mkdtemp(prefix="bench-ingest-")))
        urls = server.prepare()
        migrate.upgrade(urls.owner)
        url = urls.runtime
    elif os.environ.get("GATEWAY_MIGRATION_DATABASE_URL"):
        migrate.upgrade(os.environ["GATEWAY_MIGRATION_DATABASE_URL"])
    settings = Settings(database=DatabaseSettings(url=url))
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"# {args.documents} documents, batches of {args.batch_size}, "
          f"chunks of {settings.ingestion.chunk_tokens} word pieces")
    print(f"{'embedder':<12} {'documents':>9} {'chunks':>7} {'seconds':>8} {'chunks/s':>9}")
    try:
        local = LocalEmbedder(batch_size=settings.embedding.batch_size)
        local.load()
        pre_docs = generate(args.documents, "bench-pre")
        precomputed = PrecomputedEmbedder(all_chunk_texts(settings, pre_docs, "bench-pre"))
        for name, embedder, tenant, docs in (
            ("precomputed", precomputed, "bench-pre", pre_docs),
            ("local", local, "bench-local", generate(args.documents, "bench-local")),
        ):
            chunks, seconds = asyncio.run(run(settings, embedder, docs, tenant, args.batch_size))
            print(f"{name:<12} {len(docs):>9} {chunks:>7} {seconds:>8.1f} {chunks / seconds:>9.0f}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()

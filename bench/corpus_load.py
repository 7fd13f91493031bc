"""Load a synthetic corpus into the real schema by COPY, then build the HNSW index once.

Access columns are computed by the same functions ingestion uses
(`policies.model.parse_access` -> `gateway.db.access.access_column_values`), so
the stored rows are exactly what production would store. Loading runs as the
superuser (no RLS on writes); the migrations' triggers still fire. The HNSW index
is dropped before the COPY and rebuilt afterwards with the migration's definition,
which is how a bulk load is done in practice.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex

from bench.corpus import CorpusGenerator, SyntheticDocument, sha256
from bench.database import open_database
from gateway.db import migrate
from gateway.db.access import access_column_values, chunk_column_values
from gateway.db.models import Chunk
from policies.model import ClassificationLevels, parse_access

MANIFEST_VERSION = 3
HNSW_NAME = "ix_chunks_embedding_hnsw"
DOCUMENT_COLUMNS = ("id", "tenant", "allow", "deny", "classification", "conditions", "valid_until",
                    "external_id", "title", "content_type", "body", "content_sha256", "version",
                    "access")
DOCUMENT_TYPES = ("uuid", "text", "text[]", "text[]", "int2", "jsonb", "timestamptz", "text", "text",
                  "text", "text", "text", "int4", "jsonb")
CHUNK_COLUMNS = ("tenant", "allow", "deny", "classification", "conditions", "valid_until",
                 "document_id", "document_version", "ordinal", "text", "content_sha256",
                 "char_start", "char_end", "embedding")
CHUNK_TYPES = ("text", "text[]", "text[]", "int2", "jsonb", "timestamptz", "uuid", "int4", "int4",
               "text", "text", "int4", "int4", "vector")
BATCH_CHUNKS = 50_000


def hnsw_index_sql() -> str:
    """The schema's HNSW index definition (models = migrations, checked by a test)."""
    index = next(i for i in Chunk.__table__.indexes if i.name == HNSW_NAME)
    return str(CreateIndex(index).compile(dialect=postgresql.dialect()))


def manifest(chunks: int, seed: int) -> dict[str, int | str]:
    """What identifies a loaded corpus (a rerun with the same values reuses it).

    The schema is fingerprinted by the migrations' text: an edited migration keeps its
    revision id, and a corpus loaded under the old text must not be measured as current.
    """
    return {"version": MANIFEST_VERSION, "chunks": chunks, "seed": seed, "schema": schema_fingerprint()}


def schema_fingerprint() -> str:
    """SHA-256 over the migration files, in revision order."""
    digest = hashlib.sha256()
    for path in sorted((migrate.ROOT / "migrations" / "versions").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def loaded(superuser_url: str, wanted: dict[str, int | str]) -> bool:
    """Whether the database already holds exactly this corpus, fully indexed."""
    with psycopg.connect(superuser_url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_manifest (body jsonb NOT NULL)")
        row = conn.execute("SELECT body FROM bench_manifest").fetchone()
        conn.commit()
    return row is not None and row[0] == wanted


def benchmark_arguments(description: str | None, *, chunks: int, queries: int) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares: corpus size, queries, k, seed."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=chunks)
    parser.add_argument("--queries", type=int, default=queries)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    return parser


@contextmanager
def loaded_corpus(data_dir: Path, chunks: int, seed: int, *,
                  settings: Mapping[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """The superuser and runtime URLs of the corpus `bench.filtered_recall` loaded in `data_dir`.

    For the companion benchmarks: the server is started with `settings` and stopped
    after; without that corpus there the benchmark stops and says what to run first.
    """
    db = open_database(data_dir, None, settings=settings)
    try:
        if db.urls.superuser is None or not loaded(db.urls.superuser, manifest(chunks, seed)):
            raise SystemExit(f"no {chunks:,}-chunk corpus in {data_dir}: "
                             "run python -m bench.filtered_recall first")
        yield db.urls.superuser, db.urls.runtime
    finally:
        db.close()


def load(superuser_url: str, chunks: int, seed: int, log: bool = True) -> None:
    """Replace the database's content with the corpus `(chunks, seed)` and index it."""
    levels = ClassificationLevels()
    started = time.perf_counter()
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_manifest (body jsonb NOT NULL)")
        conn.execute("DELETE FROM bench_manifest")
        # the audit trail is append-only; it keeps its events
        conn.execute("TRUNCATE chunk_postings, chunks, documents")
        conn.execute(f"DROP INDEX IF EXISTS {HNSW_NAME}")
        register_vector(conn)
        written = 0
        for batch in _batches(CorpusGenerator(chunks, seed).documents()):
            with conn.transaction():
                _copy_batch(conn, batch, levels)
            written += sum(len(d.texts) for d in batch)
            if log:
                print(f"  loaded {written:,} chunks ({time.perf_counter() - started:.0f}s)", flush=True)
        if log:
            print("  building the HNSW index...", flush=True)
        conn.execute(hnsw_index_sql())
        conn.execute("VACUUM ANALYZE documents")
        conn.execute("VACUUM ANALYZE chunks")
        conn.execute("VACUUM ANALYZE chunk_postings")
        conn.execute("INSERT INTO bench_manifest VALUES (%s)", (Jsonb(manifest(chunks, seed)),))
    if log:
        print(f"  corpus ready in {time.perf_counter() - started:.0f}s", flush=True)


def _batches(documents: Iterable[SyntheticDocument]) -> Iterator[list[SyntheticDocument]]:
    batch: list[SyntheticDocument] = []
    size = 0
    for doc in documents:
        batch.append(doc)
        size += len(doc.texts)
        if size >= BATCH_CHUNKS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _copy_batch(conn: psycopg.Connection, batch: list[SyntheticDocument],
                levels: ClassificationLevels) -> None:
    values = [access_column_values(parse_access(d.access, levels), levels, tenant=d.tenant)
              for d in batch]
    with conn.cursor().copy(f"COPY documents ({', '.join(DOCUMENT_COLUMNS)}) FROM STDIN "
                            "(FORMAT BINARY)") as copy:
        copy.set_types(list(DOCUMENT_TYPES))
        for doc, v in zip(batch, values, strict=True):
            body = "\n\n".join(doc.texts)
            copy.write_row((doc.id, v["tenant"], v["allow"], v["deny"], v["classification"],
                            Jsonb(v["conditions"]), v["valid_until"], doc.external_id,
                            f"Synthetic {doc.external_id}", "text/plain", body, sha256(body), 1,
                            Jsonb(json.loads(json.dumps(v["access"])))))
    with conn.cursor().copy(f"COPY chunks ({', '.join(CHUNK_COLUMNS)}) FROM STDIN "
                            "(FORMAT BINARY)") as copy:
        copy.set_types(list(CHUNK_TYPES))
        for doc, v in zip(batch, values, strict=True):
            c = chunk_column_values(v)
            offset = 0
            for ordinal, (text, vector) in enumerate(zip(doc.texts, doc.vectors, strict=True)):
                copy.write_row((c["tenant"], c["allow"], c["deny"], c["classification"],
                                Jsonb(c["conditions"]), c["valid_until"], doc.id, 1, ordinal, text,
                                sha256(text), offset, offset + len(text), vector))
                offset += len(text) + 2

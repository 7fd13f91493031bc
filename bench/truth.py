"""Ground truth outside the database: exact k-NN over each cell's permitted set, in NumPy.

The permitted set of a cell is read *as that principal* (runtime role, principal bound,
access predicate), so it is exactly what production may return; the vectors are read
once by the superuser with a binary COPY. Distances are recomputed in float64 for the
final ranking, so near-ties are not decided by float32 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import psycopg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.corpus import DIMENSION
from gateway.db.access import bind_principal, chunk_access_predicate
from gateway.db.models import Chunk
from policies.model import ClassificationLevels
from policies.principal import Principal

_ROW = np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i8"), ("vec_len", ">i4"),
                 ("dim", ">i2"), ("unused", ">i2"), ("v", ">f4", (DIMENSION,))])
_HEADER = 19


@dataclass
class Vectors:
    """Every chunk's id and unit vector, ordered by id."""

    ids: np.ndarray
    matrix: np.ndarray

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of these chunk ids."""
        return np.searchsorted(self.ids, ids)


def read_vectors(superuser_url: str) -> Vectors:
    """All (id, embedding) pairs by one binary COPY, parsed without per-row Python work."""
    buffer = bytearray()
    with psycopg.connect(superuser_url) as conn, conn.cursor().copy(
        "COPY (SELECT id, embedding FROM chunks ORDER BY id) TO STDOUT (FORMAT BINARY)"
    ) as copy:
        for block in copy:
            buffer += block
    body = memoryview(buffer)[_HEADER: len(buffer) - 2]
    rows = np.frombuffer(body, dtype=_ROW)
    return Vectors(rows["id"].astype(np.int64), rows["v"].astype(np.float32))


async def permitted_ids(engine: AsyncEngine, principal: Principal, levels: ClassificationLevels,
                        now: datetime) -> np.ndarray:
    """The ids this principal may see, read through the production access path."""
    async with engine.connect() as connection, connection.begin():
        await bind_principal(connection, principal, levels, now)
        predicate = chunk_access_predicate(principal, now, levels)
        ids = (await connection.execute(select(Chunk.id).where(predicate))).scalars().all()
    return np.sort(np.fromiter(ids, dtype=np.int64, count=len(ids)))


def nearest(vectors: Vectors, permitted: np.ndarray, queries: np.ndarray, k: int) -> list[np.ndarray]:
    """For each query, the ids of its k nearest permitted chunks (cosine), best first."""
    if permitted.size == 0:
        return [np.empty(0, dtype=np.int64) for _ in queries]
    subset = vectors.matrix[vectors.rows(permitted)]
    wide = min(k + 8, permitted.size)
    similarity = subset @ queries.T  # (permitted, queries), float32
    result = []
    for q in range(queries.shape[0]):
        column = similarity[:, q]
        if wide < column.size:
            candidates = np.argpartition(-column, wide - 1)[:wide]
        else:
            candidates = np.arange(column.size)
        exact = subset[candidates].astype(np.float64) @ queries[q].astype(np.float64)
        order = candidates[np.lexsort((permitted[candidates], -exact))][:k]
        result.append(permitted[order])
    return result


def hidden_nearer(vectors: Vectors, permitted: np.ndarray, queries: np.ndarray,
                  truth: list[np.ndarray]) -> np.ndarray:
    """Per query: chunks the principal may NOT see that are nearer than its k-th permitted result.

    This is the work a filtered HNSW scan must skip, and what its latency can reveal.
    """
    mask = np.zeros(vectors.ids.size, dtype=bool)
    mask[vectors.rows(permitted)] = True
    counts = np.zeros(queries.shape[0], dtype=np.int64)
    for q, ids in enumerate(truth):
        if ids.size == 0:
            continue
        similarity = vectors.matrix @ queries[q]
        bound = float(vectors.matrix[vectors.rows(ids[-1:])][0] @ queries[q])
        counts[q] = int(np.count_nonzero((similarity > bound) & ~mask))
    return counts

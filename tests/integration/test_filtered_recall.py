"""Recall of the planner on a 20k-chunk synthetic corpus, against exact search in NumPy over
the reference evaluator's permitted set (recall, not timing)."""

from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest

from bench.corpus import Geometry
from bench.measure import recall
from bench.truth import nearest, read_vectors
from gateway.settings import RetrievalSettings
from policies.principal import Principal
from tests.support.retrieval import Search, chunk_ids, corpus_database, permitted_chunk_ids

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHUNKS = 20_000
K = 10
NOW = datetime.now(UTC)
EU = {"region": ("EU",)}
# The whole-tenant cell is an HNSW search, and on this clustered corpus a graph build can
# leave a query's greedy descent in another cluster: that query finds none of its ten (the
# cell 0.98 over 50 queries). Rebuilds of this corpus's index measured it in 4 of 114 at
# the default candidate list (64), 1 of 101 at 100 (and once in a full test run), none
# of 46 at 200. A deployment that wants 0.99 for its broadest callers raises
# GATEWAY_HNSW_EF_SEARCH (docs/benchmarks.md); the test runs the planner so configured.
RECALL_SETTINGS = RetrievalSettings(ef_search=200)
CELLS = {"100%": ("staff", (0.9, 1.0)), "1%": ("sel-1pct", (0.005, 0.02)),
         "0.1%": (None, (0.0005, 0.002))}  # None: the department group nearest 0.1%


def _group_nearest(superuser_url, share):
    with psycopg.connect(superuser_url) as conn:
        counts = conn.execute("SELECT g, count(*) FROM chunks, unnest(allow) AS g "
                              "WHERE g LIKE 'group:dept-%' GROUP BY g").fetchall()
    name, _ = min(counts, key=lambda row: abs(row[1] - share * CHUNKS))
    return name.removeprefix("group:")


def _principal(corpus, cell):
    group, bounds = CELLS[cell]
    group = group or _group_nearest(corpus.superuser, 0.001)
    return Principal(subject="reader", tenant="acme", groups=(group,), clearance="restricted",
                     attributes=EU), bounds


@pytest.fixture(scope="module")
def corpus(pg_server, template_urls):
    yield from corpus_database(pg_server, CHUNKS)


@pytest.mark.parametrize("cell", list(CELLS))
async def test_planner_recall_at_10_is_at_least_0_99(corpus, cell):
    principal, (low, high) = _principal(corpus, cell)
    vectors = read_vectors(corpus.superuser)
    permitted = np.array(sorted(permitted_chunk_ids(corpus.superuser, principal, NOW)), dtype=np.int64)
    assert low <= permitted.size / CHUNKS <= high  # the cell is what its name says
    queries = Geometry(7).queries(50, seed=2024)
    truth = nearest(vectors, permitted, queries, K)
    search = Search(corpus.runtime, RECALL_SETTINGS)
    try:
        found = [np.array(chunk_ids(await search.retrieve(principal, q.tolist(), K, NOW)))
                 for q in queries]
    finally:
        await search.close()
    assert all(f.size == min(K, permitted.size) for f in found)
    measured = recall(found, truth, K)
    assert measured >= 0.99, measured

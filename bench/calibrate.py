"""Measure the exact / HNSW crossover that sets GATEWAY_EXACT_SCAN_THRESHOLD.

Principals holding one department group (their sizes follow the corpus's Zipf law)
give permitted sets from a few hundred rows to a sixth of the corpus. For each we time
the planner's exact plan and its HNSW plan (with its fallback, as production runs it)
and report where exact stops being cheaper, and the threshold that crossover implies
under the planner's cost model (postings scored against HNSW tuples visited, see
`gateway.retrieval.planner`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np

from bench.measure import Runner, percentiles, recall
from bench.truth import Vectors, nearest, permitted_ids
from gateway.retrieval.planner import MAX_EF_SEARCH, Estimate, RetrievalPlanner
from gateway.retrieval.plans import Plan
from gateway.retrieval.service import Retriever
from policies.principal import Principal

DEPARTMENTS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 199)
QUERIES = 40


class _Forced(RetrievalPlanner):
    """The planner with its choice fixed to one kind of plan."""

    def __init__(self, inner: RetrievalPlanner, kind: str) -> None:
        self.__dict__.update(inner.__dict__)
        self._kind = kind

    def choose(self, estimate: Estimate, k: int, keys: int) -> Plan:
        if self._kind == "exact":
            return self.exact(estimate, k, keys)
        return self.ann(max(estimate.permitted, 1), estimate.index_rows, k)


async def measure(runner: Runner, vectors: Vectors, queries: np.ndarray, k: int) -> str:
    """A Markdown table of exact vs HNSW latency by permitted-set size, and the crossover."""
    planner = runner.retriever._planner  # noqa: SLF001 - the bench reuses the configured planner
    lines = ["Exact vs HNSW by permitted-set size (principals holding one department group, "
             f"{QUERIES} queries each, database p50 ms; HNSW includes its exact fallback when short):", "",
             "| permitted | visible | exact p50 | hnsw p50 | hnsw recall |", "|---|---|---|---|---|"]
    points = []
    for department in DEPARTMENTS:
        principal = Principal(subject="calibration", tenant="acme", groups=(f"dept-{department}",),
                              clearance="restricted", attributes={"region": ("EU",)})
        permitted = await permitted_ids(runner.engine, principal, runner.levels, datetime.now(UTC))
        truth = nearest(vectors, permitted, queries[:QUERIES], k)
        timings = {}
        for kind in ("exact", "ann"):
            runner.retriever = Retriever(runner.repository, _Forced(planner, kind))
            await runner.run("planner", principal, queries[:5], k)
            outcome = await runner.run("planner", principal, queries[:QUERIES], k)
            timings[kind] = (percentiles(outcome.db_seconds)[0], recall(outcome.ids, truth, k))
        runner.retriever = Retriever(runner.repository, planner)
        points.append((permitted.size, timings["exact"][0], timings["ann"][0]))
        lines.append(f"| {permitted.size:,} | {100 * permitted.size / vectors.ids.size:.3g}% | "
                     f"{timings['exact'][0]:.2f} | {timings['ann'][0]:.2f} | {timings['ann'][1]:.3f} |")
    lines += ["", crossover(points, vectors.ids.size, k, planner)]
    return "\n".join(lines)


def crossover(points: list[tuple[int, float, float]], rows: int, k: int,
              planner: RetrievalPlanner) -> str:
    """The smallest measured size where HNSW beats exact, and the threshold it implies.

    At the crossover exact scores `middle` postings in the time HNSW visits
    `hnsw_work(middle)` tuples; the threshold is that ratio times MAX_EF_SEARCH.
    """
    points = sorted(points)
    faster = [p for p, exact, ann in points if ann < exact]
    slower = [p for p, exact, ann in points if ann >= exact and (not faster or p < faster[0])]
    if not faster or not slower:
        return "No crossover inside the measured range."
    low, high = max(slower), faster[0]
    middle = math.sqrt(low * high)
    threshold = middle * MAX_EF_SEARCH / planner.hnsw_work(round(middle), rows, k)
    return (f"Exact is faster up to {low:,} permitted rows, HNSW from {high:,}: crossover about "
            f"{middle:,.0f} rows here, i.e. GATEWAY_EXACT_SCAN_THRESHOLD of about {threshold:,.0f}.")

"""The timing side channel: does a query's latency reveal hidden chunks near it?

A filtered HNSW scan must step over every chunk the caller may not see that lies
nearer than its k-th permitted result; exact search over the permitted rows never
touches hidden chunks. So we correlate, per query, latency with the number of hidden
chunks nearer than the k-th permitted result (computed from the ground truth).
"""

from __future__ import annotations

import numpy as np

from bench.corpus import cells
from bench.measure import Runner
from bench.truth import Vectors, hidden_nearer

CELLS = ("10%", "deny-heavy")
MODES = ("iterative", "exact", "planner")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (ties broken by position; enough for continuous latencies)."""
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


async def measure(runner: Runner, vectors: Vectors, queries: np.ndarray,
                  evidence: dict[str, tuple[np.ndarray, list[np.ndarray]]], k: int) -> str:
    """A Markdown table: per cell and mode, correlation and p50 by thirds of hidden neighbours."""
    lines = ["Timing side channel: Spearman correlation of database latency with the number of hidden chunks "
             "nearer than the k-th permitted result, and p50 database latency (ms) of the third of queries "
             "with the fewest / the most such hidden chunks.", "",
             "| cell | mode | hidden nearer (median, low / high third) | rho | p50 low | p50 high |",
             "|---|---|---|---|---|---|"]
    principals = {c.name: c.principal for c in cells()}
    for name, (permitted, truth) in evidence.items():
        hidden = hidden_nearer(vectors, permitted, queries, truth)
        order = np.argsort(hidden)
        third = len(order) // 3
        low, high = order[:third], order[-third:]
        for mode in MODES:
            await runner.run(mode, principals[name], queries[:5], k)
            seconds = np.asarray((await runner.run(mode, principals[name], queries, k)).db_seconds) * 1000
            lines.append(
                f"| {name} | {mode} | {np.median(hidden[low]):,.0f} / {np.median(hidden[high]):,.0f} | "
                f"{spearman(seconds, hidden.astype(float)):.2f} | {np.median(seconds[low]):.2f} | "
                f"{np.median(seconds[high]):.2f} |")
    return "\n".join(lines)

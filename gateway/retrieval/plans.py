"""The two ways of running a filtered vector search, as values the planner hands the repository."""

from __future__ import annotations

from dataclasses import dataclass

ITERATIVE_MODES = ("off", "relaxed_order", "strict_order")


@dataclass(frozen=True)
class ExactPlan:
    """Exact k-NN over the permitted rows, scored from the caller's access postings.

    `depth`: keep only that many nearest postings as candidates (a bounded top-N sort
    instead of sorting every posting); None keeps them all. A bounded search that finds
    fewer than k permitted chunks among its candidates is repeated with all of them.
    """

    depth: int | None = None

    def __post_init__(self) -> None:
        if self.depth is not None and self.depth < 1:
            raise ValueError("depth must be positive")

    @property
    def name(self) -> str:
        """The label used in metrics and the audit detail."""
        return "exact"


@dataclass(frozen=True)
class AnnPlan:
    """HNSW search with these pgvector settings (`iterative` = `hnsw.iterative_scan`)."""

    ef_search: int
    max_scan_tuples: int
    iterative: str = "relaxed_order"

    def __post_init__(self) -> None:
        if self.iterative not in ITERATIVE_MODES:
            raise ValueError(f"iterative must be one of {ITERATIVE_MODES}")
        if self.ef_search < 1 or self.max_scan_tuples < 1:
            raise ValueError("ef_search and max_scan_tuples must be positive")

    @property
    def name(self) -> str:
        """The label used in metrics and the audit detail."""
        return "ann"


Plan = ExactPlan | AnnPlan

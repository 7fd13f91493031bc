"""The ways of running a filtered vector search, as values the planner hands the repository."""

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


@dataclass(frozen=True)
class KeyedPlan:
    """HNSW over the principal indexes of `principals`, exact over the caller's other postings.

    Each principal index proposes its `depth` nearest postings (pgvector's iterative scan
    skips those above the caller's clearance), the caller's other keys their `rest_depth`
    nearest by exact distance; the nearest proposals are then checked on `chunks` like an
    exact search's. `ef_search` and `max_scan_tuples` apply to every index scanned.
    """

    principals: tuple[str, ...]
    ef_search: int
    max_scan_tuples: int
    depth: int
    rest_depth: int

    def __post_init__(self) -> None:
        if not self.principals:
            raise ValueError("a keyed plan needs at least one principal index")
        if min(self.ef_search, self.max_scan_tuples, self.depth, self.rest_depth) < 1:
            raise ValueError("ef_search, max_scan_tuples and depths must be positive")

    @property
    def iterative(self) -> str:
        """`hnsw.iterative_scan`: keep scanning while rows above the caller's clearance are skipped."""
        return "relaxed_order"

    @property
    def name(self) -> str:
        """The label used in metrics and the audit detail."""
        return "key-ann"


Plan = ExactPlan | AnnPlan | KeyedPlan

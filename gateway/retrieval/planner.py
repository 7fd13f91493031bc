"""The retrieval planner: exact k-NN or HNSW, chosen per query from the permitted-set size.

pgvector's cost model does not see how selective the access predicate is, so the
gateway plans by cardinality itself, the way dedicated vector engines do. One indexed
lookup in `chunk_access_counts` (kept by triggers, migration 0004) gives, for the
caller's principal strings:
- `scanned`: chunks whose allow list names one of them, at any level: an upper bound
  on the rows the access-column index hands to an exact scan (its cost);
- `allowed` - `denied`: the same within clearance, minus deny-list hits: the estimated
  permitted set, whose share of the index sets the cost of a filtered HNSW scan.

Exact search examines about `scanned` rows; a filtered HNSW scan visits about
k * index_rows / permitted tuples. With one measured cost ratio, exact is the cheaper
plan while scanned * permitted <= limit ** 2, limit = sqrt(C * index_rows * k).
`GATEWAY_EXACT_SCAN_THRESHOLD` is that limit measured on a 1M-chunk index at k=10
(docs/benchmarks.md); it scales with sqrt(index_rows / 1M * k / 10).

The plan is only a cost decision: completeness never depends on the estimate (a short
HNSW result is redone exactly, see `gateway.retrieval.service`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import REGCLASS
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.retrieval_models import ChunkAccessCount
from gateway.domain import Principal
from gateway.retrieval.plans import AnnPlan, ExactPlan, Plan
from gateway.retrieval.repository import ROWS_READ
from gateway.settings import RetrievalSettings
from policies.model import ClassificationLevels

REFERENCE_ROWS = 1_000_000
REFERENCE_K = 10
# Candidate-list depth per row the filtered answer lies deep (see `ann`), and pgvector's cap.
EF_PER_WANTED = 4
MAX_EF_SEARCH = 1000
# Tuples an iterative scan may visit per row it should find (k / selectivity each).
SCAN_MARGIN = 4
MIN_SCAN_TUPLES = 1_000
_PG_CLASS = table("pg_class", column("oid"), column("reltuples"))
# PostgreSQL's own row count of `chunks` (what the HNSW index holds), kept by (auto)analyze.
_INDEX_ROWS = (
    select(func.greatest(_PG_CLASS.c.reltuples, 0))
    .where(_PG_CLASS.c.oid == cast(literal("chunks"), REGCLASS))
    .scalar_subquery()
)


@dataclass(frozen=True)
class Estimate:
    """What the planner knows before searching (all counts in chunks)."""

    scanned: int
    allowed: int
    denied: int
    index_rows: int
    rows_read: int = 0  # the repository's ROWS_READ counter when the estimate was taken

    @property
    def permitted(self) -> int:
        """The estimated permitted set: allowed minus denied, at least zero."""
        return max(self.allowed - self.denied, 0)


def _sum(condition: ColumnElement[bool]) -> ColumnElement[int]:
    counted = case((condition, ChunkAccessCount.chunks), else_=0)
    return cast(func.coalesce(func.sum(counted), 0), BigInteger)


class RetrievalPlanner:
    """Chooses between exact and HNSW search for one query."""

    def __init__(self, settings: RetrievalSettings, levels: ClassificationLevels) -> None:
        self._settings = settings
        self._levels = levels

    async def estimate(self, session: AsyncSession, principal: Principal) -> Estimate:
        """Bound the caller's permitted set (one indexed query, in the caller's transaction).

        The same statement reads the rows-examined counter, saving the retriever a round trip.
        """
        counts = ChunkAccessCount
        within = counts.classification <= self._levels.clearance_rank(principal.clearance)
        allow = counts.effect == "allow"
        row = (await session.execute(
            select(_sum(allow), _sum(and_(allow, within)), _sum(and_(counts.effect == "deny", within)),
                   cast(_INDEX_ROWS, Float), ROWS_READ)
            .where(counts.tenant == principal.tenant,
                   counts.principal.in_(list(principal.principal_strings)))
        )).one()
        scanned, allowed, denied = int(row[0]), int(row[1]), int(row[2])
        return Estimate(scanned, allowed, denied, max(int(row[3] or 0), scanned, 1), int(row[4]))

    def exact_limit(self, index_rows: int, k: int) -> int:
        """The permitted-set size up to which exact search is cheaper than HNSW."""
        scale = math.sqrt(index_rows / REFERENCE_ROWS * k / REFERENCE_K)
        return max(int(self._settings.exact_threshold * scale), k)

    def choose(self, estimate: Estimate, k: int) -> Plan:
        """Exact while rows scanned x permitted stays under limit squared, else HNSW."""
        limit = self.exact_limit(estimate.index_rows, k)
        if estimate.scanned * max(estimate.permitted, 1) <= limit * limit:
            return ExactPlan()
        return self.ann(estimate.permitted, estimate.index_rows, k)

    def ann(self, permitted: int, index_rows: int, k: int) -> AnnPlan:
        """HNSW with iterative scan, sized for the selectivity permitted / index_rows.

        The k nearest permitted rows lie about k / selectivity deep in the unfiltered
        order, so the candidate list (`ef_search`) must reach several times that deep for
        the filtered answer to be accurate (measured: EF_PER_WANTED = 4 keeps recall@10
        at 0.98+ from 3% selectivity up), and the scan may visit a few times more.
        """
        selectivity = min(max(permitted, 1) / max(index_rows, 1), 1.0)
        wanted = math.ceil(k / selectivity)
        ef_search = min(max(self._settings.ef_search, 2 * k, EF_PER_WANTED * wanted), MAX_EF_SEARCH)
        max_scan = min(max(SCAN_MARGIN * wanted + ef_search, MIN_SCAN_TUPLES),
                       self._settings.max_scan_tuples)
        return AnnPlan(ef_search=ef_search, max_scan_tuples=max_scan)

"""The retrieval planner: exact k-NN or HNSW, chosen per query from the permitted-set size.

pgvector's cost model does not see how selective the access predicate is, so the
gateway plans by cardinality itself, the way dedicated vector engines do. One indexed
lookup in `chunk_access_counts` (kept by triggers, migration 0004) gives, for the
caller's principal strings:
- `scanned`: chunks whose allow list names one of them, at any level: an upper bound
  on the postings an exact search scores (its cost);
- `allowed` - `denied`: the same within clearance, minus deny-list hits: the estimated
  permitted set, whose share of the index sets the cost of a filtered HNSW scan.

Exact search scores about `scanned` postings; a filtered HNSW search visits about
`hnsw_work` tuples: its candidate list (ef_search, sized by selectivity, see `ann`), or
more where the k-th permitted row lies deeper than that (k * index_rows / permitted).
Both costs are per row visited, so one measured ratio decides: exact while
scanned <= GATEWAY_EXACT_SCAN_THRESHOLD * hnsw_work / MAX_EF_SEARCH. The threshold is
the number of postings an exact search scores in the time of an HNSW search with
pgvector's largest candidate list (measured at 1M chunks, docs/benchmarks.md). Recall
overrides cost where HNSW cannot be accurate: below `recall_floor` permitted rows (the
answer lies deeper than pgvector's candidate list reaches) exact is used while it stays
affordable.

Principal indexes (`gateway.retrieval.principal_indexes`) add a third plan: when some of
the caller's strings have an HNSW graph of their own, a `KeyedPlan` searches those
graphs (almost unfiltered: they hold only rows those strings are allowed) and scores
the caller's other postings exactly; it replaces the filtered HNSW search over `chunks`
when its cost is lower. It never replaces exact search: exact answers are exactly right.

The plan is only a cost decision: completeness never depends on the estimate (a short
HNSW result is redone exactly, see `gateway.retrieval.service`). That is why an estimate
can be reused for a few seconds (`GATEWAY_PLANNER_ESTIMATE_TTL_SECONDS`): it is a
property of the principal, not of the query, and reusing it saves a round trip per query.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text

from gateway.db.engine import Executor
from gateway.domain import Principal
from gateway.retrieval.plans import AnnPlan, ExactPlan, KeyedPlan, Plan
from gateway.settings import RetrievalSettings
from policies.model import ClassificationLevels

# Candidate-list depth per row the filtered answer lies deep (see `ann`), and pgvector's cap.
EF_PER_WANTED = 3
MAX_EF_SEARCH = 1000
# Below the recall floor, exact is preferred while it reads at most this many floors of rows.
EXACT_SCAN_CAP = 4
# Exact candidates kept per wanted row and caller key (a chunk has a posting under each
# of its allow entries the caller holds), twice over for candidates `chunks` rejects.
DEPTH_PER_KEY = 2
# Tuples an iterative scan may visit per row it should find (k / selectivity each).
SCAN_MARGIN = 4
MIN_SCAN_TUPLES = 1_000
# Principals whose estimates are kept at once (least recently used out).
CACHED_ESTIMATES = 10_000
# Per principal string of the caller: its allow postings (any level: what exact search
# scores), those within clearance, its deny hits within clearance, whether it has a valid
# principal index; and PostgreSQL's row count of `chunks` (what the HNSW index holds).
# One row per string, whatever the counts hold (row-level security shows only the caller's).
_ESTIMATE = text("""
SELECT s.principal,
       coalesce(sum(c.chunks) FILTER (WHERE c.effect = 'allow'), 0)::bigint AS scanned,
       coalesce(sum(c.chunks) FILTER (WHERE c.effect = 'allow' AND c.classification <= :rank), 0)::bigint
           AS allowed,
       coalesce(sum(c.chunks) FILTER (WHERE c.effect = 'deny' AND c.classification <= :rank), 0)::bigint
           AS denied,
       EXISTS (SELECT FROM principal_indexes AS p
               JOIN pg_index AS i ON i.indexrelid = to_regclass(p.index_name)
               WHERE p.tenant = :tenant AND p.principal = s.principal AND i.indisvalid) AS indexed,
       (SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'chunks'::regclass)::bigint AS index_rows
FROM unnest(CAST(:principals AS text[])) AS s(principal)
LEFT JOIN chunk_access_counts AS c ON c.tenant = :tenant AND c.principal = s.principal
GROUP BY s.principal
""")


@dataclass(frozen=True)
class Estimate:
    """What the planner knows before searching (all counts in chunks)."""

    scanned: int
    allowed: int
    denied: int
    index_rows: int
    indexed: tuple[str, ...] = ()  # the caller's strings that have a valid principal index
    indexed_scanned: int = 0  # allow postings under those strings, at any level

    @property
    def permitted(self) -> int:
        """The estimated permitted set: allowed minus denied, at least zero."""
        return max(self.allowed - self.denied, 0)


EstimateKey = tuple[str, frozenset[str], int]


class EstimateCache:
    """Estimates by principal (tenant, principal strings, clearance) for `ttl_s` seconds."""

    def __init__(self, ttl_s: float, capacity: int = CACHED_ESTIMATES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[EstimateKey, tuple[float, Estimate]] = OrderedDict()

    def get(self, key: EstimateKey) -> Estimate | None:
        """The estimate stored for `key` if it is younger than the TTL."""
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] >= self._ttl_s:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: EstimateKey, estimate: Estimate) -> None:
        """Store `estimate`, dropping the least recently used entry when full."""
        if self._ttl_s <= 0:
            return
        self._entries[key] = (self._clock(), estimate)
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)


class RetrievalPlanner:
    """Chooses between exact and HNSW search for one query."""

    def __init__(self, settings: RetrievalSettings, levels: ClassificationLevels) -> None:
        self._settings = settings
        self._levels = levels
        self._cache = EstimateCache(settings.estimate_ttl_s)

    @property
    def levels(self) -> ClassificationLevels:
        """The classification levels clearances are ranked by."""
        return self._levels

    def _key(self, principal: Principal) -> EstimateKey:
        rank = self._levels.clearance_rank(principal.clearance)
        return (principal.tenant, frozenset(principal.principal_strings), rank)

    def cached(self, principal: Principal) -> Estimate | None:
        """The caller's recent estimate, if there is one (no I/O)."""
        return self._cache.get(self._key(principal))

    async def estimate(self, executor: Executor, principal: Principal) -> Estimate:
        """Bound the caller's permitted set: a recent estimate, or one indexed query.

        The query runs in the caller's (principal-bound) transaction: row-level security
        on `chunk_access_counts` shows it only the caller's own principal strings.
        """
        key = self._key(principal)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        rows = (await executor.execute(_ESTIMATE, {
            "tenant": principal.tenant, "principals": list(principal.principal_strings), "rank": key[2],
        })).all()
        scanned = sum(int(r.scanned) for r in rows)
        indexed = tuple(r.principal for r in rows if r.indexed)
        estimate = Estimate(
            scanned, sum(int(r.allowed) for r in rows), sum(int(r.denied) for r in rows),
            max(int(rows[0].index_rows or 0), scanned, 1), indexed,
            sum(int(r.scanned) for r in rows if r.indexed))
        self._cache.put(key, estimate)
        return estimate

    def hnsw_work(self, permitted: int, index_rows: int, k: int) -> int:
        """Tuples a filtered HNSW search visits, about: its candidate list, or deeper."""
        wanted = math.ceil(k * max(index_rows, 1) / max(permitted, 1))
        return max(self.ann(permitted, index_rows, k).ef_search, wanted)

    def exact_is_cheaper(self, scanned: int, permitted: int, index_rows: int, k: int) -> bool:
        """Scoring `scanned` postings costs no more than the HNSW search for `permitted` rows."""
        work = self.hnsw_work(permitted, index_rows, k)
        return scanned * MAX_EF_SEARCH <= self._settings.exact_threshold * work

    def exact_limit(self, index_rows: int, k: int) -> int:
        """The largest permitted set (all of it scanned) for which exact is the cheaper plan."""
        low, high = 0, max(index_rows, 1)
        while low < high:
            middle = (low + high + 1) // 2
            if self.exact_is_cheaper(middle, middle, index_rows, k):
                low = middle
            else:
                high = middle - 1
        return max(low, k)

    @staticmethod
    def recall_floor(index_rows: int, k: int) -> int:
        """The permitted-set size below which HNSW cannot be trusted for recall.

        The filtered answer then lies deeper than MAX_EF_SEARCH / 2 in the unfiltered
        order: beyond what pgvector's candidate list can hold accurately (measured:
        recall@10 0.94 at 1% of 1M rows with ef_search 1000).
        """
        return math.ceil(2 * k * index_rows / MAX_EF_SEARCH)

    def choose(self, estimate: Estimate, k: int, keys: int) -> Plan:
        """Exact when it is cheaper, or when HNSW would lose recall and exact stays affordable.

        `keys`: how many principal strings (posting keys) the caller has.
        """
        if self.exact_is_cheaper(estimate.scanned, estimate.permitted, estimate.index_rows, k):
            return self.exact(estimate, k, keys)
        floor = self.recall_floor(estimate.index_rows, k)
        if estimate.permitted < floor and estimate.scanned <= EXACT_SCAN_CAP * floor:
            return self.exact(estimate, k, keys)
        ann = self.ann(estimate.permitted, estimate.index_rows, k)
        keyed = self.keyed(estimate, k, keys)
        if keyed is not None and self.keyed_work(keyed, estimate) < self.hnsw_work(
                estimate.permitted, estimate.index_rows, k):
            return keyed
        return ann

    @staticmethod
    def exact(estimate: Estimate, k: int, keys: int) -> ExactPlan:
        """Exact search over the nearest postings only, when that is fewer than it would score.

        Sorting every posting costs about as much as scoring it; a bounded top-N sort of
        the nearest few costs almost nothing. The bound is left off where it would not
        cut (few postings) or would not hold k permitted chunks (a set smaller than k).
        """
        depth = DEPTH_PER_KEY * k * max(keys, 1)
        if estimate.scanned <= depth or estimate.permitted < k:
            return ExactPlan()
        return ExactPlan(depth)

    def ann(self, permitted: int, index_rows: int, k: int) -> AnnPlan:
        """HNSW with iterative scan, sized for the selectivity permitted / index_rows.

        The k nearest permitted rows lie about k / selectivity deep in the unfiltered
        order, so the candidate list (`ef_search`) must reach several times that deep for
        the filtered answer to be accurate (measured: EF_PER_WANTED = 3 keeps recall@10
        at 0.98+ from 3% selectivity up), and the scan may visit a few times more.
        """
        selectivity = min(max(permitted, 1) / max(index_rows, 1), 1.0)
        wanted = math.ceil(k / selectivity)
        ef_search = min(max(self._settings.ef_search, 2 * k, EF_PER_WANTED * wanted), MAX_EF_SEARCH)
        max_scan = min(max(SCAN_MARGIN * wanted + ef_search, MIN_SCAN_TUPLES),
                       self._settings.max_scan_tuples)
        return AnnPlan(ef_search=ef_search, max_scan_tuples=max_scan)

    def keyed(self, estimate: Estimate, k: int, keys: int) -> KeyedPlan | None:
        """HNSW over the caller's principal indexes, exact over its other postings; None without any.

        A principal index holds every posting of its string, at every level; what the
        caller may read of them (`share`: permitted / scanned, clearance and deny lists
        taken off) sets how deep its candidate list must reach, as for `ann`.
        """
        if not estimate.indexed:
            return None
        share = min(max(estimate.permitted, 1) / max(estimate.scanned, 1), 1.0)
        wanted = math.ceil(k / share)
        ef_search = min(max(self._settings.ef_search, 2 * k, EF_PER_WANTED * wanted), MAX_EF_SEARCH)
        max_scan = min(max(SCAN_MARGIN * wanted + ef_search, MIN_SCAN_TUPLES),
                       self._settings.max_scan_tuples)
        rest_keys = max(keys - len(estimate.indexed), 1)
        return KeyedPlan(tuple(sorted(estimate.indexed)), ef_search=ef_search, max_scan_tuples=max_scan,
                         depth=DEPTH_PER_KEY * wanted, rest_depth=DEPTH_PER_KEY * k * rest_keys)

    def keyed_work(self, plan: KeyedPlan, estimate: Estimate) -> float:
        """The keyed plan's cost in HNSW tuples: a candidate list per index, plus the other postings.

        Exact scoring of `threshold` postings costs one MAX_EF_SEARCH-deep HNSW search.
        """
        rest = max(estimate.scanned - estimate.indexed_scanned, 0)
        return len(plan.principals) * plan.ef_search + rest * MAX_EF_SEARCH / self._settings.exact_threshold

"""What the index and the planner look like on the current data, and what to change.

Read by `gateway index tune` as the runtime role: index facts from PostgreSQL's catalog
and statistics (no row is read), and, for each tenant asked about, its size and its
largest principal strings, read in a transaction bound as that tenant's writer (row-level
security shows nothing else). The plans shown are the planner's own decisions
(`RetrievalPlanner.choose`) for a principal holding one string, not a second model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.access import bind_writer
from gateway.retrieval.planner import Estimate, RetrievalPlanner
from gateway.retrieval.plans import AnnPlan

HNSW_INDEX = "ix_chunks_embedding_hnsw"
RECOMMENDED_EF_CONSTRUCTION = 128
STALE_SHARE = 0.1  # ANALYZE is due once this share of rows changed since the last one
PARTIAL_INDEX_SHARE = 0.2  # below this share of the index a large tenant's graph is mostly others'
TOP_PRINCIPALS = 10
HUGE_PAGES_FROM = 2 * 2**30  # shared_buffers from which ordinary 4 kB pages cost searches time

_INDEX_FACTS = text("""
SELECT c.reltuples::bigint AS rows,
       pg_relation_size(c.oid) AS table_bytes,
       pg_relation_size(CAST(:index AS regclass)) AS hnsw_bytes,
       pg_total_relation_size('chunk_postings'::regclass) AS postings_bytes,
       (SELECT array_to_string(i.reloptions, ',') FROM pg_class AS i
        WHERE i.oid = CAST(:index AS regclass)) AS hnsw_options,
       s.n_live_tup AS live_rows,
       s.n_mod_since_analyze AS changed_rows,
       greatest(s.last_analyze, s.last_autoanalyze) AS analyzed_at,
       pg_size_bytes(current_setting('shared_buffers')) AS shared_buffers,
       pg_size_bytes(current_setting('maintenance_work_mem')) AS maintenance_work_mem,
       current_setting('huge_pages_status') AS huge_pages,
       current_setting('shared_memory_size_in_huge_pages')::int AS huge_pages_needed
FROM pg_class AS c JOIN pg_stat_user_tables AS s ON s.relid = c.oid
WHERE c.oid = 'chunks'::regclass
""")
_TENANT_CHUNKS = text("SELECT count(*) FROM chunks")
_TENANT_PRINCIPALS = text(
    "SELECT principal, sum(chunks)::bigint AS chunks FROM chunk_access_counts "
    "WHERE effect = 'allow' GROUP BY principal HAVING sum(chunks) > 0 "
    "ORDER BY 2 DESC, 1 LIMIT :top"
)


@dataclass(frozen=True)
class IndexFacts:
    """The chunks table and its HNSW index as PostgreSQL describes them."""

    rows: int
    table_bytes: int
    hnsw_bytes: int
    postings_bytes: int
    hnsw_options: dict[str, str]
    live_rows: int
    changed_rows: int
    analyzed: bool
    shared_buffers: int
    maintenance_work_mem: int
    huge_pages: str  # huge_pages_status: on, off (or unknown before the server started)
    huge_pages_needed: int  # pages of the system's huge page size that shared memory needs


@dataclass(frozen=True)
class PrincipalPlan:
    """How the planner searches for a principal holding only `principal`."""

    principal: str
    chunks: int
    plan: str


@dataclass(frozen=True)
class TenantReport:
    """A tenant's share of the index and the plans of its largest principal strings."""

    tenant: str
    chunks: int
    share: float
    principals: list[PrincipalPlan] = field(default_factory=list)


async def index_facts(session: AsyncSession) -> IndexFacts:
    """Catalog and statistics facts about `chunks` and its HNSW index."""
    row = (await session.execute(_INDEX_FACTS, {"index": HNSW_INDEX})).one()
    options = dict(o.split("=", 1) for o in (row.hnsw_options or "").split(",") if "=" in o)
    return IndexFacts(int(row.rows), int(row.table_bytes), int(row.hnsw_bytes), int(row.postings_bytes),
                      options,
                      int(row.live_rows), int(row.changed_rows), row.analyzed_at is not None,
                      int(row.shared_buffers), int(row.maintenance_work_mem),
                      str(row.huge_pages), int(row.huge_pages_needed))


async def tenant_report(session: AsyncSession, tenant: str, facts: IndexFacts,
                        planner: RetrievalPlanner, k: int) -> TenantReport:
    """The tenant's size and its largest principal strings' plans (binds the transaction)."""
    await bind_writer(session, tenant)
    chunks = int((await session.execute(_TENANT_CHUNKS)).scalar_one())
    rows = (await session.execute(_TENANT_PRINCIPALS, {"top": TOP_PRINCIPALS})).all()
    index_rows = max(facts.rows, facts.live_rows, chunks, 1)
    plans = [PrincipalPlan(r.principal, int(r.chunks),
                           describe(planner, Estimate(int(r.chunks), int(r.chunks), 0, index_rows), k))
             for r in rows]
    return TenantReport(tenant, chunks, chunks / index_rows, plans)


def describe(planner: RetrievalPlanner, estimate: Estimate, k: int) -> str:
    """The plan the planner picks for `estimate`, in words."""
    plan = planner.choose(estimate, k, keys=1)
    if isinstance(plan, AnnPlan):
        return f"hnsw (ef_search {plan.ef_search}, max_scan_tuples {plan.max_scan_tuples})"
    return "exact"


def recommendations(facts: IndexFacts, tenants: list[TenantReport],
                    planner: RetrievalPlanner, k: int) -> list[str]:
    """What to change, each with its reason; empty when nothing is due."""
    advice = []
    if not facts.analyzed or facts.rows < 0 or facts.changed_rows > STALE_SHARE * max(facts.live_rows, 1):
        advice.append("ANALYZE chunks: the planner sizes HNSW searches by pg_class.reltuples, "
                      f"and {facts.changed_rows:,} rows changed since the last analyze")
    working_set = facts.table_bytes + facts.hnsw_bytes + facts.postings_bytes
    if facts.shared_buffers < working_set:
        advice.append(f"shared_buffers ({_size(facts.shared_buffers)}) is smaller than the table, "
                      f"its HNSW index and its access postings ({_size(working_set)}): "
                      "searches will read from the OS cache "
                      "or disk; raise it if the host has the memory")
    if facts.huge_pages != "on" and facts.shared_buffers >= HUGE_PAGES_FROM and facts.huge_pages_needed > 0:
        advice.append(f"shared memory ({_size(facts.shared_buffers)} of shared_buffers) is on ordinary "
                      "pages: reserve huge pages for it (as root: sysctl "
                      f"vm.nr_hugepages={facts.huge_pages_needed}, kept in /etc/sysctl.d) and restart "
                      "PostgreSQL with huge_pages = try; HNSW searches spend much of their time on "
                      "page-table misses without them (docs/benchmarks.md, \"Huge pages\")")
    if facts.maintenance_work_mem < facts.hnsw_bytes:
        advice.append(f"maintenance_work_mem ({_size(facts.maintenance_work_mem)}) is smaller than "
                      f"the HNSW index ({_size(facts.hnsw_bytes)}): a rebuild would not fit in memory "
                      "and take far longer; raise it for the session that runs REINDEX")
    if int(facts.hnsw_options.get("ef_construction", "64")) < RECOMMENDED_EF_CONSTRUCTION:
        advice.append(f"rebuild {HNSW_INDEX} with ef_construction {RECOMMENDED_EF_CONSTRUCTION}: "
                      "lower values cap recall below 0.98 at 1M chunks (docs/decisions.md)")
    index_rows = max(facts.rows, facts.live_rows, 1)
    for tenant in tenants:
        whole = Estimate(tenant.chunks, tenant.chunks, 0, max(index_rows, tenant.chunks))
        if tenant.share <= PARTIAL_INDEX_SHARE and isinstance(planner.choose(whole, k, keys=1), AnnPlan):
            advice.append(
                f"tenant {tenant.tenant!r} holds {tenant.share:.1%} of the index and is too large to "
                f"search exactly ({tenant.chunks:,} chunks): its broad principals walk a graph made "
                "mostly of other tenants' chunks. A partial index may serve it better; measure with "
                "bench/filtered_recall.py before adopting it:\n"
                f"    CREATE INDEX CONCURRENTLY ix_chunks_embedding_hnsw_{_identifier(tenant.tenant)} "
                "ON chunks USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 128) "
                f"WHERE tenant = {_literal(tenant.tenant)}")
    return advice


def _size(count: int) -> str:
    value, unit = float(count), "bytes"
    for bigger in ("kB", "MB", "GB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"


def _identifier(tenant: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in tenant.lower())[:30]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"

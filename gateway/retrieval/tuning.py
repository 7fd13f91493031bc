"""What the index and the planner look like on the current data, and what to change.

Read by `gateway index tune` as the runtime role: index facts from PostgreSQL's catalog
and statistics (no row is read), and, for each tenant asked about, its size and its
largest principal strings and its principal indexes, read in a transaction bound as that
tenant's writer (row-level security shows nothing else). The plans shown are the planner's
own decisions (`RetrievalPlanner.choose`) for a principal holding one string, not a second
model; so is the advice on principal indexes: one is advised where the planner would search
the string with a filtered HNSW scan over `chunks` now and over the string's own graph
once it had one.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.access import bind_writer
from gateway.retrieval.planner import Estimate, RetrievalPlanner
from gateway.retrieval.plans import AnnPlan, KeyedPlan

HNSW_INDEX = "ix_chunks_embedding_hnsw"
RECOMMENDED_EF_CONSTRUCTION = 128
STALE_SHARE = 0.1  # ANALYZE is due once this share of rows changed since the last one
PRINCIPAL_INDEX_MAX_SHARE = 0.5  # above this share of the index its main graph serves a string as well
PRINCIPAL_INDEX_BYTES_PER_POSTING = 2048  # measured: 97,643 postings, 191 MB (384 dimensions, m 16)
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
# Row-level security shows the bound tenant's rows of both tables.
_TENANT_INDEXES = text("""
SELECT p.principal, coalesce(i.indisvalid, false) AS valid,
       coalesce(pg_relation_size(i.indexrelid), 0) AS bytes,
       (SELECT coalesce(sum(c.chunks), 0) FROM chunk_access_counts AS c
        WHERE c.tenant = p.tenant AND c.principal = p.principal AND c.effect = 'allow')::bigint AS chunks
FROM principal_indexes AS p
LEFT JOIN pg_index AS i ON i.indexrelid = to_regclass(p.index_name)
ORDER BY p.principal
""")


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
class IndexedPrincipal:
    """A principal string of the tenant that has a principal index, and the index's state."""

    principal: str
    chunks: int  # the string's allow postings now (what the index holds)
    valid: bool
    bytes: int


@dataclass(frozen=True)
class TenantReport:
    """A tenant's share of the index, its largest principal strings' plans, its principal indexes."""

    tenant: str
    chunks: int
    share: float
    principals: list[PrincipalPlan] = field(default_factory=list)
    indexes: list[IndexedPrincipal] = field(default_factory=list)

    @property
    def indexed(self) -> frozenset[str]:
        """The principal strings with a principal index (valid or not)."""
        return frozenset(i.principal for i in self.indexes)


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
    """The tenant's size, largest strings' plans and principal indexes (binds the transaction)."""
    await bind_writer(session, tenant)
    chunks = int((await session.execute(_TENANT_CHUNKS)).scalar_one())
    rows = (await session.execute(_TENANT_PRINCIPALS, {"top": TOP_PRINCIPALS})).all()
    indexes = [IndexedPrincipal(r.principal, int(r.chunks), bool(r.valid), int(r.bytes))
               for r in (await session.execute(_TENANT_INDEXES)).all()]
    valid = {i.principal for i in indexes if i.valid}
    index_rows = max(facts.rows, facts.live_rows, chunks, 1)
    plans = [PrincipalPlan(r.principal, int(r.chunks),
                           describe(planner, single(r.principal, int(r.chunks), index_rows,
                                                    indexed=r.principal in valid), k))
             for r in rows]
    return TenantReport(tenant, chunks, chunks / index_rows, plans, indexes)


def single(principal: str, chunks: int, index_rows: int, *, indexed: bool = False) -> Estimate:
    """The planner's estimate for a caller holding only `principal` (all of its chunks permitted)."""
    if indexed:
        return Estimate(chunks, chunks, 0, index_rows, (principal,), chunks)
    return Estimate(chunks, chunks, 0, index_rows)


def describe(planner: RetrievalPlanner, estimate: Estimate, k: int) -> str:
    """The plan the planner picks for `estimate`, in words."""
    plan = planner.choose(estimate, k, keys=1)
    if isinstance(plan, AnnPlan):
        return f"hnsw (ef_search {plan.ef_search}, max_scan_tuples {plan.max_scan_tuples})"
    if isinstance(plan, KeyedPlan):
        return f"principal index (ef_search {plan.ef_search}, max_scan_tuples {plan.max_scan_tuples})"
    return "exact"


def uses_principal_index(planner: RetrievalPlanner, principal: str, chunks: int, index_rows: int,
                         k: int) -> bool:
    """Whether the planner would search `principal` over its principal index, had it a valid one."""
    estimate = single(principal, chunks, index_rows, indexed=True)
    return isinstance(planner.choose(estimate, k, keys=1), KeyedPlan)


def principal_index_pays(planner: RetrievalPlanner, principal: str, chunks: int, index_rows: int,
                         k: int) -> bool:
    """A principal index would replace a filtered HNSW scan for `principal`.

    Not below the recall floor or wherever exact search is cheaper (the planner searches
    exactly there, and exact answers are exactly right), nor above half of the index
    (its filtered scan over the main graph then costs no more than its own graph would).
    """
    if chunks > PRINCIPAL_INDEX_MAX_SHARE * index_rows:
        return False
    now = planner.choose(single(principal, chunks, index_rows), k, keys=1)
    return isinstance(now, AnnPlan) and uses_principal_index(planner, principal, chunks, index_rows, k)


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
        advice += principal_index_advice(tenant, planner, max(index_rows, tenant.chunks), k)
    return advice


def principal_index_advice(tenant: TenantReport, planner: RetrievalPlanner, index_rows: int,
                           k: int) -> list[str]:
    """Principal indexes to create among the tenant's largest strings, and broken or unused ones to drop."""
    advice = []
    for index in tenant.indexes:
        drop = _cli("drop-principal", tenant.tenant, index.principal)
        if not index.valid:
            create = _cli("create-principal", tenant.tenant, index.principal)
            advice.append(f"the principal index of {index.principal!r} in tenant {tenant.tenant!r} is "
                          "INVALID or missing (a failed REINDEX, a manual DROP) and the planner ignores it: "
                          f"drop it and create it again:\n    {drop}\n    {create}")
        elif not uses_principal_index(planner, index.principal, index.chunks, index_rows, k):
            advice.append(f"the planner does not use the principal index of {index.principal!r} in tenant "
                          f"{tenant.tenant!r} on the current data ({index.chunks:,} chunks: exact search "
                          f"or the main index serves it better); drop it to free {_size(index.bytes)}:"
                          f"\n    {drop}")
    commands = [f"    {_cli('create-principal', tenant.tenant, plan.principal)}  "
                f"# {plan.chunks:,} chunks ({plan.chunks / index_rows:.1%} of the index), "
                f"about {_size(plan.chunks * PRINCIPAL_INDEX_BYTES_PER_POSTING)}"
                for plan in tenant.principals
                if plan.principal not in tenant.indexed
                and principal_index_pays(planner, plan.principal, plan.chunks, index_rows, k)]
    if commands:
        advice.append(f"principal indexes for tenant {tenant.tenant!r}: callers holding these strings "
                      "search a filtered HNSW graph made mostly of other strings' rows; a principal "
                      "index gives each string a graph of its own, searched almost unfiltered "
                      "(docs/operations.md), for about 2 kB of disk and shared_buffers per posting:\n"
                      + "\n".join(commands))
    return advice


def _cli(action: str, tenant: str, principal: str) -> str:
    return f"gateway index {action} --tenant {shlex.quote(tenant)} {shlex.quote(principal)}"


def _size(count: int) -> str:
    value, unit = float(count), "bytes"
    for bigger in ("kB", "MB", "GB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"


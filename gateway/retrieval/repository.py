"""The one retrieval statement: access predicate AND vector order, LIMIT k, inside SQL.

The statement is built from the principal (`search_statement`): the access predicate is
part of it, so an unfiltered search cannot be written. It is built once per plan and
access shape, every value a named, required parameter, and reused: building one costs
more Python time than a small search costs PostgreSQL.
The same statement shape runs under one of two plans (see `gateway.retrieval.plans`):
- `ExactPlan`: distances are computed only for the caller's access postings (each
  chunk's vector stored under each of its allow entries, migration 0005); the nearest
  are checked against `chunks`, predicate and policy, until k pass.
- `KeyedPlan`: as exact, but the postings of the caller's strings that have a
  principal index are proposed by that index's HNSW graph (the key is a literal in the
  statement: PostgreSQL matches a partial index's predicate only to a constant).
- `AnnPlan`: HNSW with pgvector's iterative index scan (`relaxed_order`, re-sorted by
  the materialised CTE) which keeps scanning until k rows pass the filter or
  `max_scan_tuples` is reached; with iterative scan `off` it is plain post-filtering.
Both run as server-side prepared statements with a generic plan, planned once per
connection: planning (row-level security of three tables, the access predicate) cost
more than scoring a small permitted set. Generic plans are safe here because the
gateway, not PostgreSQL, chooses the plan from the permitted-set size, and each
statement pins its own shape (materialised CTEs, the LATERAL lookup, `enable_sort`);
tests compare the generic plan with the custom one. Settings are transaction-local
(`set_config(..., true)`), never session-wide.
A statement is compiled once per shape (`CompiledSearch`) and run on the psycopg
connection under the caller's, in its transaction: SQLAlchemy's execution of a
statement this large (a cache key built by walking the whole statement on every call,
then the result's metadata and rows) cost about 0.5 ms of Python per search.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import namedtuple_row
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Dialect,
    Integer,
    Select,
    Subquery,
    Text,
    and_,
    any_,
    bindparam,
    func,
    literal_column,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.compiler import SQLCompiler

from gateway.db.engine import Executor, core_connection, driver_connection, driver_prepares
from gateway.db.models import EMBEDDING_DIMENSION, Chunk, Document
from gateway.db.policy_models import AccessPolicy
from gateway.db.retrieval_models import ChunkPosting
from gateway.db.vectors import BinaryVector
from gateway.domain import Principal, RetrievedChunk
from gateway.metrics import Metrics
from gateway.retrieval.plans import AnnPlan, ExactPlan, KeyedPlan, Plan
from policies.model import ClassificationLevels
from policies.sql import access_parameters, access_shape, parameterized_access_predicate

# `enable_sort = off` leaves the HNSW index the only way to produce the ORDER BY without a
# penalised sort: under row-level security PostgreSQL estimates the access quals with
# default selectivities and would otherwise sort the rows of an access-column index scan.
# Exact search sorts (a bounded heap), so it turns sorting back on: a generic plan is made
# once under the settings of its first run and reused, so each plan must set all of them.
_HNSW_SETTINGS = ("hnsw.iterative_scan", "hnsw.ef_search", "hnsw.max_scan_tuples", "enable_sort")
_GENERIC_PLAN = {"plan_cache_mode": "force_generic_plan"}
# The per-query values of the search statements (`search_parameters`).
_QUERY_VECTOR = bindparam("query_vector", type_=BinaryVector(EMBEDDING_DIMENSION), required=True)
_POSTING_KEYS = bindparam("posting_keys", type_=ARRAY(Text), required=True)
_K = bindparam("k", type_=Integer, required=True)
_DEPTH = bindparam("depth", type_=Integer, required=True)
_KEY_DEPTH = bindparam("key_depth", type_=Integer, required=True)
KEY_SEPARATOR = "\x1f"  # chr(31), as in chunk_scan_keys
_CHUNK_COLUMNS = (Chunk.id, Chunk.document_id, Chunk.document_version, Chunk.text,
                  Chunk.char_start, Chunk.char_end, Chunk.heading_path, Chunk.content_sha256,
                  Chunk.allow, Chunk.policy_name, Chunk.tenant)
# Rows read by this backend and not yet flushed to the statistics, in the tables a
# search reads (`chunks`, and `chunk_postings` for exact search): heap rows fetched
# through any of their indexes or a bitmap, plus rows read sequentially. A counter: the
# search statement reads it before and after its scan (`_searched`).
ROWS_READ = literal_column(
    "(SELECT CAST(sum(pg_stat_get_xact_tuples_fetched(t.rel) + pg_stat_get_xact_tuples_returned(t.rel)"
    " + (SELECT coalesce(sum(pg_stat_get_xact_tuples_fetched(i.indexrelid)), 0)"
    " FROM pg_index AS i WHERE i.indrelid = t.rel)) AS bigint)"
    " FROM unnest(ARRAY[CAST('chunks' AS regclass), CAST('chunk_postings' AS regclass)]) AS t(rel))",
    BigInteger,
)


def posting_keys(principal: Principal) -> list[str]:
    """The caller's principal strings as `chunk_postings` keys (tenant-qualified, migration 0005)."""
    return [f"{principal.tenant}{KEY_SEPARATOR}{p}" for p in principal.principal_strings]


def granted_by(principal: Principal, allow: Sequence[str]) -> str | None:
    """The most specific of the caller's principal strings that the chunk's allow list names."""
    allowed = set(allow)
    return next((p for p in principal.principal_strings if p in allowed), None)


@dataclass(frozen=True)
class CompiledSearch:
    """A search statement compiled once; each call renders its SQL and driver parameters."""

    compiled: SQLCompiler
    processors: Mapping[str, Callable[[Any], Any]]

    @classmethod
    def of(cls, statement: Select[Any], dialect: Dialect) -> CompiledSearch:
        """Compile `statement` for `dialect`, with its parameters' conversions (the query vector's)."""
        compiled = statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError("a search statement compiles to SQL")
        processors = {name: process for name, bind in compiled.binds.items()
                      if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None}
        return cls(compiled, processors)

    def bound(self, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The SQL (principal-index keys rendered as literals) and the parameters, converted.

        Raises when a required value is missing, as executing the statement would.
        """
        state = self.compiled.construct_expanded_state(values)
        processors = self.processors
        return state.statement, {name: processors[name](value) if name in processors else value
                                 for name, value in state.parameters.items()}


@dataclass(frozen=True)
class Found:
    """The chunks a search found, and how many rows of `chunks` it examined."""

    chunks: list[RetrievedChunk]
    examined: int


class ChunkRepository:
    """Runs filtered vector searches in the caller's (principal-bound) transaction."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        # Building a search statement costs milliseconds of Python: one per shape, reused.
        self._statements: dict[tuple[Any, ...], CompiledSearch] = {}

    async def search(
        self,
        executor: Executor,
        vector: Sequence[float],
        *,
        principal: Principal,
        now: datetime,
        levels: ClassificationLevels,
        limit: int,
        plan: Plan,
        settings_bound: bool = False,
    ) -> Found:
        """Return up to `limit` chunks nearest to `vector` that `principal` may read at `now`, under `plan`.

        `settings_bound`: the transaction already carries `search_settings(plan, limit)`
        (sent with the principal's binding); otherwise they are set here first.
        """
        connection = await core_connection(executor)
        if not settings_bound:
            await self.apply_search_settings(connection, plan, limit)
        sql, parameters = self._compiled(plan, principal, connection.dialect).bound(search_parameters(
            vector, principal=principal, now=now, levels=levels, limit=limit, plan=plan))
        driver = await driver_connection(connection)
        started = time.perf_counter()
        rows = await self.fetch(driver, sql, parameters)
        self._metrics.retrieval_latency.labels(plan.name).observe(time.perf_counter() - started)
        chunks = [self._chunk(row, principal) for row in rows if row.id is not None]
        return Found(chunks, int(rows[0].examined))

    async def fetch(self, driver: AsyncConnection[Any], sql: str, parameters: dict[str, Any]) -> list[Any]:
        """One search statement's round trip, prepared on the server: its rows as named tuples."""
        with driver_prepares(driver):
            async with driver.cursor(row_factory=namedtuple_row) as cursor:
                await cursor.execute(sql, parameters)
                return await cursor.fetchall()

    def _compiled(self, plan: Plan, principal: Principal, dialect: Dialect) -> CompiledSearch:
        """The search statement for this plan and the principal's access shape, compiled once."""
        variant = (plan.depth is None if isinstance(plan, ExactPlan)
                   else len(plan.principals) if isinstance(plan, KeyedPlan) else None)
        shape = (plan.name, variant, access_shape(principal))
        search = self._statements.get(shape)
        if search is None:
            search = self._statements[shape] = CompiledSearch.of(search_statement(plan, principal), dialect)
        return search

    @staticmethod
    async def apply_search_settings(executor: Executor, plan: Plan, limit: int) -> None:
        """Set `search_settings(plan, limit)` for the rest of the transaction."""
        await executor.execute(select(*(
            func.set_config(name, value, True) for name, value in search_settings(plan, limit).items()
        )))

    @staticmethod
    def _chunk(row: Any, principal: Principal) -> RetrievedChunk:
        return RetrievedChunk(
            chunk_id=row.id, document_id=row.document_id, external_id=row.external_id,
            document_version=row.document_version, title=row.title, text=row.text,
            score=round(1.0 - float(row.distance), 6), source_uri=row.source_uri,
            char_start=row.char_start, char_end=row.char_end,
            heading_path=tuple(row.heading_path), content_sha256=row.content_sha256,
            granted_by=granted_by(principal, row.allow), policy_name=row.policy_name,
            policy_version=row.policy_version,
        )


def search_settings(plan: Plan, limit: int) -> dict[str, str]:
    """The transaction-local settings a search under `plan` runs with (generic plan included)."""
    if isinstance(plan, ExactPlan):
        return {**_GENERIC_PLAN, "enable_sort": "on"}
    values = (plan.iterative, str(max(plan.ef_search, limit)), str(plan.max_scan_tuples), "off")
    return {**_GENERIC_PLAN, **dict(zip(_HNSW_SETTINGS, values, strict=True))}


def search_statement(plan: Plan, principal: Principal) -> Select[Any]:
    """The statement a search under `plan` runs for every principal of `principal`'s access shape.

    Every value is a named, required parameter (`search_parameters`): the statement is
    built once per shape and reused, and a value left out fails the statement.
    """
    predicate = parameterized_access_predicate(principal, columns=Chunk, policy_table=AccessPolicy)
    if isinstance(plan, AnnPlan):
        return ann_statement(predicate)
    if isinstance(plan, KeyedPlan):
        return keyed_statement(predicate, indexes=len(plan.principals))
    return exact_statement(predicate, bounded=plan.depth is not None)


def search_parameters(vector: Sequence[float], *, principal: Principal, now: datetime,
                      levels: ClassificationLevels, limit: int, plan: Plan) -> dict[str, Any]:
    """The values of `search_statement(plan, principal)` for this query."""
    values = {**access_parameters(principal, now, levels), "query_vector": list(vector), "k": limit}
    if isinstance(plan, ExactPlan):
        values["posting_keys"] = posting_keys(principal)
        if plan.depth is not None:
            values["depth"] = plan.depth
    elif isinstance(plan, KeyedPlan):
        indexed = set(plan.principals)
        pairs = zip(posting_keys(principal), principal.principal_strings, strict=True)
        values["posting_keys"] = [key for key, string in pairs if string not in indexed]
        values |= {f"index_key_{i}": f"{principal.tenant}{KEY_SEPARATOR}{string}"
                   for i, string in enumerate(plan.principals)}
        values |= {"key_depth": plan.depth, "depth": plan.rest_depth}
    return values


def ann_statement(predicate: ColumnElement[bool]) -> Select[Any]:
    """Predicate AND `ORDER BY distance LIMIT k`, which the HNSW index can serve."""
    distance = Chunk.embedding.cosine_distance(_QUERY_VECTOR)
    return _searched(lambda started: (
        select(*_CHUNK_COLUMNS, distance.label("distance"))
        .where(predicate, started.is_not(None))
        .order_by(distance)
        .limit(_K)
    ))


def exact_statement(predicate: ColumnElement[bool], *, bounded: bool) -> Select[Any]:
    """Distances for the caller's postings only; the nearest that pass on `chunks`, k of them.

    `proposed`: the postings of the caller's keys (row-level security also limits them
    to its keys and clearance) by distance, the `depth` nearest only when `bounded`:
    PostgreSQL then keeps a bounded heap instead of sorting every posting. Then
    `_checked_on_chunks`.
    """
    def hits(started: ColumnElement[Any]) -> Select[Any]:
        scored = _scored(ChunkPosting.key == any_(_POSTING_KEYS), started)
        if not bounded:
            return _checked_on_chunks(scored.distinct().subquery("candidates"), predicate)
        return _checked_on_chunks(_each_once(scored.limit(_DEPTH).subquery("proposed")), predicate)

    return _searched(hits)


def keyed_statement(predicate: ColumnElement[bool], *, indexes: int) -> Select[Any]:
    """As `exact_statement`, with the postings of `indexes` keys proposed by their own HNSW index.

    Each indexed key's branch names its key as a literal (`index_key_<i>`, rendered into
    the statement text with the dialect's quoting by `CompiledSearch.bound`) so that
    PostgreSQL can use that key's partial index; its `key_depth` nearest are proposed. The caller's other
    keys (`posting_keys`) propose their `depth` nearest by exact distance.
    """
    def hits(started: ColumnElement[Any]) -> Select[Any]:
        keys = [bindparam(f"index_key_{i}", type_=Text, required=True, literal_execute=True)
                for i in range(indexes)]
        branches = [_scored(ChunkPosting.key == key, started, tie_break=False).limit(_KEY_DEPTH)
                    for key in keys]
        branches.append(_scored(ChunkPosting.key == any_(_POSTING_KEYS), started).limit(_DEPTH))
        return _checked_on_chunks(_each_once(union_all(*branches).subquery("proposed")), predicate)

    return _searched(hits)


def _scored(keys: ColumnElement[bool], started: ColumnElement[Any], *,
            tie_break: bool = True) -> Select[Any]:
    """Postings under `keys`, nearest first; chunk id breaks ties unless an HNSW index gives the order."""
    distance = ChunkPosting.embedding.cosine_distance(_QUERY_VECTOR)
    order = (distance, ChunkPosting.chunk_id) if tie_break else (distance,)
    scored = select(ChunkPosting.chunk_id, distance.label("distance"))
    return scored.where(keys, started.is_not(None)).order_by(*order)


def _each_once(proposed: Subquery) -> Subquery:
    """Each proposed chunk once, nearest first.

    A chunk has a posting per allow entry, all with its vector: its proposals share one distance.
    """
    return (
        select(proposed.c.chunk_id, proposed.c.distance)
        .distinct()
        .order_by(proposed.c.distance, proposed.c.chunk_id)
        .subquery("candidates")
    )


def _checked_on_chunks(candidates: Subquery, predicate: ColumnElement[bool]) -> Select[Any]:
    """The candidates (distinct, nearest first) that pass on `chunks`: k of them.

    Each candidate is looked up in `chunks` by primary key under the predicate and the chunks
    policy, in that order, until k pass: the LATERAL subquery (kept apart by OFFSET 0)
    can only run as the inner side of a nested loop, so the LIMIT stops the loop and the
    vectors of `chunks` are never read. A posting only proposes a chunk; `chunks` decides.
    """
    permitted = (
        select(*_CHUNK_COLUMNS)
        .where(Chunk.id == candidates.c.chunk_id, predicate)
        .offset(literal_column("0", Integer))  # a literal: a generic plan keeps no Limit node
        .lateral("permitted")
    )
    return (
        select(permitted, candidates.c.distance)
        .select_from(candidates.join(permitted, true()))
        .order_by(candidates.c.distance, candidates.c.chunk_id)
        .limit(_K)
    )


def _searched(hits_after: Callable[[ColumnElement[Any]], Select[*tuple[Any, ...]]]) -> Select[Any]:
    """The search `hits_after(started)`, joined to documents and policies, with the rows it examined.

    ROWS_READ is read twice in the statement itself (no extra round trip):
    - before the scan: the search's WHERE requires `started`, the `before` CTE's value
      as an uncorrelated subquery, which PostgreSQL evaluates once as a one-time filter
      before the scan starts;
    - after it: in a subquery over `count(*)` of the (materialised) hits, which can
      only run once the search has run to its end.
    The hits are LEFT JOINed to that one-row count, so the statement returns one row
    (with NULL chunk columns) even when nothing is permitted.
    """
    before = select(ROWS_READ.label("rows_read")).cte("before").prefix_with("MATERIALIZED")
    started = select(before.c.rows_read).scalar_subquery()
    hits = hits_after(started).cte("hits").prefix_with("MATERIALIZED")
    finished = select(func.count().label("hits")).select_from(hits).subquery("finished")
    after = select(ROWS_READ).select_from(finished).scalar_subquery()
    counted = select((after - started).label("examined")).subquery("counted")
    found = (
        hits.join(Document, Document.id == hits.c.document_id)
        .outerjoin(AccessPolicy, and_(AccessPolicy.tenant == hits.c.tenant,
                                      AccessPolicy.name == hits.c.policy_name))
    )
    return (
        select(hits, Document.external_id, Document.title, Document.source_uri,
               AccessPolicy.version.label("policy_version"), counted.c.examined)
        .select_from(counted.outerjoin(found, true()))
        .order_by(hits.c.distance, hits.c.id)
    )

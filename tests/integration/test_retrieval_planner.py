"""The retrieval planner on a real database, as the runtime role with row-level security on.

Picks exact for small permitted sets and HNSW for large ones; always returns
min(k, permitted) chunks, all of them permitted (combined conditions, deny lists,
clearance, attribute conditions, expiry, other tenants); reuses generic plans of a fixed shape.
"""

from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from sqlalchemy import event, func, select, text

from bench.corpus import Geometry
from bench.measure import ClockedRepository, StatementClock
from bench.truth import nearest, read_vectors
from gateway.db.access import bind_principal
from gateway.metrics import Metrics
from gateway.retrieval.planner import RetrievalPlanner
from gateway.retrieval.plans import AnnPlan, ExactPlan
from gateway.retrieval.repository import (
    ROWS_READ,
    posting_keys,
    search_parameters,
    search_settings,
    search_statement,
)
from gateway.retrieval.service import Retriever
from gateway.settings import RetrievalSettings
from policies.principal import Principal
from tests.support.explain import explain, plan_nodes
from tests.support.retrieval import LEVELS, Search, chunk_ids, corpus_database, permitted_chunk_ids

pytestmark = pytest.mark.integration

CHUNKS = 3000
NOW = datetime.now(UTC)
EU = {"region": ("EU",)}


def acme(sub, groups=(), clearance="restricted", attributes=EU, roles=()):
    return Principal(subject=sub, tenant="acme", groups=groups, roles=roles, clearance=clearance,
                     attributes=attributes)


PRINCIPALS = {
    "whole tenant": acme("ceo", ("staff",)),
    "one group": acme("p10", ("sel-10pct",)),
    "small group": acme("p1", ("sel-1pct",)),
    "tenant, user or two groups, clearance, conditions": acme(
        "u7", ("dept-3", "dept-17"), "internal", {"region": ("US",)}),
    "allowed everything, denied on most": acme("c1", ("staff", "contractors")),
    "low clearance, no attributes": acme("intern", ("staff",), "public", {}),
    "far from the queries": acme("f1", ("far-1pct",)),
    "other tenant": Principal(subject="g1", tenant="globex", groups=("staff",), clearance="restricted"),
    "nobody's group": acme("x", ("no-such-group",)),
}


@pytest.fixture(scope="module")
def corpus(pg_server, template_urls):
    yield from corpus_database(pg_server, CHUNKS)


@pytest.fixture(scope="module")
def queries():
    return Geometry(7).queries(6, seed=99)


@pytest.fixture(scope="module")
def reference(corpus):
    return {name: permitted_chunk_ids(corpus.superuser, p, NOW) for name, p in PRINCIPALS.items()}


@pytest.mark.parametrize("name", list(PRINCIPALS))
@pytest.mark.parametrize("k", [1, 10, 50])
async def test_results_are_min_k_and_permitted_for_every_principal(corpus, queries, reference, name, k):
    search = Search(corpus.runtime)
    try:
        permitted = reference[name]
        for vector in queries[:3]:
            retrieval = await search.retrieve(PRINCIPALS[name], vector.tolist(), k, NOW)
            ids = chunk_ids(retrieval)
            assert len(ids) == min(k, len(permitted))
            assert set(ids) <= permitted
            assert retrieval.complete is (len(permitted) >= k)
    finally:
        await search.close()


@pytest.mark.parametrize("name", list(PRINCIPALS))
async def test_exact_plan_returns_the_k_nearest_permitted_chunks_for_every_principal(
        corpus, queries, reference, name):
    # Postings only propose: deny lists, validity, conditions and policies are decided on
    # `chunks`, candidates rejected there are skipped, and the answer is the true top k.
    vectors = read_vectors(corpus.superuser)
    permitted = np.array(sorted(reference[name]), dtype=np.int64)
    truth = nearest(vectors, permitted, queries[:3], 10)
    principal = PRINCIPALS[name]
    search = Search(corpus.runtime)
    try:
        for vector, want in zip(queries[:3], truth, strict=True):
            async with search.bound(principal, NOW) as session:
                found = await search.repository.search(session, vector.tolist(), principal=principal,
                                                       now=NOW, levels=LEVELS, limit=10, plan=ExactPlan())
            assert {c.chunk_id for c in found.chunks} == set(want.tolist())
            scores = [c.score for c in found.chunks]
            assert scores == sorted(scores, reverse=True)
    finally:
        await search.close()


@pytest.mark.parametrize("name", list(PRINCIPALS))
async def test_exact_search_over_the_nearest_postings_returns_the_same_k_for_every_principal(
        corpus, queries, reference, name):
    # Bounded to 12 postings, most principals find their 10 among them; where `chunks`
    # rejects too many (deny lists) or fewer than 10 are permitted, the retriever searches
    # every posting again. Either way the answer is the true top k.
    vectors = read_vectors(corpus.superuser)
    permitted = np.array(sorted(reference[name]), dtype=np.int64)
    truth = nearest(vectors, permitted, queries[:3], 10)
    search = Search(corpus.runtime)
    search.retriever = Retriever(search.repository, _ShallowExact(depth=12))
    try:
        for vector, want in zip(queries[:3], truth, strict=True):
            retrieval = await search.retrieve(PRINCIPALS[name], vector.tolist(), 10, NOW)
            assert set(chunk_ids(retrieval)) == set(want.tolist())
            scores = [c.score for c in retrieval.chunks]
            assert scores == sorted(scores, reverse=True)
            assert retrieval.plan in ("exact", "exact+exact")
            assert retrieval.complete is (len(permitted) >= 10)
    finally:
        await search.close()


async def test_bounded_exact_search_goes_deeper_when_chunks_reject_its_nearest_postings(corpus, queries):
    # Allowed everything, denied on most: the nearest postings are mostly denied chunks.
    search = Search(corpus.runtime)
    search.retriever = Retriever(search.repository, _ShallowExact(depth=12))
    try:
        denied = await search.retrieve(PRINCIPALS["allowed everything, denied on most"],
                                       queries[0].tolist(), 10, NOW)
        plain = await search.retrieve(PRINCIPALS["small group"], queries[0].tolist(), 10, NOW)
    finally:
        await search.close()
    assert (denied.plan, len(denied.chunks)) == ("exact+exact", 10)
    assert (plain.plan, len(plain.chunks)) == ("exact", 10)


async def test_bounded_exact_search_scores_every_posting_but_sorts_only_the_nearest(corpus, queries):
    search = Search(corpus.runtime)
    principal = PRINCIPALS["one group"]
    try:
        async with search.bound(principal, NOW) as session:
            plan = await explain(session, bound_statement(ExactPlan(depth=40), principal, queries[0]))
    finally:
        await search.close()
    (postings,) = _chunk_scans(plan, "chunk_postings")
    assert postings["Actual Rows"] > 200
    sorts = [n for n in plan_nodes(plan["Plan"]) if n["Node Type"] == "Sort"]
    assert "top-N heapsort" in {n.get("Sort Method") for n in sorts}
    assert max(n["Actual Rows"] for n in sorts) <= 40  # no sort of every posting


async def test_planner_picks_exact_for_a_tiny_permitted_set_and_hnsw_for_a_large_one(corpus, queries):
    search = Search(corpus.runtime, RetrievalSettings(exact_threshold=4000))
    try:
        tiny = await search.retrieve(PRINCIPALS["small group"], queries[0].tolist(), 10, NOW)
        large = await search.retrieve(PRINCIPALS["whole tenant"], queries[0].tolist(), 10, NOW)
    finally:
        await search.close()
    assert tiny.plan == "exact"
    assert large.plan == "ann"
    assert tiny.estimate is not None and tiny.estimate < 100
    assert large.estimate is not None and large.estimate > 2000
    assert 0 < tiny.candidates < 200  # only the postings of its keys, and the chunks it checked
    assert 0 < large.candidates < CHUNKS


async def test_deny_heavy_principal_is_not_planned_as_a_small_exact_scan(corpus, queries):
    # 'contractors' are denied on 90%: the allow lists alone would call the set tiny, but
    # the exact scan would examine the whole tenant. The planner weighs both.
    search = Search(corpus.runtime, RetrievalSettings(exact_threshold=4000))
    try:
        retrieval = await search.retrieve(PRINCIPALS["allowed everything, denied on most"],
                                          queries[0].tolist(), 10, NOW)
    finally:
        await search.close()
    assert retrieval.plan.startswith("ann")
    assert len(retrieval.chunks) == 10


class _HnswOnly(RetrievalPlanner):
    """The planner with its choice fixed to HNSW (to exercise the fallback)."""

    def choose(self, estimate, k, keys):
        return self.ann(estimate.permitted, estimate.index_rows, k)


class _ShallowExact(RetrievalPlanner):
    """The planner with its choice fixed to exact search over the `depth` nearest postings."""

    def __init__(self, depth):
        super().__init__(RetrievalSettings(), LEVELS)
        self.depth = depth

    def choose(self, estimate, k, keys):
        return ExactPlan(self.depth)


async def test_short_hnsw_result_falls_back_to_exact_and_stays_complete(corpus, queries, reference):
    # Fewer permitted chunks than k, all in topics no query is near: HNSW must come back
    # short, and the exact plan then returns every permitted chunk.
    permitted = reference["far from the queries"]
    assert 0 < len(permitted) < 50
    search = Search(corpus.runtime)
    search.retriever = Retriever(search.repository, _HnswOnly(RetrievalSettings(), LEVELS))
    try:
        retrieval = await search.retrieve(PRINCIPALS["far from the queries"], queries[0].tolist(), 50, NOW)
    finally:
        await search.close()
    assert retrieval.plan == "ann+exact"
    assert set(chunk_ids(retrieval)) == permitted
    assert retrieval.complete is False


def bound_statement(plan, principal, query, k=10):
    """The search statement with this query's values filled in (for EXPLAIN)."""
    return search_statement(plan, principal).params(search_parameters(
        query.tolist(), principal=principal, now=NOW, levels=LEVELS, limit=k, plan=plan))


def _chunk_scans(plan, table="chunks"):
    return [n for n in plan_nodes(plan["Plan"]) if n.get("Relation Name") == table]


async def test_exact_plan_computes_distances_only_for_the_callers_postings(corpus, queries, reference):
    search = Search(corpus.runtime)
    principal = PRINCIPALS["small group"]
    try:
        async with search.bound(principal, NOW) as session:
            plan = await explain(session, bound_statement(ExactPlan(), principal, queries[0]))
    finally:
        await search.close()
    # distances: one per posting of the caller's keys (its permitted rows, a few more at
    # most: postings know allow and clearance, not deny lists, validity or conditions)
    (postings,) = _chunk_scans(plan, "chunk_postings")
    assert postings["Index Name"] == "pk_chunk_postings"
    assert len(reference["small group"]) <= postings["Actual Rows"] < CHUNKS / 20
    # row-level security's key condition (an init plan) bounds the index scan: no
    # writer's policy ORed beside it, to be tested on every posting scanned
    assert "InitPlan" in postings["Index Cond"]
    assert " OR " not in postings.get("Filter", "")
    # chunks: looked up by primary key, nearest candidate first, until 10 passed
    (scan,) = _chunk_scans(plan)
    assert (scan["Node Type"], scan["Index Name"]) == ("Index Scan", "pk_chunks")
    assert scan["Actual Rows"] * scan["Actual Loops"] == 10
    assert scan["Actual Loops"] < postings["Actual Rows"] / 2


async def test_hnsw_plan_uses_the_vector_index_under_row_level_security(corpus, queries):
    search = Search(corpus.runtime)
    principal = PRINCIPALS["whole tenant"]
    try:
        async with search.bound(principal, NOW) as session:
            await search.repository.apply_search_settings(session, AnnPlan(100, 5000), 10)
            plan = await explain(session, bound_statement(AnnPlan(100, 5000), principal, queries[0]))
    finally:
        await search.close()
    (scan,) = _chunk_scans(plan)
    assert scan["Node Type"] == "Index Scan"
    assert scan["Index Name"] == "ix_chunks_embedding_hnsw"
    assert scan["Actual Rows"] == 10


GENERIC_CASES = {
    "exact": ("small group", ExactPlan()),
    "bounded exact": ("small group", ExactPlan(depth=40)),
    "hnsw": ("whole tenant", AnnPlan(ef_search=100, max_scan_tuples=5000)),
}


@pytest.mark.parametrize("case", list(GENERIC_CASES))
async def test_repeated_searches_reuse_one_generic_plan_shaped_like_the_custom_plan(
        corpus, queries, reference, case):
    # Searches run prepared, with a generic plan made once per connection: it cannot see
    # the principal's values, so its shape must not depend on them. Nothing else is prepared.
    name, plan = GENERIC_CASES[case]
    principal = PRINCIPALS[name]
    settings = search_settings(plan, 10)
    permitted = np.array(sorted(reference[name]), dtype=np.int64)
    truth = nearest(read_vectors(corpus.superuser), permitted, queries, 10)
    search = Search(corpus.runtime)
    try:
        async with search.sessions() as session:
            for i in range(8):
                async with session.begin():
                    await bind_principal(session, principal, LEVELS, NOW, settings)
                    found = await search.repository.search(
                        session, queries[i % len(queries)].tolist(), principal=principal,
                        now=NOW, levels=LEVELS, limit=10,
                        plan=plan, settings_bound=True)
                ids = {c.chunk_id for c in found.chunks}
                if isinstance(plan, ExactPlan):
                    assert ids == set(truth[i % len(queries)].tolist())
                assert len(ids) == 10 and ids <= reference[name]
            async with session.begin():
                prepared = (await session.execute(text(
                    "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"))).all()
                await bind_principal(session, principal, LEVELS, NOW, settings)
                generic = await _generic_plan(session, prepared[0].statement)
            async with session.begin():
                custom_settings = {k: v for k, v in settings.items() if k != "plan_cache_mode"}
                await bind_principal(session, principal, LEVELS, NOW, custom_settings)
                custom = await explain(session, bound_statement(plan, principal, queries[0]), analyze=False)
    finally:
        await search.close()
    assert [(row.generic_plans, row.custom_plans) for row in prepared] == [(8, 0)]
    assert _shape(generic) == _shape(custom)
    (generic_scan,), (custom_scan,) = _chunk_scans(generic), _chunk_scans(custom)
    assert "$" in generic_scan["Filter"]  # parameters: the plan was made without the values
    assert "'{user:" in custom_scan["Filter"]


@pytest.mark.parametrize("plan", [ExactPlan(), AnnPlan(ef_search=100, max_scan_tuples=5000)])
async def test_a_generic_plan_reused_across_principals_serves_each_only_its_own_chunks(
        corpus, queries, reference, plan):
    # One connection, one prepared statement, every principal in turn (other tenant and
    # nobody's group included): row-level security and the predicate are evaluated with
    # each transaction's binding, never with the values of the run that made the plan.
    search = Search(corpus.runtime)
    try:
        async with search.sessions() as session:
            for name, principal in [*PRINCIPALS.items(), *PRINCIPALS.items()]:
                async with session.begin():
                    await bind_principal(session, principal, LEVELS, NOW, search_settings(plan, 10))
                    found = await search.repository.search(
                        session, queries[0].tolist(), principal=principal,
                        now=NOW, levels=LEVELS, limit=10,
                        plan=plan, settings_bound=True)
                ids = {c.chunk_id for c in found.chunks}
                assert ids <= reference[name], name
                if isinstance(plan, ExactPlan):
                    assert len(ids) == min(10, len(reference[name])), name
            async with session.begin():
                generic = (await session.execute(text(
                    "SELECT sum(generic_plans), sum(custom_plans) FROM pg_prepared_statements"))).one()
    finally:
        await search.close()
    assert tuple(generic) == (2 * len(PRINCIPALS), 0)


async def _generic_plan(session, statement):
    connection = (await (await session.connection()).get_raw_connection()).driver_connection
    cursor = await connection.execute("EXPLAIN (GENERIC_PLAN, FORMAT JSON) " + statement)
    return dict((await cursor.fetchone())[0][0])


def _shape(plan):
    # Scans, indexes, joins, sorts and limits. Left out: nodes that only evaluate
    # expressions (a custom plan folds the values away) and caches in front of a scan
    # (Memoize, Materialize: chosen by the estimated row count of k, a parameter here).
    return [(n["Node Type"], n.get("Relation Name"), n.get("Index Name"), n.get("Join Type"))
            for n in plan_nodes(plan["Plan"])
            if n["Node Type"] not in ("Result", "ProjectSet", "Function Scan", "Memoize", "Materialize")]


@pytest.mark.parametrize("plan", [ExactPlan(), AnnPlan(ef_search=100, max_scan_tuples=5000)])
async def test_rows_examined_are_counted_from_before_the_scan_to_after_it(corpus, queries, plan):
    # The counter is read twice inside the search statement (no extra round trip); the
    # difference must be every row the search read: what separate reads around it see.
    search = Search(corpus.runtime)
    principal = PRINCIPALS["one group"]
    try:
        async with search.bound(principal, NOW) as session:
            before = (await session.execute(select(ROWS_READ))).scalar_one()
            found = await search.repository.search(session, queries[2].tolist(), principal=principal,
                                                   now=NOW, levels=LEVELS, limit=10, plan=plan)
            after = (await session.execute(select(ROWS_READ))).scalar_one()
    finally:
        await search.close()
    assert len(found.chunks) == 10
    assert found.examined == after - before > 10


async def test_rows_examined_include_what_parallel_workers_would_have_read(corpus, queries, reference):
    # The counters are this backend's: rows read by parallel workers would be missing from
    # the audit's figure. The runtime engine turns parallel query off, so an exact search
    # over the whole tenant counts every posting it scored, even where the costs say
    # workers would pay off (as they do on a large corpus) and the leader leaves them the scan.
    search = Search(corpus.runtime)
    principal = PRINCIPALS["whole tenant"]
    try:
        async with search.bound(principal, NOW) as session:
            await session.execute(select(*(func.set_config(name, "0", True) for name in (
                "parallel_setup_cost", "parallel_tuple_cost", "min_parallel_table_scan_size",
                "min_parallel_index_scan_size", "parallel_leader_participation"))))
            found = await search.repository.search(session, queries[0].tolist(), principal=principal,
                                                   now=NOW, levels=LEVELS, limit=10, plan=ExactPlan())
    finally:
        await search.close()
    with psycopg.connect(corpus.superuser) as conn:
        (scored,) = conn.execute("SELECT count(*) FROM chunk_postings WHERE key = ANY(%s)",
                                 (posting_keys(principal),)).fetchone()
    assert found.examined >= scored > len(reference["whole tenant"]) / 2


async def test_a_search_with_nothing_permitted_returns_no_chunks_and_counts_what_it_read(corpus, queries):
    search = Search(corpus.runtime)
    principal = PRINCIPALS["nobody's group"]
    try:
        async with search.bound(principal, NOW) as session:
            found = await search.repository.search(session, queries[0].tolist(), principal=principal,
                                                   now=NOW, levels=LEVELS, limit=10, plan=ExactPlan())
    finally:
        await search.close()
    assert found.chunks == []
    assert found.examined == 0


async def test_exact_scan_of_a_small_tenant_reads_none_of_the_other_tenants_rows(corpus, queries, reference):
    # Every acme chunk also allows `group:staff`; the access index keys are tenant-qualified,
    # so a globex reader's scan starts from globex rows only.
    search = Search(corpus.runtime)
    principal = PRINCIPALS["other tenant"]
    try:
        async with search.bound(principal, NOW) as session:
            plan = await explain(session, bound_statement(ExactPlan(), principal, queries[0]))
    finally:
        await search.close()
    (postings,) = _chunk_scans(plan, "chunk_postings")
    assert postings["Actual Rows"] == len(reference["other tenant"])


async def test_a_principals_estimate_is_looked_up_once_and_reused_within_its_ttl(corpus, queries):
    # The estimate belongs to the principal, not the query: the second query of the same
    # principal plans from the cached estimate (no lookup), another principal looks up its own.
    search = Search(corpus.runtime)
    lookups = []

    def count_lookups(conn, cursor, statement, *args):
        if "chunk_access_counts" in statement:
            lookups.append(statement)

    event.listen(search.engine.sync_engine, "before_cursor_execute", count_lookups)
    try:
        first = await search.retrieve(PRINCIPALS["small group"], queries[0].tolist(), 10, NOW)
        second = await search.retrieve(PRINCIPALS["small group"], queries[1].tolist(), 10, NOW)
        assert len(lookups) == 1
        await search.retrieve(PRINCIPALS["one group"], queries[0].tolist(), 10, NOW)
        assert len(lookups) == 2
    finally:
        await search.close()
    assert first.estimate == second.estimate > 0
    assert second.plan == "exact"


async def test_ttl_zero_looks_the_estimate_up_for_every_query(corpus, queries):
    search = Search(corpus.runtime, RetrievalSettings(estimate_ttl_s=0))
    lookups = []
    event.listen(search.engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: lookups.append(statement)
                 if "chunk_access_counts" in statement else None)
    try:
        for vector in queries[:3]:
            await search.retrieve(PRINCIPALS["small group"], vector.tolist(), 10, NOW)
    finally:
        await search.close()
    assert len(lookups) == 3


def record_statements(search):
    """Every statement `search` sends, in order: SQLAlchemy's, and the searches run on the driver."""
    statements = []
    event.listen(search.engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: statements.append(statement))
    fetch = search.repository.fetch

    async def recorded_fetch(driver, sql, parameters):
        statements.append(sql)
        return await fetch(driver, sql, parameters)

    search.repository.fetch = recorded_fetch
    return statements


async def test_with_a_cached_estimate_the_hnsw_settings_ride_in_the_binding_statement(corpus, queries):
    # First query: bind, look the estimate up, set the plan's index settings, search.
    # Later queries know the plan before binding: bind (with the settings), search.
    search = Search(corpus.runtime)
    principal = PRINCIPALS["whole tenant"]
    statements = record_statements(search)
    try:
        first = await search.retrieve(principal, queries[0].tolist(), 10, NOW)
        sent_first, statements[:] = len(statements), []
        async with search.sessions() as session, session.begin():
            second = await search.retriever.retrieve(session, queries[1].tolist(), principal=principal,
                                                     now=NOW, k=10)
            sent_second = len(statements)
            applied = (await session.execute(
                text("SELECT current_setting('hnsw.ef_search'), current_setting('enable_sort'),"
                     " current_setting('gateway.tenant')"))).one()
    finally:
        await search.close()
    assert (first.plan, second.plan) == ("ann", "ann")
    assert len(chunk_ids(second)) == 10
    assert sent_first == 4
    assert sent_second == 2
    assert "set_config('gateway.tenant'" in statements[0] and "search_name_3" in statements[0]
    assert "chunks.embedding <=>" in statements[1]  # the search, sent on the driver connection
    plan = search.planner.choose(search.planner.cached(principal), 10, len(principal.principal_strings))
    assert tuple(applied) == (str(plan.ef_search), "off", "acme")


async def test_the_benchmark_clock_leaves_out_the_binding_statement_and_counts_the_search(corpus, queries):
    search = Search(corpus.runtime)
    clock = StatementClock(search.engine)
    search.repository = ClockedRepository(Metrics(), clock)
    retriever = Retriever(search.repository, search.planner)
    principal = PRINCIPALS["small group"]
    statements = record_statements(search)
    totals = []
    try:
        async with search.sessions() as session, session.begin():
            await retriever.retrieve(session, queries[0].tolist(), principal=principal, now=NOW,
                                     k=10)  # caches the estimate
            with clock.running():
                await bind_principal(session, principal, LEVELS, NOW)
            totals.append(clock.total)
            with clock.running():
                await session.execute(text("SELECT 1"))
            totals.append(clock.total)
        async with search.sessions() as session, session.begin():
            statements.clear()
            with clock.running():
                await retriever.retrieve(session, queries[1].tolist(), principal=principal, now=NOW, k=10)
            totals.append(clock.total)
    finally:
        await search.close()
    assert totals[0] == 0  # the binding alone
    assert totals[1] > 0  # any other statement through SQLAlchemy
    # The second retrieval: the binding, which the clock leaves out, and the search on the
    # driver connection, which it counts.
    assert len(statements) == 2 and "<=>" in statements[1]
    assert totals[2] > 0

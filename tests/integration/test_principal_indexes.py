"""Principal indexes: HNSW graphs of one principal string's postings, used by the planner.

On a real database as the runtime role: a caller holding an indexed string is searched
over that string's graph (the partial index, also in the generic plan), gets
min(k, permitted) chunks, all permitted, whatever else it holds (other keys, deny
lists, clearance, conditions); another tenant never sees the index; a dropped index is
no longer planned with; keys are quoted as literals whatever they contain.
"""

from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from sqlalchemy import text

from bench.corpus import Geometry
from bench.truth import nearest, read_vectors
from gateway.db.access import bind_principal
from gateway.retrieval import principal_indexes
from gateway.retrieval.planner import RetrievalPlanner
from gateway.retrieval.plans import KeyedPlan
from gateway.retrieval.repository import search_parameters, search_settings, search_statement
from gateway.retrieval.service import Retriever
from gateway.settings import RetrievalSettings
from policies.principal import Principal
from tests.support.explain import explain, plan_nodes
from tests.support.retrieval import LEVELS, Search, chunk_ids, corpus_database, permitted_chunk_ids

pytestmark = pytest.mark.integration

CHUNKS = 3000
NOW = datetime.now(UTC)
EU = {"region": ("EU",)}
INDEXED = ("group:sel-10pct", "group:dept-3")
# A low threshold: at 3,000 chunks exact search is otherwise the cheaper plan for everyone.
SETTINGS = RetrievalSettings(exact_threshold=100, estimate_ttl_s=0)
ODD = "group:o'brien %(k)s 100% \\ \"x\""


def acme(sub, groups=(), clearance="restricted", attributes=EU):
    return Principal(subject=sub, tenant="acme", groups=groups, clearance=clearance, attributes=attributes)


PRINCIPALS = {
    "one indexed group": acme("p10", ("sel-10pct",)),
    "indexed group, other group, clearance, conditions": acme(
        "u7", ("dept-3", "dept-17"), "internal", {"region": ("US",)}),
    "indexed group, low clearance": acme("i1", ("sel-10pct",), "public", {}),
    "indexed group, denied on most": acme("c2", ("dept-3", "contractors")),
}


@pytest.fixture(scope="module")
def corpus(pg_server, template_urls):
    for urls in corpus_database(pg_server, CHUNKS):
        for principal in INDEXED:
            principal_indexes.create(urls.owner, "acme", principal)
        yield urls


@pytest.fixture(scope="module")
def queries():
    return Geometry(7).queries(6, seed=99)


@pytest.fixture(scope="module")
def reference(corpus):
    return {name: permitted_chunk_ids(corpus.superuser, p, NOW) for name, p in PRINCIPALS.items()}


def test_indexes_are_built_valid_and_listed_with_their_postings(corpus):
    listed = {i.principal: i for i in principal_indexes.listing(corpus.owner, "acme")}
    assert set(listed) == set(INDEXED)
    with psycopg.connect(corpus.superuser) as conn:
        for principal, index in listed.items():
            postings = conn.execute("SELECT count(*) FROM chunk_postings WHERE key = %s",
                                    (principal_indexes.posting_key("acme", principal),)).fetchone()[0]
            assert index.valid and index.bytes > 0 and index.postings == postings > 0
    assert principal_indexes.listing(corpus.owner, "globex") == []


def test_a_second_index_for_the_same_string_or_a_drop_of_a_missing_one_is_refused(corpus):
    with pytest.raises(principal_indexes.PrincipalIndexError, match="already has"):
        principal_indexes.create(corpus.owner, "acme", INDEXED[0])
    with pytest.raises(principal_indexes.PrincipalIndexError, match="has no principal index"):
        principal_indexes.drop(corpus.owner, "acme", "group:nobody")
    with pytest.raises(principal_indexes.PrincipalIndexError, match="empty"):
        principal_indexes.create(corpus.owner, "acme", "")


@pytest.mark.parametrize("name", list(PRINCIPALS))
@pytest.mark.parametrize("k", [1, 10, 50])
async def test_callers_holding_an_indexed_string_get_min_k_permitted_chunks(corpus, queries, reference, name, k):
    # whichever plan the costs pick (keyed, or exact where few are permitted)
    permitted = reference[name]
    search = Search(corpus.runtime, SETTINGS)
    try:
        for vector in queries[:3]:
            retrieval = await search.retrieve(PRINCIPALS[name], vector.tolist(), k, NOW)
            ids = chunk_ids(retrieval)
            assert len(ids) == min(k, len(permitted))
            assert set(ids) <= permitted
            scores = [c.score for c in retrieval.chunks]
            assert scores == sorted(scores, reverse=True)
    finally:
        await search.close()


async def test_the_indexed_groups_graph_finds_nearly_the_exact_answer(corpus, queries, reference):
    name = "one indexed group"
    permitted = np.array(sorted(reference[name]), dtype=np.int64)
    truth = nearest(read_vectors(corpus.superuser), permitted, queries, 10)
    search = Search(corpus.runtime, SETTINGS)
    try:
        retrievals = [await search.retrieve(PRINCIPALS[name], q.tolist(), 10, NOW) for q in queries]
    finally:
        await search.close()
    assert {r.plan for r in retrievals} == {"key-ann"}
    found = [set(chunk_ids(r)) for r in retrievals]
    recall = np.mean([len(got & set(want.tolist())) / 10 for got, want in zip(found, truth, strict=True)])
    assert recall >= 0.9


async def test_the_estimate_names_the_callers_indexed_strings_and_their_postings(corpus):
    search = Search(corpus.runtime, SETTINGS)
    principal = PRINCIPALS["indexed group, other group, clearance, conditions"]
    try:
        async with search.bound(principal, NOW) as session:
            estimate = await search.planner.estimate(session, principal)
    finally:
        await search.close()
    with psycopg.connect(corpus.superuser) as conn:
        dept3 = conn.execute("SELECT count(*) FROM chunk_postings WHERE key = %s",
                             (principal_indexes.posting_key("acme", "group:dept-3"),)).fetchone()[0]
    assert estimate.indexed == ("group:dept-3",)
    assert estimate.indexed_scanned == dept3
    assert 0 < estimate.indexed_scanned < estimate.scanned


async def test_another_tenant_never_sees_the_index_of_a_string_it_also_uses(corpus, queries):
    # globex callers hold `group:dept-3` too: acme's index must neither be planned with
    # nor be visible to them (row-level security on principal_indexes).
    principal = Principal(subject="g2", tenant="globex", groups=("dept-3", "staff"), clearance="restricted")
    search = Search(corpus.runtime, SETTINGS)
    try:
        async with search.bound(principal, NOW) as session:
            estimate = await search.planner.estimate(session, principal)
            visible = (await session.execute(text("SELECT count(*) FROM principal_indexes"))).scalar_one()
        retrieval = await search.retrieve(principal, queries[0].tolist(), 10, NOW)
    finally:
        await search.close()
    assert estimate.indexed == () and visible == 0
    assert not retrieval.plan.startswith("key-ann")
    assert set(chunk_ids(retrieval)) <= permitted_chunk_ids(corpus.superuser, principal, NOW)


def _bound(plan, principal, query, k=10):
    return search_statement(plan, principal).params(search_parameters(
        query.tolist(), principal=principal, now=NOW, levels=LEVELS, limit=k, plan=plan))


async def test_each_indexed_string_is_read_through_its_own_graph_also_in_the_generic_plan(corpus, queries):
    principal = PRINCIPALS["indexed group, other group, clearance, conditions"]
    plan = KeyedPlan(("group:dept-3",), ef_search=64, max_scan_tuples=2000, depth=20, rest_depth=60)
    settings = search_settings(plan, 10)
    search = Search(corpus.runtime, SETTINGS)
    try:
        async with search.sessions() as session:
            for i in range(7):  # prepared, then reused with its generic plan
                async with session.begin():
                    await bind_principal(session, principal, LEVELS, NOW, settings)
                    found = await search.repository.search(
                        session, queries[i % len(queries)].tolist(), principal=principal, now=NOW,
                        levels=LEVELS, limit=10, plan=plan, settings_bound=True)
                    assert len(found.chunks) == 10
            async with session.begin():
                prepared = (await session.execute(text(
                    "SELECT generic_plans FROM pg_prepared_statements"))).scalars().all()
                await bind_principal(session, principal, LEVELS, NOW, settings)
                analyzed = await explain(session, _bound(plan, principal, queries[0]))
    finally:
        await search.close()
    assert prepared == [7]
    scans = {n.get("Index Name"): n for n in plan_nodes(analyzed["Plan"])
             if n.get("Relation Name") == "chunk_postings"}
    graph = principal_indexes.index_name("acme", "group:dept-3")
    assert set(scans) == {graph, "pk_chunk_postings"}  # the other keys: scored exactly
    assert scans[graph]["Actual Rows"] <= 20


class _Keyed(RetrievalPlanner):
    """The planner with its choice fixed to a keyed plan over `principals`."""

    def __init__(self, principals):
        super().__init__(SETTINGS, LEVELS)
        self.principals = principals

    def choose(self, estimate, k, keys):
        return KeyedPlan(self.principals, ef_search=64, max_scan_tuples=2000, depth=20, rest_depth=60)


async def test_a_string_of_quotes_percents_and_backslashes_is_a_safe_literal(corpus, queries, reference):
    # The indexed key is rendered into the statement text: it must stay one quoted literal.
    principal = acme("p10", ("sel-10pct", ODD[len("group:"):]))
    principal_indexes.create(corpus.owner, "acme", ODD)
    search = Search(corpus.runtime, SETTINGS)
    search.retriever = Retriever(search.repository, _Keyed((ODD, "group:sel-10pct")))
    try:
        retrieval = await search.retrieve(principal, queries[0].tolist(), 10, NOW)
    finally:
        await search.close()
        principal_indexes.drop(corpus.owner, "acme", ODD)
    assert retrieval.plan == "key-ann"
    assert set(chunk_ids(retrieval)) <= reference["one indexed group"] and len(retrieval.chunks) == 10


async def test_a_dropped_index_is_no_longer_planned_with(corpus, queries, reference):
    name = "one indexed group"
    search = Search(corpus.runtime, SETTINGS)
    try:
        principal_indexes.drop(corpus.owner, "acme", "group:sel-10pct")
        retrieval = await search.retrieve(PRINCIPALS[name], queries[0].tolist(), 10, NOW)
    finally:
        await search.close()
        principal_indexes.create(corpus.owner, "acme", "group:sel-10pct")
    assert retrieval.plan == "ann"
    assert set(chunk_ids(retrieval)) <= reference[name] and len(retrieval.chunks) == 10
    with psycopg.connect(corpus.superuser) as conn:
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE %s",
                            (principal_indexes.INDEX_PREFIX + "%",)).fetchone()[0] == len(INDEXED)


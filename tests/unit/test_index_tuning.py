"""`gateway index tune` advice from index facts (no I/O): each recommendation and its trigger."""

from gateway.retrieval.planner import RetrievalPlanner
from gateway.retrieval.plans import KeyedPlan
from gateway.retrieval.tuning import (
    IndexedPrincipal,
    IndexFacts,
    PrincipalPlan,
    TenantReport,
    recommendations,
    single,
)
from gateway.settings import RetrievalSettings
from policies.model import ClassificationLevels

GB = 2**30
PLANNER = RetrievalPlanner(RetrievalSettings(), ClassificationLevels())


def facts(**changes):
    healthy = dict(rows=1_000_000, table_bytes=2 * GB, hnsw_bytes=2 * GB, postings_bytes=GB,
                   hnsw_options={"m": "16", "ef_construction": "128"}, live_rows=1_000_000,
                   changed_rows=0, analyzed=True, shared_buffers=6 * GB, maintenance_work_mem=4 * GB,
                   huge_pages="on", huge_pages_needed=3172)
    return IndexFacts(**{**healthy, **changes})


def test_a_healthy_index_needs_nothing():
    assert recommendations(facts(), [], PLANNER, 10) == []


def test_each_problem_gets_its_own_advice():
    advice = recommendations(facts(changed_rows=200_000, shared_buffers=4 * GB, maintenance_work_mem=GB // 16,
                                   hnsw_options={"m": "16", "ef_construction": "64"}, huge_pages="off"),
                             [], PLANNER, 10)
    assert [a.split(" ")[0] for a in advice] == ["ANALYZE", "shared_buffers", "shared", "maintenance_work_mem",
                                                  "rebuild"]
    assert "200,000 rows changed" in advice[0]


def test_large_shared_memory_on_ordinary_pages_is_told_to_use_huge_pages():
    (advice,) = recommendations(facts(huge_pages="off"), [], PLANNER, 10)
    assert advice.startswith("shared memory (6.0 GB of shared_buffers) is on ordinary pages")
    assert "vm.nr_hugepages=3172" in advice


def test_small_shared_memory_or_unknown_page_needs_get_no_huge_page_advice():
    assert recommendations(facts(huge_pages="off", shared_buffers=GB, postings_bytes=0,
                                 table_bytes=GB // 4, hnsw_bytes=GB // 4), [], PLANNER, 10) == []
    assert recommendations(facts(huge_pages="off", huge_pages_needed=-1), [], PLANNER, 10) == []


def test_never_analyzed_table_is_told_to_analyze():
    (advice,) = recommendations(facts(analyzed=False), [], PLANNER, 10)
    assert advice.startswith("ANALYZE chunks")


def tenant(*chunks, indexes=(), name="acme"):
    """A tenant report whose principal strings group:p0, group:p1 ... hold `chunks` chunks each."""
    plans = [PrincipalPlan(f"group:p{n}", count, "hnsw") for n, count in enumerate(chunks)]
    return TenantReport(name, max(chunks, default=0), 0.5, plans, list(indexes))


def test_a_large_tenant_with_a_small_share_no_longer_gets_a_partial_index_on_chunks():
    """Searches are generic plans with the tenant as a parameter: a tenant partial index is never used."""
    tenants = [TenantReport("o'brien corp", 50_000, 0.05), TenantReport("big", 900_000, 0.9)]
    assert recommendations(facts(), tenants, PLANNER, 10) == []


def created(advice):
    """The arguments (tenant, principal string) of each create-principal command advised."""
    return [line.split("create-principal --tenant ")[1].split("  #")[0]
            for text in advice for line in text.splitlines() if "create-principal" in line]


def test_a_principal_string_searched_by_hnsw_gets_a_principal_index_suggestion():
    (advice,) = recommendations(facts(), [tenant(100_000, name="o'brien corp")], PLANNER, 10)
    assert advice.startswith("principal indexes for tenant \"o'brien corp\": callers holding these strings")
    assert advice.endswith("\n    gateway index create-principal --tenant 'o'\"'\"'brien corp' group:p0  "
                           "# 100,000 chunks (10.0% of the index), about 195.3 MB")  # 2 kB per posting


def test_principal_index_advice_quotes_the_principal_for_the_shell():
    report = TenantReport("acme", 100_000, 0.1, [PrincipalPlan("user:ann o'neil", 100_000, "hnsw")])
    assert created(recommendations(facts(), [report], PLANNER, 10)) == ["acme 'user:ann o'\"'\"'neil'"]


def test_no_principal_index_below_the_recall_floor_where_the_planner_searches_exactly():
    floor = PLANNER.recall_floor(1_000_000, 10)
    assert created(recommendations(facts(), [tenant(floor - 1, floor)], PLANNER, 10)) == ["acme group:p1"]


def test_no_principal_index_for_a_string_holding_more_than_half_of_the_index():
    advice = recommendations(facts(), [tenant(1_000_000, 500_001, 400_000)], PLANNER, 10)
    assert created(advice) == ["acme group:p2"]
    shallow = RetrievalPlanner(RetrievalSettings(ef_search=10), ClassificationLevels())
    assert isinstance(shallow.choose(single("group:p0", 600_000, 1_000_000, indexed=True), 10, keys=1), KeyedPlan)
    assert recommendations(facts(), [tenant(600_000)], shallow, 10) == []  # the main graph serves it as well


def test_no_principal_index_advice_for_a_string_that_has_one():
    indexed = IndexedPrincipal("group:p0", 100_000, valid=True, bytes=200 * 2**20)
    advice = recommendations(facts(), [tenant(100_000, 90_000, indexes=[indexed])], PLANNER, 10)
    assert created(advice) == ["acme group:p1"]


def test_an_invalid_principal_index_is_to_be_dropped_and_created_again():
    broken = IndexedPrincipal("group:p0", 100_000, valid=False, bytes=0)
    (advice,) = recommendations(facts(), [tenant(100_000, indexes=[broken])], PLANNER, 10)
    assert "is INVALID" in advice
    assert advice.endswith("\n    gateway index drop-principal --tenant acme group:p0"
                           "\n    gateway index create-principal --tenant acme group:p0")


def test_a_principal_index_the_planner_never_uses_is_to_be_dropped():
    small = IndexedPrincipal("group:small", 5_000, valid=True, bytes=10 * 2**20)
    (advice,) = recommendations(facts(), [tenant(indexes=[small])], PLANNER, 10)
    assert advice.startswith("the planner does not use the principal index of 'group:small'")
    assert "free 10.0 MB" in advice and advice.endswith("drop-principal --tenant acme group:small")

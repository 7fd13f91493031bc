"""`gateway index tune` advice from index facts (no I/O): each recommendation and its trigger."""

from gateway.retrieval.planner import RetrievalPlanner
from gateway.retrieval.tuning import IndexFacts, TenantReport, recommendations
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


def test_a_large_tenant_with_a_small_share_gets_a_partial_index_suggestion():
    tenants = [TenantReport("o'brien corp", 50_000, 0.05), TenantReport("tiny", 5_000, 0.005),
               TenantReport("big", 900_000, 0.9)]
    (advice,) = recommendations(facts(), tenants, PLANNER, 10)
    assert advice.startswith("tenant \"o'brien corp\" holds 5.0% of the index and is too large")
    assert "ix_chunks_embedding_hnsw_o_brien_corp" in advice
    assert "WHERE tenant = 'o''brien corp'" in advice  # quoted as a SQL literal

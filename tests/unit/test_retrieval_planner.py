"""The planner's decisions from its estimate (no I/O): exact for small sets, HNSW for large ones."""

import pytest

from gateway.retrieval.planner import MIN_SCAN_TUPLES, Estimate, EstimateCache, RetrievalPlanner
from gateway.retrieval.plans import AnnPlan, ExactPlan, KeyedPlan
from gateway.settings import RetrievalSettings
from policies.model import ClassificationLevels

MILLION = 1_000_000


def planner(threshold=10_000, ef_search=100, max_scan_tuples=50_000):
    settings = RetrievalSettings(exact_threshold=threshold, ef_search=ef_search,
                                 max_scan_tuples=max_scan_tuples)
    return RetrievalPlanner(settings, ClassificationLevels())


def estimate(permitted, *, scanned=None, rows=MILLION, indexed=(), indexed_scanned=0):
    return Estimate(scanned=permitted if scanned is None else scanned, allowed=permitted, denied=0,
                    index_rows=rows, indexed=indexed, indexed_scanned=indexed_scanned)


def test_threshold_is_the_exact_limit_where_hnsw_needs_its_largest_candidate_list():
    # at 1M rows and k=10 every set below 30,000 rows gets ef_search 1000
    assert planner().exact_limit(MILLION, 10) == 10_000


def test_exact_is_cheaper_while_its_postings_cost_less_than_the_hnsw_search():
    p = planner()
    # 10% of 100k: ef_search 300, about 3,000 postings cost as much
    assert p.hnsw_work(10_000, 100_000, 10) == 300
    assert p.exact_is_cheaper(3_000, 3_000, 100_000, 10)
    assert not p.exact_is_cheaper(3_001, 10_000, 100_000, 10)
    # a sparse set: the k-th permitted row lies deeper than any candidate list
    assert p.hnsw_work(500, MILLION, 10) == 20_000


def test_the_limit_shrinks_with_the_index_as_hnsw_gets_cheaper_for_the_same_set():
    p = planner()
    assert 5_470 <= p.exact_limit(100_000, 10) <= 5_500  # sqrt(10,000 x 3 x k x rows / 1000)
    assert p.exact_limit(100_000, 10) < p.exact_limit(MILLION, 10) < p.exact_limit(MILLION, 50)


def test_limit_is_never_below_k():
    assert planner(threshold=1).exact_limit(100, 10) == 10


@pytest.mark.parametrize("permitted", [0, 1, 500, 10_000])
def test_small_permitted_sets_are_searched_exactly(permitted):
    assert isinstance(planner().choose(estimate(permitted), 10, keys=1), ExactPlan)


@pytest.mark.parametrize("permitted", [20_000, 100_000, MILLION])
def test_large_permitted_sets_use_hnsw(permitted):
    assert isinstance(planner().choose(estimate(permitted), 10, keys=1), AnnPlan)


def test_sets_too_sparse_for_an_accurate_hnsw_scan_are_searched_exactly_even_if_slower():
    p = planner(threshold=5_000)
    assert p.recall_floor(MILLION, 10) == 20_000
    assert isinstance(p.choose(estimate(15_000), 10, keys=1), ExactPlan)  # costlier, but HNSW recall ~0.94 here
    assert isinstance(p.choose(estimate(25_000), 10, keys=1), AnnPlan)


def test_the_recall_floor_gives_way_when_exact_would_read_too_much():
    p = planner(threshold=5_000)
    denied = Estimate(scanned=900_000, allowed=900_000, denied=885_000, index_rows=MILLION)
    assert isinstance(p.choose(denied, 10, keys=1), AnnPlan)


def test_a_set_that_is_small_only_after_deny_lists_still_weighs_the_rows_an_exact_scan_reads():
    # allowed everything (the exact scan would read 900k rows), denied on all but 2,000
    denied = Estimate(scanned=900_000, allowed=900_000, denied=898_000, index_rows=MILLION)
    assert denied.permitted == 2_000
    assert isinstance(planner().choose(denied, 10, keys=1), AnnPlan)


def test_exact_search_keeps_only_the_nearest_postings_a_few_per_wanted_row_and_key():
    p = planner()
    assert p.choose(estimate(5_000), 10, keys=3) == ExactPlan(depth=60)
    assert p.choose(estimate(5_000), 50, keys=1) == ExactPlan(depth=100)


def test_exact_search_scores_every_posting_where_a_bound_would_not_cut_or_not_hold_k():
    p = planner()
    assert p.choose(estimate(60), 10, keys=3) == ExactPlan()  # no more postings than the bound
    few = Estimate(scanned=5_000, allowed=5_000, denied=4_995, index_rows=MILLION)
    assert p.choose(few, 10, keys=1) == ExactPlan()  # fewer than k pass: all are needed


def test_plans_reject_a_depth_below_one():
    with pytest.raises(ValueError):
        ExactPlan(depth=0)


def test_deny_hits_never_make_the_estimate_negative():
    assert Estimate(scanned=10, allowed=10, denied=30, index_rows=100).permitted == 0


def test_hnsw_budget_grows_as_selectivity_falls_and_stays_bounded():
    p = planner(max_scan_tuples=50_000)
    broad = p.ann(900_000, MILLION, 10)
    narrow = p.ann(20_000, MILLION, 10)
    tiny = p.ann(10, MILLION, 10)
    assert broad.max_scan_tuples == MIN_SCAN_TUPLES
    assert broad.max_scan_tuples < narrow.max_scan_tuples < tiny.max_scan_tuples == 50_000
    assert narrow.iterative == "relaxed_order"


def test_ef_search_reaches_several_times_as_deep_as_the_filtered_answer_lies():
    p = planner(ef_search=40)
    assert p.ann(MILLION, MILLION, 10).ef_search == 40  # unfiltered: the configured floor
    assert p.ann(100_000, MILLION, 10).ef_search == 300  # 10%: the 10th hit lies ~100 deep
    assert p.ann(10_000, MILLION, 10).ef_search == 1000  # capped at pgvector's maximum
    assert p.ann(MILLION, MILLION, 50).ef_search == 150  # three times k even unfiltered


def test_plans_reject_unknown_iterative_modes():
    with pytest.raises(ValueError):
        AnnPlan(ef_search=40, max_scan_tuples=1000, iterative="sometimes")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def key(subject):
    return ("acme", frozenset({f"user:{subject}", "everyone"}), 1)


def test_cached_estimate_is_reused_until_it_is_older_than_the_ttl():
    clock = FakeClock()
    cache = EstimateCache(ttl_s=10, clock=clock)
    cache.put(key("a"), estimate(500))
    clock.now = 9.9
    assert cache.get(key("a")) == estimate(500)
    assert cache.get(key("b")) is None
    clock.now = 10.0
    assert cache.get(key("a")) is None


def test_cache_drops_the_least_recently_used_principal_when_full():
    cache = EstimateCache(ttl_s=10, capacity=2, clock=FakeClock())
    cache.put(key("a"), estimate(1))
    cache.put(key("b"), estimate(2))
    assert cache.get(key("a")) == estimate(1)  # a is now the most recently used
    cache.put(key("c"), estimate(3))
    assert cache.get(key("b")) is None
    assert cache.get(key("a")) == estimate(1) and cache.get(key("c")) == estimate(3)


def test_ttl_zero_caches_nothing():
    cache = EstimateCache(ttl_s=0, clock=FakeClock())
    cache.put(key("a"), estimate(1))
    assert cache.get(key("a")) is None


def test_a_group_with_its_own_index_is_searched_over_its_graph_instead_of_the_filtered_index():
    # 10% of 1M in one indexed group: its graph is searched almost unfiltered
    plan = planner(threshold=13_000, ef_search=64).choose(
        estimate(97_000, scanned=98_000, indexed=("group:g",), indexed_scanned=98_000), 10, keys=3)
    assert plan == KeyedPlan(("group:g",), ef_search=64, max_scan_tuples=1_000, depth=22, rest_depth=40)


def test_without_principal_indexes_there_is_no_keyed_plan():
    assert planner().keyed(estimate(100_000), 10, keys=3) is None
    assert isinstance(planner().choose(estimate(100_000), 10, keys=3), AnnPlan)


def test_the_keyed_candidate_list_deepens_as_clearance_and_deny_lists_take_the_groups_rows():
    # a fifth of the group's postings readable: the answer lies five times deeper in its graph
    plan = planner(ef_search=64).keyed(
        estimate(20_000, scanned=100_000, indexed=("group:g",), indexed_scanned=100_000), 10, keys=2)
    assert plan is not None and plan.ef_search == 150 and plan.depth == 100


def test_exact_search_still_wins_where_it_is_cheaper_or_hnsw_would_lose_recall():
    p = planner(threshold=13_000, ef_search=64)
    small = estimate(9_000, indexed=("group:g",), indexed_scanned=9_000)
    assert isinstance(p.choose(small, 10, keys=2), ExactPlan)


def test_many_unindexed_postings_beside_an_indexed_group_keep_the_filtered_index():
    # the caller's other keys would be scored exactly: 300k postings cost more than HNSW
    p = planner(threshold=13_000, ef_search=64)
    broad = estimate(150_000, scanned=400_000, indexed=("group:g",), indexed_scanned=100_000)
    assert isinstance(p.choose(broad, 10, keys=3), AnnPlan)


def test_keyed_plans_reject_empty_index_lists_and_non_positive_depths():
    with pytest.raises(ValueError):
        KeyedPlan((), ef_search=64, max_scan_tuples=1000, depth=20, rest_depth=20)
    with pytest.raises(ValueError):
        KeyedPlan(("group:g",), ef_search=64, max_scan_tuples=1000, depth=0, rest_depth=20)

"""Search statements: built once per plan and access shape, every value a required parameter."""

from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import InvalidRequestError

from gateway.metrics import Metrics
from gateway.retrieval.plans import AnnPlan, ExactPlan
from gateway.retrieval.repository import ChunkRepository, search_parameters, search_statement
from policies.model import ClassificationLevels
from policies.principal import Principal

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LEVELS = ClassificationLevels()
ALICE = Principal(subject="alice", tenant="acme", groups=("eng",), attributes={"region": ("EU",)})
BOB = Principal(subject="bob", tenant="globex", groups=("ops", "staff"), attributes={"site": ("X", "Y")})
CAROL = Principal(subject="carol", tenant="acme", attributes={"region": ("EU",), "dept": ("R&D",)})
PLANS = [ExactPlan(), ExactPlan(depth=40), AnnPlan(ef_search=100, max_scan_tuples=5000)]


@pytest.mark.parametrize("plan", PLANS, ids=["exact", "bounded exact", "hnsw"])
def test_one_statement_per_plan_and_access_shape(plan):
    repository = ChunkRepository(Metrics())
    statement = repository._statement(plan, ALICE)
    assert repository._statement(plan, BOB) is statement  # same shape: one attribute each
    assert repository._statement(plan, CAROL) is not statement  # two attributes


def test_bounded_and_unbounded_exact_search_are_different_statements():
    repository = ChunkRepository(Metrics())
    assert repository._statement(ExactPlan(depth=40), ALICE) is not repository._statement(ExactPlan(), ALICE)
    assert repository._statement(ExactPlan(depth=40), ALICE) is repository._statement(ExactPlan(depth=9), ALICE)


@pytest.mark.parametrize("plan", PLANS, ids=["exact", "bounded exact", "hnsw"])
def test_search_parameters_supply_every_value_of_the_statement(plan):
    compiled = search_statement(plan, BOB).compile(dialect=postgresql.dialect())
    values = compiled.construct_params(search_parameters(
        [0.1] * 384, principal=BOB, now=NOW, levels=LEVELS, limit=10, plan=plan))
    assert values["access_tenant"] == "globex"
    assert values["access_principals"] == list(BOB.principal_strings)
    assert values["k"] == 10


@pytest.mark.parametrize("missing", ["query_vector", "access_principals", "access_now"])
def test_a_statement_missing_a_value_cannot_run(missing):
    plan = ExactPlan()
    compiled = search_statement(plan, ALICE).compile(dialect=postgresql.dialect())
    values = search_parameters([0.1] * 384, principal=ALICE, now=NOW, levels=LEVELS, limit=10, plan=plan)
    del values[missing]
    with pytest.raises(InvalidRequestError, match=missing):
        compiled.construct_params(values)

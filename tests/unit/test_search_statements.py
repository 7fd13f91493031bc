"""Search statements: compiled once per plan and access shape, every value a required parameter."""

from datetime import UTC, datetime

import pytest
from pgvector import Vector
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.exc import InvalidRequestError

from gateway.metrics import Metrics
from gateway.retrieval.plans import AnnPlan, ExactPlan, KeyedPlan
from gateway.retrieval.repository import (
    ChunkRepository,
    CompiledSearch,
    search_parameters,
    search_statement,
)
from policies.model import ClassificationLevels
from policies.principal import Principal

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LEVELS = ClassificationLevels()
ALICE = Principal(subject="alice", tenant="acme", groups=("eng",), attributes={"region": ("EU",)})
BOB = Principal(subject="bob", tenant="globex", groups=("ops", "staff"), attributes={"site": ("X", "Y")})
CAROL = Principal(subject="carol", tenant="acme", attributes={"region": ("EU",), "dept": ("R&D",)})
KEYED = KeyedPlan(("group:staff",), ef_search=64, max_scan_tuples=1000, depth=20, rest_depth=40)
PLANS = [ExactPlan(), ExactPlan(depth=40), AnnPlan(ef_search=100, max_scan_tuples=5000), KEYED]
IDS = ["exact", "bounded exact", "hnsw", "keyed"]
DIALECT = psycopg_dialect.dialect()


@pytest.mark.parametrize("plan", PLANS, ids=IDS)
def test_one_statement_per_plan_and_access_shape(plan):
    repository = ChunkRepository(Metrics())
    statement = repository._compiled(plan, ALICE, DIALECT)
    assert repository._compiled(plan, BOB, DIALECT) is statement  # same shape: one attribute each
    assert repository._compiled(plan, CAROL, DIALECT) is not statement  # two attributes


def test_bounded_and_unbounded_exact_search_are_different_statements():
    repository = ChunkRepository(Metrics())
    assert repository._compiled(ExactPlan(depth=40), ALICE, DIALECT) is not repository._compiled(ExactPlan(), ALICE, DIALECT)
    assert repository._compiled(ExactPlan(depth=40), ALICE, DIALECT) is repository._compiled(ExactPlan(depth=9), ALICE, DIALECT)


@pytest.mark.parametrize("plan", PLANS, ids=IDS)
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
    with pytest.raises(InvalidRequestError, match=missing):
        CompiledSearch.of(search_statement(plan, ALICE), DIALECT).bound(values)


@pytest.mark.parametrize("plan", PLANS, ids=IDS)
def test_a_compiled_search_sends_the_query_vector_in_binary_and_every_value(plan):
    values = search_parameters([0.25] * 384, principal=BOB, now=NOW, levels=LEVELS, limit=10, plan=plan)
    sql, parameters = CompiledSearch.of(search_statement(plan, BOB), DIALECT).bound(values)
    assert isinstance(parameters["query_vector"], Vector)  # pgvector's binary dumper, not a float list
    assert parameters["query_vector"].to_list() == [0.25] * 384
    assert parameters["access_now"] == NOW and parameters["k"] == 10
    assert all(f"%({name})s" in sql for name in parameters)


def test_keyed_plans_share_a_statement_per_number_of_indexed_strings():
    repository = ChunkRepository(Metrics())
    statement = repository._compiled(KEYED, ALICE, DIALECT)
    other = KeyedPlan(("group:eng",), ef_search=300, max_scan_tuples=2000, depth=90, rest_depth=20)
    two = KeyedPlan(("group:eng", "group:staff"), ef_search=64, max_scan_tuples=1000, depth=20, rest_depth=20)
    assert repository._compiled(other, ALICE, DIALECT) is statement
    assert repository._compiled(two, ALICE, DIALECT) is not statement


def test_a_keyed_plan_names_its_indexed_keys_as_literals_and_scores_the_other_keys():
    values = search_parameters([0.1] * 384, principal=BOB, now=NOW, levels=LEVELS, limit=10, plan=KEYED)
    assert values["index_key_0"] == "globex\x1fgroup:staff"
    assert values["posting_keys"] == ["globex\x1fuser:bob", "globex\x1fgroup:ops", "globex\x1feveryone"]
    assert (values["key_depth"], values["depth"]) == (20, 40)
    compiled = search_statement(KEYED, BOB).compile(dialect=postgresql.dialect())
    assert "__[POSTCOMPILE_index_key_0]" in str(compiled)  # rendered into the text per search...
    sql, parameters = CompiledSearch.of(search_statement(KEYED, BOB), DIALECT).bound(values)
    assert "chunk_postings.key = 'globex\x1fgroup:staff'" in sql  # ...as a quoted literal
    assert "index_key_0" not in parameters
    assert sql.count("UNION ALL") == 1


def test_an_indexed_key_with_quotes_stays_one_literal():
    odd = Principal(subject="o", tenant="acme", groups=("o'brien %s \\",))
    plan = KeyedPlan(("group:o'brien %s \\",), ef_search=64, max_scan_tuples=1000, depth=20, rest_depth=40)
    values = search_parameters([0.1] * 384, principal=odd, now=NOW, levels=LEVELS, limit=10, plan=plan)
    sql, _ = CompiledSearch.of(search_statement(plan, odd), DIALECT).bound(values)
    # Quotes doubled, percent signs escaped for the driver's placeholders, the backslash as
    # is (standard-conforming strings).
    assert "chunk_postings.key = 'acme\x1fgroup:o''brien %%s \\' AND" in sql

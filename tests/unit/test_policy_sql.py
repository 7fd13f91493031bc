"""The SQL compiler's shape: bound parameters only, index-friendly operators, fail closed."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, DateTime, MetaData, SmallInteger, Table, Text, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from policies.model import ClassificationLevels
from policies.principal import Principal
from policies.sql import (
    access_parameters,
    access_predicate,
    access_shape,
    parameterized_access_predicate,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
metadata = MetaData()


def _rule_columns():
    return [Column("tenant", Text), Column("allow", ARRAY(Text)), Column("deny", ARRAY(Text)),
            Column("classification", SmallInteger), Column("conditions", JSONB),
            Column("valid_from", DateTime(timezone=True)), Column("valid_until", DateTime(timezone=True))]


chunks = Table("chunks", metadata, Column("id", Text), *_rule_columns(), Column("policy_name", Text))
policies = Table("access_policies", metadata, Column("name", Text), *_rule_columns())


def compile_for(principal):
    clause = access_predicate(principal, NOW, columns=chunks.c, policy_table=policies.c,
                              levels=ClassificationLevels())
    compiled = select(chunks.c.id).where(clause).compile(dialect=postgresql.dialect())
    return str(compiled), compiled.params


def test_values_are_bound_never_inlined():
    hostile = Principal(subject="x'); DROP TABLE chunks; --", tenant="t' OR '1'='1",
                        groups=("g\"},{",), attributes={"region": ("EU'--",)})
    sql, params = compile_for(hostile)
    assert "DROP TABLE" not in sql
    assert "'1'='1" not in sql
    assert "EU'--" not in sql
    assert ["user:x'); DROP TABLE chunks; --", 'group:g"},{', "everyone"] in params.values()
    assert "t' OR '1'='1" in params.values()


def test_uses_array_overlap_for_allow_and_deny_and_a_policy_subquery():
    sql, _ = compile_for(Principal(subject="alice", tenant="acme"))
    assert "chunks.allow && CAST(" in sql
    assert "NOT (chunks.deny && CAST(" in sql
    assert "chunks.policy_name IN (SELECT access_policies.name" in sql
    assert "chunks.classification <=" in sql


def test_principal_attributes_become_per_key_checks():
    sql, params = compile_for(Principal(subject="a", tenant="t", attributes={"region": ("EU",), "dept": ()}))
    # one "may it condition on this key" check per attribute the principal holds, row and policy
    assert sql.count("chunks.conditions ? ") == 2
    assert sql.count("access_policies.conditions ? ") == 2
    assert "(chunks.conditions - CAST(" in sql
    assert ["dept", "region"] in params.values()
    assert ["EU"] in params.values()
    assert [] in params.values()


def test_principal_without_tenant_matches_nothing():
    sql, _ = compile_for(Principal(subject="alice", tenant=""))
    assert "false" in sql.lower()


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone"):
        access_predicate(Principal(subject="a", tenant="t"), datetime(2026, 1, 1), columns=chunks.c,
                         policy_table=policies.c, levels=ClassificationLevels())


SHAPES = [
    Principal(subject="alice", tenant="acme"),
    Principal(subject="bob", tenant="acme", groups=("eng", "ops"), roles=("admin",), clearance="secret",
              attributes={"region": ("EU", "US"), "dept": ()}),
    Principal(subject="carol", tenant="globex", groups=("staff",), attributes={"region": ("EU",)}),
    Principal(subject="", tenant="acme"),
]


def _inlined(statement):
    return str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


@pytest.mark.parametrize("principal", SHAPES, ids=lambda p: p.subject or "no subject")
def test_the_parameterized_clause_with_its_parameters_is_the_bound_clause(principal):
    levels = ClassificationLevels()
    bound = access_predicate(principal, NOW, columns=chunks.c, policy_table=policies.c, levels=levels)
    named = parameterized_access_predicate(principal, columns=chunks.c, policy_table=policies.c)
    filled = select(chunks.c.id).where(named).params(access_parameters(principal, NOW, levels))
    assert _inlined(filled) == _inlined(select(chunks.c.id).where(bound))


def test_one_parameterized_clause_serves_every_principal_of_its_shape():
    levels = ClassificationLevels()
    carol, dave = SHAPES[2], Principal(subject="dave", tenant="initech", attributes={"site": ("X",)})
    assert access_shape(carol) == access_shape(dave)
    named = parameterized_access_predicate(carol, columns=chunks.c, policy_table=policies.c)
    for principal in (carol, dave):
        bound = access_predicate(principal, NOW, columns=chunks.c, policy_table=policies.c, levels=levels)
        filled = select(chunks.c.id).where(named).params(access_parameters(principal, NOW, levels))
        assert _inlined(filled) == _inlined(select(chunks.c.id).where(bound))


def test_a_parameterized_clause_without_its_values_cannot_run():
    named = parameterized_access_predicate(SHAPES[1], columns=chunks.c, policy_table=policies.c)
    compiled = select(chunks.c.id).where(named).compile(dialect=postgresql.dialect())
    with pytest.raises(Exception, match="access_"):
        compiled.construct_params()

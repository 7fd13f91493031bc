"""The SQL compiler: a principal becomes one WHERE clause over the denormalised access columns.

This is the execution that runs in production, inside the same SELECT as the vector
ORDER BY (SPEC §8): no candidate set is ever filtered in Python. It must admit exactly
the rows `policies.evaluate.decide` admits; property tests hold it to that.

The clause only uses operators the indexes serve: tenant equality (btree),
`allow && principals` (GIN), and plain comparisons. Every value is a bound parameter.
A document's named policy is checked through an uncorrelated subquery over the
policies table, so editing a policy takes effect at the next query with no chunk rewrite.

This is the only module of the engine that imports SQLAlchemy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    SmallInteger,
    Text,
    and_,
    bindparam,
    cast,
    false,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from policies.model import ClassificationLevels
from policies.principal import Principal

# The column sources the compiler accepts: a mapped class (`Chunk`) or a table's `.c`.
# Content rows expose tenant, allow, deny, classification, conditions, valid_from,
# valid_until and policy_name; named policy rows the same with `name` for policy_name.
Columns = Any


def access_predicate(
    principal: Principal,
    now: datetime,
    *,
    columns: Columns,
    policy_table: Columns,
    levels: ClassificationLevels,
) -> ColumnElement[bool]:
    """The clause admitting exactly the rows `decide` admits for `principal` at `now`.

    Returns `false()` when nothing can match (a principal without a tenant), so callers
    never need a special case: the query simply returns no rows.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not _admits_any(principal):
        return false()
    return _clause(_Bound(principal, now, levels), columns, policy_table)


def parameterized_access_predicate(
    principal: Principal, *, columns: Columns, policy_table: Columns
) -> ColumnElement[bool]:
    """`access_predicate` with its values left to the execution: named, required parameters.

    One clause serves every principal of the same `access_shape` (building one costs
    more than running a small search); `access_parameters` gives each execution its
    values. A value not supplied fails the statement, never falls back to another's.
    """
    if not _admits_any(principal):
        return false()
    return _clause(_Named(len(principal.attributes)), columns, policy_table)


def access_shape(principal: Principal) -> tuple[bool, int]:
    """What `parameterized_access_predicate` depends on: whether anything is admitted, attribute count."""
    return _admits_any(principal), len(principal.attributes)


def access_parameters(principal: Principal, now: datetime, levels: ClassificationLevels) -> dict[str, Any]:
    """The values of `parameterized_access_predicate` for `principal` at `now`, by parameter name."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    keys = sorted(principal.attributes)
    values: dict[str, Any] = {
        "access_tenant": principal.tenant,
        "access_principals": list(principal.principal_strings),
        "access_clearance": levels.clearance_rank(principal.clearance),
        "access_now": now,
        "access_attribute_keys": keys,
    }
    for i, key in enumerate(keys):
        values[f"access_attribute_{i}"] = key
        values[f"access_attribute_values_{i}"] = list(principal.attributes[key])
    return values


def _admits_any(principal: Principal) -> bool:
    return bool(principal.tenant and principal.subject)


class _Values:
    """The principal's values as SQL: bound literals (`_Bound`) or named parameters (`_Named`)."""

    tenant: ColumnElement[Any]
    principals: ColumnElement[Any]
    clearance: ColumnElement[Any]
    now: ColumnElement[Any]
    attribute_keys: ColumnElement[Any]
    attributes: list[tuple[ColumnElement[Any], ColumnElement[Any]]]


class _Bound(_Values):
    """One principal's values, bound once and shared by every rule clause they appear in."""

    def __init__(self, principal: Principal, now: datetime, levels: ClassificationLevels) -> None:
        keys = sorted(principal.attributes)
        self.tenant = literal(principal.tenant, Text)
        self.principals = _text_array(literal(list(principal.principal_strings), ARRAY(Text)))
        self.clearance = literal(levels.clearance_rank(principal.clearance), SmallInteger)
        self.now = literal(now, DateTime(timezone=True))
        self.attribute_keys = _text_array(literal(keys, ARRAY(Text)))
        self.attributes = [
            (literal(key, Text), _text_array(literal(list(principal.attributes[key]), ARRAY(Text))))
            for key in keys]


class _Named(_Values):
    """Named parameters for the values (see `access_parameters`), for `attributes` attributes."""

    def __init__(self, attributes: int) -> None:
        self.tenant = _parameter("access_tenant", Text)
        self.principals = _text_array(_parameter("access_principals", ARRAY(Text)))
        self.clearance = _parameter("access_clearance", SmallInteger)
        self.now = _parameter("access_now", DateTime(timezone=True))
        self.attribute_keys = _text_array(_parameter("access_attribute_keys", ARRAY(Text)))
        self.attributes = [(_parameter(f"access_attribute_{i}", Text),
                            _text_array(_parameter(f"access_attribute_values_{i}", ARRAY(Text))))
                           for i in range(attributes)]


def _clause(values: _Values, columns: Columns, policy_table: Columns) -> ColumnElement[bool]:
    named = select(policy_table.name).where(policy_table.tenant == values.tenant, _rule(values, policy_table))
    return and_(
        columns.tenant == values.tenant,
        _rule(values, columns),
        or_(columns.policy_name.is_(None), columns.policy_name.in_(named.scalar_subquery())),
    )


def _rule(values: _Values, columns: Columns) -> ColumnElement[bool]:
    """deny, allow, classification, conditions and validity for one rule's columns."""
    return and_(
        columns.allow.overlap(values.principals),
        not_(columns.deny.overlap(values.principals)),
        columns.classification <= values.clearance,
        _conditions_hold(values, columns.conditions),
        or_(columns.valid_from.is_(None), columns.valid_from <= values.now),
        or_(columns.valid_until.is_(None), columns.valid_until > values.now),
    )


def _conditions_hold(values: _Values, conditions: Any) -> ColumnElement[bool]:
    """Every condition `{attr: [allowed...]}` in the `conditions` column is met.

    Compiled without a per-row subquery: the row may only condition on attributes the
    principal has (`conditions - keys = '{}'`), and for each attribute the principal has,
    a condition on it (if any) must share a value with the principal's values. A
    principal lacking a conditioned attribute therefore fails, as in `decide`.
    """
    empty = cast(literal("{}"), JSONB)
    checks = [or_(not_(conditions.has_key(key)), conditions[key].has_any(allowed))
              for key, allowed in values.attributes]
    # Most rows carry no conditions: one cheap comparison spares them the jsonb work.
    return or_(conditions == empty, and_(conditions.op("-")(values.attribute_keys) == empty, *checks))


def _parameter(name: str, type_: Any) -> ColumnElement[Any]:
    return bindparam(name, type_=type_, required=True)


def _text_array(value: ColumnElement[Any]) -> ColumnElement[Any]:
    return cast(value, ARRAY(Text))

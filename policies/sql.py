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

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    SmallInteger,
    Text,
    and_,
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
    if not principal.tenant or not principal.subject:
        return false()
    compiled = _Compiled(principal, now, levels)
    named = select(policy_table.name).where(
        policy_table.tenant == principal.tenant, compiled.rule(policy_table)
    )
    return and_(
        columns.tenant == principal.tenant,
        compiled.rule(columns),
        or_(columns.policy_name.is_(None), columns.policy_name.in_(named.scalar_subquery())),
    )


class _Compiled:
    """One principal's values, bound once and shared by every rule clause they appear in."""

    def __init__(self, principal: Principal, now: datetime, levels: ClassificationLevels) -> None:
        self.principals = _text_array(principal.principal_strings)
        self.clearance = literal(levels.clearance_rank(principal.clearance), SmallInteger)
        self.now = literal(now, DateTime(timezone=True))
        self.attributes = _BoundAttributes(principal.attributes)

    def rule(self, columns: Columns) -> ColumnElement[bool]:
        """deny, allow, classification, conditions and validity for one rule's columns."""
        return and_(
            columns.allow.overlap(self.principals),
            not_(columns.deny.overlap(self.principals)),
            columns.classification <= self.clearance,
            self.attributes.conditions_hold(columns.conditions),
            or_(columns.valid_from.is_(None), columns.valid_from <= self.now),
            or_(columns.valid_until.is_(None), columns.valid_until > self.now),
        )


class _BoundAttributes:
    """A principal's attributes as bound values, for checking attribute conditions.

    Compiled without a per-row subquery: the row may only condition on attributes the
    principal has (`conditions - keys = '{}'`), and for each attribute the principal has,
    a condition on it (if any) must share a value with the principal's values. A
    principal lacking a conditioned attribute therefore fails, as in `decide`.
    """

    def __init__(self, attributes: Mapping[str, Sequence[str]]) -> None:
        keys = sorted(attributes)
        self.keys = _text_array(keys)
        self.values = [(literal(key, Text), _text_array(attributes[key])) for key in keys]
        self.empty = cast(literal("{}"), JSONB)

    def conditions_hold(self, conditions: Any) -> ColumnElement[bool]:
        """Every condition `{attr: [allowed...]}` in the `conditions` column is met."""
        checks = [or_(not_(conditions.has_key(key)), conditions[key].has_any(values))
                  for key, values in self.values]
        # Most rows carry no conditions: one cheap comparison spares them the jsonb work.
        return or_(conditions == self.empty,
                   and_(conditions.op("-")(self.keys) == self.empty, *checks))


def _text_array(values: Sequence[str]) -> ColumnElement[Any]:
    return cast(literal(list(values), ARRAY(Text)), ARRAY(Text))

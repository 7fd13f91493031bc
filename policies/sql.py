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

from sqlalchemy import ColumnElement, Text, and_, cast, false, literal, not_, or_, select
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
    """One principal's values, ready to be bound into any number of rule clauses."""

    def __init__(self, principal: Principal, now: datetime, levels: ClassificationLevels) -> None:
        self.strings = list(principal.principal_strings)
        self.clearance = levels.clearance_rank(principal.clearance)
        self.attributes = principal.attributes
        self.now = now

    def rule(self, columns: Columns) -> ColumnElement[bool]:
        """deny, allow, classification, conditions and validity for one rule's columns."""
        return and_(
            columns.allow.overlap(_text_array(self.strings)),
            not_(columns.deny.overlap(_text_array(self.strings))),
            columns.classification <= self.clearance,
            conditions_hold(columns.conditions, self.attributes),
            or_(columns.valid_from.is_(None), columns.valid_from <= self.now),
            or_(columns.valid_until.is_(None), columns.valid_until > self.now),
        )


def conditions_hold(conditions: Any, attributes: Mapping[str, Sequence[str]]) -> ColumnElement[bool]:
    """Every condition `{attr: [allowed...]}` on the row is met by the principal's attributes.

    Compiled without a per-row subquery: the row may only condition on attributes the
    principal has (`conditions - keys = '{}'`), and for each attribute the principal has,
    a condition on it (if any) must share a value with the principal's values.
    """
    keys = sorted(attributes)
    empty = cast(literal("{}"), JSONB)
    only_known = (conditions.op("-")(_text_array(keys))) == empty
    checks = [
        or_(not_(conditions.has_key(key)), conditions[key].has_any(_text_array(attributes[key])))
        for key in keys
    ]
    # Most rows carry no conditions: one cheap comparison spares them the jsonb work.
    return or_(conditions == empty, and_(only_known, *checks))


def _text_array(values: Sequence[str]) -> ColumnElement[Any]:
    return cast(literal(list(values), ARRAY(Text)), ARRAY(Text))

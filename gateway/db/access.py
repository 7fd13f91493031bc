"""The two locks on content, as the service applies them to a database transaction.

1. `chunk_access_predicate` / `document_access_predicate`: the policy engine's SQL
   clause over the models, put in the WHERE of every content query.
2. `bind_principal`: binds the principal to the *transaction* (`set_config(..., true)`)
   for the row-level-security policies of migration 0002. Never session-level: a pooled
   connection must not carry one request's principal into the next.

Every query on content runs inside a transaction that called `bind_principal` AND uses
the predicate. Ingest and admin writes run in a transaction that called `bind_writer`
for one tenant instead. A transaction with neither sees no content at all.

Also here: the mapping from an access block to the denormalised access columns, so
every writer stores access the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.engine import Executor, core_connection
from gateway.db.models import Chunk, Document
from gateway.db.policy_models import AccessPolicy
from gateway.errors import ConfigurationError
from policies.model import AccessRule, ClassificationLevels, DocumentAccess
from policies.principal import Principal
from policies.sql import access_predicate

READER_SETTINGS = ("gateway.principals", "gateway.clearance", "gateway.attributes", "gateway.now")


def principal_settings(principal: Principal, levels: ClassificationLevels, now: datetime) -> dict[str, str]:
    """The transaction settings the row-level-security policies read for a reader."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return {
        # No subject or no tenant: bind no tenant, so nothing is visible (as in decide and the predicate).
        "gateway.tenant": principal.tenant if principal.subject else "",
        "gateway.principals": json.dumps(list(principal.principal_strings)),
        "gateway.clearance": str(levels.clearance_rank(principal.clearance)),
        "gateway.attributes": json.dumps({k: list(v) for k, v in principal.attributes.items()}),
        "gateway.now": now.isoformat(),
        "gateway.writer": "",
    }


def writer_settings(tenant: str) -> dict[str, str]:
    """The transaction settings for ingest/admin work on one tenant's rows (no reader bound)."""
    if not tenant:
        raise ValueError("a writer needs a tenant")
    return {"gateway.tenant": tenant, "gateway.writer": "on", **dict.fromkeys(READER_SETTINGS, "")}


SETTINGS = ("gateway.tenant", "gateway.writer", *READER_SETTINGS)
BINDING_SQL = "SELECT " + ", ".join(
    f"set_config('{name}', :{name.removeprefix('gateway.')}, true)" for name in SETTINGS)
_BIND_ALL = text(BINDING_SQL)


def binding_statement(settings: Mapping[str, str],
                      search: Mapping[str, str] | None = None) -> tuple[TextClause, dict[str, str]]:
    """One SELECT that sets every value transaction-locally (`is_local = true`), and its values.

    Every setting is written each time, so a transaction is never half reader, half writer.
    `search`: settings for the transaction's search (index-scan parameters), set in the
    same round trip; they cannot touch the `gateway.*` binding. The statement is shared
    (one per number of search settings) and its values passed to `execute`: copying a
    text clause with its values bound cost 0.09 ms per request.
    """
    if set(settings) != set(SETTINGS):
        raise ValueError("bind every gateway setting")
    values = {k.removeprefix("gateway."): v for k, v in settings.items()}
    if not search:
        return _BIND_ALL, values
    if any(name.startswith("gateway.") for name in search):
        raise ValueError("search settings cannot rebind the principal")
    for i, (name, value) in enumerate(search.items()):
        values[f"search_name_{i}"], values[f"search_value_{i}"] = name, value
    return _binding_with_search(len(search)), values


@cache
def _binding_with_search(count: int) -> TextClause:
    """The binding statement with `count` more settings (parsing a text clause costs per request)."""
    return text(BINDING_SQL + "".join(
        f", set_config(:search_name_{i}, :search_value_{i}, true)" for i in range(count)))


async def bind_principal(
    executor: Executor, principal: Principal, levels: ClassificationLevels, now: datetime,
    search: Mapping[str, str] | None = None,
) -> None:
    """Bind `principal` to the executor's current transaction for row-level security.

    `search`: the search's own transaction settings, sent with the binding (one round trip).
    """
    await (await core_connection(executor)).execute(
        *binding_statement(principal_settings(principal, levels, now), search))


async def bind_writer(session: AsyncSession, tenant: str) -> None:
    """Let the current transaction read and write `tenant`'s content and policies (ingest, admin)."""
    await session.execute(*binding_statement(writer_settings(tenant)))


def chunk_access_predicate(
    principal: Principal, now: datetime, levels: ClassificationLevels
) -> ColumnElement[bool]:
    """The access clause over `Chunk`, for the WHERE beside the vector ORDER BY."""
    return access_predicate(principal, now, columns=Chunk, policy_table=AccessPolicy, levels=levels)


def document_access_predicate(
    principal: Principal, now: datetime, levels: ClassificationLevels
) -> ColumnElement[bool]:
    """The access clause over `Document`."""
    return access_predicate(principal, now, columns=Document, policy_table=AccessPolicy, levels=levels)


def rule_column_values(rule: AccessRule, levels: ClassificationLevels) -> dict[str, Any]:
    """An access rule as the shared access columns (classification stored as its rank)."""
    return {
        "allow": list(rule.allow),
        "deny": list(rule.deny),
        "classification": levels.rank(rule.classification),
        "conditions": {k: list(v) for k, v in sorted(rule.conditions.items())},
        "valid_from": rule.valid_from,
        "valid_until": rule.valid_until,
    }


def access_column_values(
    access: DocumentAccess, levels: ClassificationLevels, *, tenant: str
) -> dict[str, Any]:
    """Values for a document's (and each of its chunks') access columns, and `documents.access`.

    `tenant` is where the document is stored; a block naming another tenant is refused
    by the caller before this point. Chunks take every key except `access`.
    """
    stored = DocumentAccess(tenant=tenant, rule=access.rule, policy=access.policy)
    return {
        "tenant": tenant,
        **rule_column_values(access.rule, levels),
        "policy_name": access.policy,
        "access": stored.to_json(),
    }


def chunk_column_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of `access_column_values` that chunks carry."""
    return {k: v for k, v in values.items() if k != "access"}


def rule_from_columns(row: Any, levels: ClassificationLevels) -> AccessRule:
    """The access rule stored in a row's access columns (the inverse of `rule_column_values`).

    Reading rules back from the columns, not from `documents.access`, means `decide` sees
    exactly what the SQL predicate and row-level security see.
    """
    if not 0 <= row.classification < len(levels.names):
        raise ConfigurationError(
            f"stored classification rank {row.classification} is not a configured level "
            "(GATEWAY_CLASSIFICATION_LEVELS changed?)")
    return AccessRule(
        allow=tuple(row.allow),
        deny=tuple(row.deny),
        classification=levels.names[row.classification],
        conditions={k: tuple(v) for k, v in row.conditions.items()},
        valid_from=row.valid_from,
        valid_until=row.valid_until,
    )


def access_from_columns(row: Any, levels: ClassificationLevels) -> DocumentAccess:
    """A document's (or chunk's) stored access: tenant, own rule, named policy."""
    return DocumentAccess(tenant=row.tenant, rule=rule_from_columns(row, levels), policy=row.policy_name)

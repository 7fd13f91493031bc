"""Test helpers for access control: write documents, chunks and policies the way writers do.

Rows are written through a transaction bound with `writer_settings` (row-level security
applies to every role but superusers), with the same column mapping the service uses.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    cast,
    create_engine,
    func,
    insert,
    literal,
    select,
    text,
    true,
)

from gateway.db.access import (
    access_column_values,
    binding_statement,
    chunk_access_predicate,
    chunk_column_values,
    document_access_predicate,
    principal_settings,
    rule_column_values,
    writer_settings,
)
from gateway.db.engine import sqlalchemy_url
from gateway.db.models import EMBEDDING_DIMENSION, Chunk, Document
from gateway.db.policy_models import AccessPolicy, AccessPolicyVersion
from policies.model import AccessRule, ClassificationLevels, DocumentAccess
from policies.named import NamedPolicy
from policies.principal import Principal

UNIT_VECTOR = "[1" + ",0" * (EMBEDDING_DIMENSION - 1) + "]"


def sync_engine(url: str) -> Engine:
    """A synchronous engine on psycopg 3 (same driver and statement options as the service)."""
    return create_engine(sqlalchemy_url(url), connect_args={"prepare_threshold": None})


@dataclass(frozen=True)
class StoredDocument:
    """Ids of a document written for a test, and the chunk ids it got."""

    id: uuid.UUID
    external_id: str
    chunk_ids: tuple[int, ...]


def bind_writer(conn: Connection, tenant: str) -> None:
    """Bind the current transaction as a writer for `tenant`."""
    conn.execute(*binding_statement(writer_settings(tenant)))


def bind_reader(conn: Connection, principal: Principal, levels: ClassificationLevels, now: datetime) -> None:
    """Bind the current transaction to `principal`, as `gateway.db.access.bind_principal` does."""
    conn.execute(*binding_statement(principal_settings(principal, levels, now)))


def write_policy(conn: Connection, tenant: str, name: str, rule: AccessRule,
                 levels: ClassificationLevels, *, version: int = 1) -> None:
    """Insert a named policy (current row and its history row); the caller binds the writer."""
    body = NamedPolicy(name=name, rule=rule).to_json()
    conn.execute(insert(AccessPolicy).values(
        tenant=tenant, name=name, version=version, body=body, created_by="test", updated_by="test",
        **rule_column_values(rule, levels)))
    conn.execute(insert(AccessPolicyVersion).values(
        tenant=tenant, name=name, version=version, action="create", body=body, changed_by="test"))


def write_document(conn: Connection, tenant: str, access: DocumentAccess, levels: ClassificationLevels,
                   *, external_id: str, chunks: int = 1, title: str | None = None) -> StoredDocument:
    """Insert a document and `chunks` chunks carrying its access columns."""
    values = access_column_values(access, levels, tenant=tenant)
    body = f"Body of {external_id}."
    doc_id = conn.execute(insert(Document).values(
        external_id=external_id, title=title or external_id, content_type="text/plain", body=body,
        content_sha256=hashlib.sha256(body.encode()).hexdigest(), **values,
    ).returning(Document.id)).scalar_one()
    rows = [{"document_id": doc_id, "document_version": 1, "ordinal": n, "text": f"{body} Part {n}.",
             "content_sha256": f"{external_id}-{n}", "char_start": 0, "char_end": len(body),
             **chunk_column_values(values)} for n in range(chunks)]
    ids: Sequence[int] = ()
    if rows:
        ids = conn.execute(
            insert(Chunk).values(embedding=cast(literal(UNIT_VECTOR), Chunk.embedding.type))
            .returning(Chunk.id), rows).scalars().all()
    return StoredDocument(id=doc_id, external_id=external_id, chunk_ids=tuple(ids))


def visible(conn: Connection, principal: Principal, levels: ClassificationLevels, now: datetime,
            *, predicate: bool) -> tuple[set[uuid.UUID], set[int]]:
    """Document and chunk ids the connection can see, with or without the access predicate."""
    if not predicate:
        return visible_where(conn, text("true"), text("true"))
    return visible_where(conn, document_access_predicate(principal, now, levels),
                         chunk_access_predicate(principal, now, levels))


def visible_where(conn: Connection, documents_where: ColumnElement[bool],
                  chunks_where: ColumnElement[bool]) -> tuple[set[uuid.UUID], set[int]]:
    """Document and chunk ids matching the clauses (and row-level security), in one statement."""
    return seen_by(conn, visibility_statement(documents_where, chunks_where))[0]


def visibility_statement(documents_where: ColumnElement[bool], chunks_where: ColumnElement[bool]) -> Any:
    """One SELECT of four id arrays: documents and chunks matching the clauses, then all visible.

    Executing the same statement object on several connections generates its cache key once.
    """
    def ids(model: Any, where: ColumnElement[bool]) -> Any:
        return select(func.array_agg(model.id)).where(where).scalar_subquery()

    return select(ids(Document, documents_where), ids(Chunk, chunks_where),
                  ids(Document, true()), ids(Chunk, true()))


def seen_by(conn: Connection, statement: Any) -> tuple[tuple[set[uuid.UUID], set[int]], ...]:
    """Run a `visibility_statement`: ((docs, chunks) matching, (docs, chunks) visible at all)."""
    row = conn.execute(statement).one()
    return (set(row[0] or ()), set(row[1] or ())), (set(row[2] or ()), set(row[3] or ()))


def ids_of(documents: Iterable[StoredDocument]) -> tuple[set[uuid.UUID], set[int]]:
    """The document and chunk ids of stored documents."""
    docs = list(documents)
    return {d.id for d in docs}, {c for d in docs for c in d.chunk_ids}


class Api:
    """An httpx client on a gateway served over real HTTP, with dev tokens for named callers."""

    def __init__(self, base_url: str, settings: Any) -> None:
        import httpx

        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.settings = settings

    def token(self, sub: str, *, tenant: str = "acme", roles: Sequence[str] = (),
              groups: Sequence[str] = (), **claims: Any) -> str:
        """A dev-mode token for `sub`."""
        from gateway.auth.devkeys import mint_dev_token

        return mint_dev_token(self.settings, sub=sub, tenant=tenant, roles=tuple(roles),
                              groups=tuple(groups), **claims)

    def as_admin(self, method: str, path: str, *, tenant: str = "acme", **kwargs: Any) -> Any:
        """A request by `root`, admin of `tenant`."""
        return self.call(method, path, self.token("root", tenant=tenant, roles=["admin"]), **kwargs)

    def call(self, method: str, path: str, token: str | None, **kwargs: Any) -> Any:
        """A request with the given bearer token (or none)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, path, headers=headers, **kwargs)

"""Test databases: one embedded server per session, one migrated template, a clone per test."""

from __future__ import annotations

import itertools

import psycopg
from psycopg import sql

from gateway.db.embedded import DatabaseUrls
from gateway.db.roles import APP_ROLE, OWNER_ROLE, RUNTIME_GROUP, with_database

_counter = itertools.count()


def clone_database(superuser_url: str, template: str) -> DatabaseUrls:
    """Create a fresh database from the migrated template and return its role URLs."""
    name = f"test_{next(_counter)}"
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(template), sql.Identifier(OWNER_ROLE)
            )
        )
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(name), sql.Identifier(RUNTIME_GROUP)
            )
        )
    return DatabaseUrls(
        runtime=with_database(superuser_url, name, APP_ROLE),
        owner=with_database(superuser_url, name, OWNER_ROLE),
        superuser=with_database(superuser_url, name),
    )


def drop_database(superuser_url: str, urls: DatabaseUrls) -> None:
    """Drop a test database, disconnecting whoever is still on it."""
    from sqlalchemy.engine import make_url

    name = make_url(urls.runtime).database
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

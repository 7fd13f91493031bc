"""The two database roles (SPEC §4) and the one-time cluster bootstrap for the embedded server.

- `gateway_owner` owns the schema and runs migrations.
- `gateway_runtime` is a NOLOGIN group that migrations grant privileges to.
- `gateway_app` logs in for the service: NOSUPERUSER, NOBYPASSRLS, owns nothing,
  member of `gateway_runtime`. Row-level security therefore applies to it.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

OWNER_ROLE = "gateway_owner"
RUNTIME_GROUP = "gateway_runtime"
APP_ROLE = "gateway_app"
DATABASE = "gateway"


def _ensure_role(cur: psycopg.Cursor, name: str, options: str) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
    if cur.fetchone() is None:
        cur.execute(sql.SQL("CREATE ROLE {} " + options).format(sql.Identifier(name)))


def bootstrap_cluster(superuser_url: str, database: str = DATABASE) -> None:
    """Create roles, the database and the vector extension; idempotent and race-safe."""
    with psycopg.connect(superuser_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(724001)")
        try:
            _ensure_role(cur, OWNER_ROLE, "LOGIN NOSUPERUSER NOBYPASSRLS")
            _ensure_role(cur, RUNTIME_GROUP, "NOLOGIN NOSUPERUSER NOBYPASSRLS")
            _ensure_role(cur, APP_ROLE, "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE")
            cur.execute(
                sql.SQL("GRANT {} TO {}").format(
                    sql.Identifier(RUNTIME_GROUP), sql.Identifier(APP_ROLE)
                )
            )
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(OWNER_ROLE)
                    )
                )
        finally:
            cur.execute("SELECT pg_advisory_unlock(724001)")
    db_url = with_database(superuser_url, database)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(RUNTIME_GROUP)
            )
        )


def with_database(url: str, database: str, user: str | None = None) -> str:
    """Return `url` pointing at another database (and optionally user)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(database=database)
    if user is not None:
        parsed = parsed.set(username=user, password=None)
    return parsed.render_as_string(hide_password=False)

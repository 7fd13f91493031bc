"""Shared CLI plumbing: settings, and a database ready for use (embedded or external)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psycopg
from sqlalchemy.engine import make_url

from gateway.db import migrate
from gateway.db.embedded import DatabaseUrls, EmbeddedDatabase
from gateway.errors import ConfigurationError, UnavailableError
from gateway.settings import Settings, load_settings


@dataclass
class PreparedDatabase:
    """URLs of a migrated database, and the embedded server handle if we started one."""

    urls: DatabaseUrls
    embedded: EmbeddedDatabase | None = None


def redact(url: str) -> str:
    """A URL safe to print: no password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def settings() -> Settings:
    """Settings from the environment (and ./.env)."""
    return load_settings()


def _check_reachable(url: str, what: str, timeout_s: int) -> str | None:
    try:
        with psycopg.connect(url, connect_timeout=timeout_s) as conn:
            row = conn.execute(
                "SELECT version_num FROM alembic_version"
                " WHERE to_regclass('alembic_version') IS NOT NULL"
            ).fetchone() if _has_version_table(conn) else None
            return row[0] if row else None
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnavailableError(f"cannot connect to {what} {redact(url)}: {reason}") from None


def _has_version_table(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
    return bool(row and row[0])


def prepare_database(config: Settings, *, apply_migrations: bool = True) -> PreparedDatabase:
    """Start the embedded server when DATABASE_URL is unset; migrate; check the schema is at head."""
    db = config.database
    timeout = db.connect_timeout_s
    if db.url is None:
        embedded = EmbeddedDatabase(db.data_dir)
        urls = embedded.prepare()
        migrate.upgrade(urls.owner)
        os.environ["DATABASE_URL"] = urls.runtime
        return PreparedDatabase(urls, embedded)
    if not db.url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        raise ConfigurationError("DATABASE_URL must be a postgresql:// URL")
    if db.migration_url and apply_migrations:
        _check_reachable(db.migration_url, "GATEWAY_MIGRATION_DATABASE_URL", timeout)
        migrate.upgrade(db.migration_url)
    current = _check_reachable(db.url, "DATABASE_URL", timeout)
    expected = migrate.head_revision()
    if current != expected:
        raise ConfigurationError(
            f"database schema is at {current or 'nothing'}, expected {expected}: "
            "run `gateway migrate` with GATEWAY_MIGRATION_DATABASE_URL set to the owner role"
        )
    return PreparedDatabase(DatabaseUrls(runtime=db.url, owner=db.migration_url or db.url))

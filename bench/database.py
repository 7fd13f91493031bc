"""The benchmark's own PostgreSQL: a dedicated embedded server (or a given URL), tuned, migrated.

The server settings are the ones a production deployment of this size would use
(shared_buffers holding table and index, enough maintenance memory for an in-memory
HNSW build); the schema comes from the real migrations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from gateway.db import migrate
from gateway.db.embedded import DatabaseUrls, EmbeddedDatabase
from gateway.db.roles import APP_ROLE, OWNER_ROLE, bootstrap_cluster, with_database

DATABASE = "bench"
SERVER_SETTINGS = {
    "shared_buffers": "6GB",
    "effective_cache_size": "12GB",
    "maintenance_work_mem": "4GB",
    "max_parallel_maintenance_workers": "1",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "30min",
    "work_mem": "64MB",
    "jit": "off",
    "random_page_cost": "1.1",
}


@dataclass
class BenchDatabase:
    """URLs of the benchmark database and the handle keeping an embedded server alive."""

    urls: DatabaseUrls
    server: EmbeddedDatabase | None = None

    def close(self) -> None:
        """Stop the embedded server (if this process started it)."""
        if self.server is not None:
            self.server.stop()


def open_database(data_dir: Path, url: str | None, *, fresh: bool = False) -> BenchDatabase:
    """Start (or reuse) the embedded server under `data_dir`, or use the superuser `url`.

    The database `bench` is the benchmark's own: with `fresh` it is dropped and recreated.
    """
    server = None
    if url is None:
        server = EmbeddedDatabase(data_dir)
        url = server.superuser_url
        if _configure(url):  # shared_buffers needs a restart: stop and start again
            server.stop()
            server = EmbeddedDatabase(data_dir)
            url = server.superuser_url
    if fresh:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(DATABASE)))
    bootstrap_cluster(url, DATABASE)
    urls = DatabaseUrls(
        runtime=with_database(url, DATABASE, APP_ROLE),
        owner=with_database(url, DATABASE, OWNER_ROLE),
        superuser=with_database(url, DATABASE),
    )
    migrate.upgrade(urls.owner)
    return BenchDatabase(urls, server)


def _configure(url: str) -> bool:
    """Apply SERVER_SETTINGS with ALTER SYSTEM; True when a restart is needed."""
    with psycopg.connect(url, autocommit=True) as conn:
        for name, value in SERVER_SETTINGS.items():
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name),
                                                                     sql.Literal(value)))
        conn.execute("SELECT pg_reload_conf()")
        pending = conn.execute(
            "SELECT count(*) FROM pg_settings WHERE pending_restart"
        ).fetchone()
    return bool(pending and pending[0])

"""The benchmark's own PostgreSQL: a dedicated embedded server (or a given URL), tuned, migrated.

The server settings are the ones a production deployment of this size would use
(shared_buffers holding the 1M corpus's tables and indexes, on huge pages where the
operating system has reserved them, enough maintenance memory for an in-memory HNSW
build); the schema comes from the real migrations.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from gateway.db import migrate
from gateway.db.embedded import DatabaseUrls, EmbeddedDatabase
from gateway.db.roles import APP_ROLE, OWNER_ROLE, bootstrap_cluster, with_database

DATABASE = "bench"
SERVER_SETTINGS = {
    "shared_buffers": "10GB",
    "huge_pages": "try",
    "effective_cache_size": "14GB",
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


def open_database(data_dir: Path, url: str | None, *, fresh: bool = False,
                  settings: Mapping[str, str] | None = None) -> BenchDatabase:
    """Start (or reuse) the embedded server under `data_dir`, or use the superuser `url`.

    The database `bench` is the benchmark's own: with `fresh` it is dropped and recreated.
    `settings` override SERVER_SETTINGS (an embedded server only).
    """
    server = None
    if url is None:
        _forget_dead_handles(data_dir)
        server = EmbeddedDatabase(data_dir)
        url = server.superuser_url
        if _configure(url, {**SERVER_SETTINGS, **(settings or {})}):
            # shared_buffers and huge_pages need a restart: stop and start again
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


def _forget_dead_handles(data_dir: Path) -> None:
    """Drop the handles of processes that no longer run from the embedded server's list.

    The server stops when its last handle is released; a benchmark killed mid-run leaves
    its process id behind, and the server would then never stop (nor restart to apply
    shared_buffers or huge_pages).
    """
    handles = data_dir / "pgdata" / ".handle_pids.json"
    if handles.exists():
        handles.write_text(json.dumps([pid for pid in json.loads(handles.read_text()) if _running(pid)]))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def server_memory(url: str) -> str:
    """The server's shared memory as the report states it: size, and whether on huge pages."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_setting('shared_buffers'),"
                           " current_setting('huge_pages_status')").fetchone()
    assert row is not None
    return f"shared_buffers {row[0]}, huge pages {row[1]}"


def _configure(url: str, settings: Mapping[str, str]) -> bool:
    """Apply `settings` with ALTER SYSTEM; True when a restart is needed.

    A restart is needed when a setting that only takes effect at server start differs
    from the running server's value (`pending_restart` would be racy: the reload it
    depends on is applied asynchronously).
    """
    with psycopg.connect(url, autocommit=True) as conn:
        restart = False
        for name, value in settings.items():
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name),
                                                                     sql.Literal(value)))
            row = conn.execute("SELECT context, current_setting(name) FROM pg_settings WHERE name = %s",
                               (name,)).fetchone()
            restart |= row is not None and row[0] == "postmaster" and row[1] != value
        conn.execute("SELECT pg_reload_conf()")
    return restart

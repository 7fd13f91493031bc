"""The embedded PostgreSQL 18 + pgvector server used when no DATABASE_URL is set.

`pgserver` keeps a list of the processes using a data dir and stops the server when the
last one exits, so several gateway processes can share one safely.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.db.roles import APP_ROLE, DATABASE, OWNER_ROLE, bootstrap_cluster, with_database
from gateway.errors import UnavailableError


@dataclass(frozen=True)
class DatabaseUrls:
    """Connection URLs for the two roles of one database."""

    runtime: str
    owner: str
    superuser: str | None = None


class EmbeddedDatabase:
    """A handle on the embedded server; keep it alive as long as the database is used."""

    def __init__(self, data_dir: Path, *, stop_on_exit: bool = True) -> None:
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        data_dir = data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            try:
                self._server: Any = pgserver.get_server(
                    data_dir / "pgdata", cleanup_mode="stop" if stop_on_exit else None
                )
            except Exception as exc:  # pgserver raises bare subprocess/OS errors
                raise UnavailableError(f"embedded PostgreSQL failed to start: {exc}") from exc
        self.superuser_url: str = self._server.get_uri()

    def prepare(self, database: str = DATABASE) -> DatabaseUrls:
        """Create roles, database and extension; return the URLs of both roles."""
        bootstrap_cluster(self.superuser_url, database)
        return DatabaseUrls(
            runtime=with_database(self.superuser_url, database, APP_ROLE),
            owner=with_database(self.superuser_url, database, OWNER_ROLE),
            superuser=with_database(self.superuser_url, database),
        )

    def stop(self) -> None:
        """Release this process's handle (stops the server if it was the last one)."""
        self._server.cleanup()

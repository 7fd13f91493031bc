"""Shared fixtures: one embedded PostgreSQL per session, a migrated template, a database per test."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from gateway.db import migrate  # noqa: E402
from gateway.db.embedded import DatabaseUrls, EmbeddedDatabase  # noqa: E402
from gateway.ingestion.embedders import LocalEmbedder  # noqa: E402
from gateway.ingestion.tokens import WordPieceTokenizer  # noqa: E402
from gateway.settings import DatabaseSettings, ServerSettings, Settings  # noqa: E402
from tests.support.database import clone_database, drop_database  # noqa: E402

TEMPLATE = "gateway_template"
_EXIT_STATUS = pytest.StashKey[int]()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedDatabase]:
    """The session's embedded PostgreSQL 18 + pgvector, in its own temp dir."""
    server = EmbeddedDatabase(tmp_path_factory.mktemp("pg"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def template_urls(pg_server: EmbeddedDatabase) -> DatabaseUrls:
    """A database migrated to head once per session; tests clone it."""
    urls = pg_server.prepare(TEMPLATE)
    migrate.upgrade(urls.owner)
    return urls


@pytest.fixture
def db_urls(pg_server: EmbeddedDatabase, template_urls: DatabaseUrls) -> Iterator[DatabaseUrls]:
    """A fresh migrated database for this test alone (runtime, owner and superuser URLs)."""
    urls = clone_database(pg_server.superuser_url, TEMPLATE)
    yield urls
    drop_database(pg_server.superuser_url, urls)


@pytest.fixture(scope="module")
def module_db_urls(pg_server: EmbeddedDatabase, template_urls: DatabaseUrls) -> Iterator[DatabaseUrls]:
    """A fresh migrated database shared by one test module (for apps built once per module)."""
    urls = clone_database(pg_server.superuser_url, TEMPLATE)
    yield urls
    drop_database(pg_server.superuser_url, urls)


@pytest.fixture(scope="module")
def module_settings(module_db_urls: DatabaseUrls, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at the module's database, with a module-wide data dir."""
    return Settings(
        database=DatabaseSettings(url=module_db_urls.runtime, data_dir=tmp_path_factory.mktemp("data")),
        server=ServerSettings(log_format="json", log_level="warning"),
    )


@pytest.fixture
def settings(db_urls: DatabaseUrls, tmp_path: Path) -> Settings:
    """Settings pointing at this test's database, logging as JSON."""
    return Settings(
        database=DatabaseSettings(url=db_urls.runtime, data_dir=tmp_path / "data"),
        server=ServerSettings(log_format="json", log_level="warning"),
    )


@pytest.fixture(scope="session")
def wordpiece() -> WordPieceTokenizer:
    """The embedding model's tokenizer, loaded once per session."""
    return WordPieceTokenizer()


@pytest.fixture(scope="session")
def embedder() -> LocalEmbedder:
    """The bundled local embedder, its model loaded once per session; pass it to create_app."""
    local = LocalEmbedder()
    local.load()
    return local


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember the exit status for `pytest_unconfigure`."""
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Exit once pytest has reported, without the interpreter's final garbage collection.

    The in-process gateways' dead threads leave garbage whose collection has crashed the
    interpreter (docs/decisions.md, "The test session runs end-to-end tests last").
    """
    if _EXIT_STATUS in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_STATUS])

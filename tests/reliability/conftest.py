"""Fixtures of the fault suite: a small corpus, tight timeouts, a proxy in front of PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import psycopg
import pytest

from gateway.db.embedded import DatabaseUrls
from gateway.settings import Settings
from tests.support.corpus import document, load_documents
from tests.support.faultproxy import FaultProxy, fault_proxy, postgres_socket, via_proxy

QUESTION = "How many days of paid leave do employees get?"

CORPUS = [
    document("hr-leave", "Leave policy",
             "Paid leave. Every employee gets 25 days of paid leave per year. Unused days carry "
             "over until the end of March.", {"allow": ["everyone"]}),
    document("hr-travel", "Travel policy",
             "Business travel. Hotels may be booked up to 150 EUR per night. Trains are preferred "
             "for trips under four hours.", {"allow": ["everyone"]}),
    document("hr-remote", "Remote work",
             "Remote work. Employees may work remotely three days a week with their manager's "
             "agreement.", {"allow": ["everyone"]}),
    document("it-laptops", "Laptop policy",
             "Laptops are replaced every three years. Lost laptops must be reported within a day.",
             {"allow": ["everyone"]}),
    document("fin-bonus", "Bonus pool",
             "The bonus pool is four percent of payroll this year.",
             {"allow": ["group:finance"], "classification": "confidential"}),
]


def tight(settings: Settings, url: str, **server: object) -> Settings:
    """Settings with short timeouts so that every fault resolves within a few seconds."""
    database = dataclasses.replace(settings.database, url=url, pool_size=4, pool_timeout_s=1.0,
                                   connect_timeout_s=2, statement_timeout_ms=3000)
    server_settings = dataclasses.replace(settings.server, **{"request_timeout_s": 4.0, **server})
    return settings.replace(database=database, server=server_settings)


@pytest.fixture
async def corpus_db(db_urls: DatabaseUrls, settings: Settings, embedder, wordpiece) -> DatabaseUrls:
    """This test's database with the small corpus loaded."""
    await load_documents(db_urls.runtime, settings, embedder, CORPUS, tokenizer=wordpiece)
    return db_urls


@pytest.fixture
def db_proxy(corpus_db: DatabaseUrls) -> Iterator[FaultProxy]:
    """A fault proxy in front of this test's PostgreSQL, passing traffic."""
    with fault_proxy(postgres_socket(corpus_db.runtime)) as proxy:
        yield proxy


@pytest.fixture
def proxied_settings(settings: Settings, corpus_db: DatabaseUrls, db_proxy: FaultProxy) -> Settings:
    """Tight settings whose DATABASE_URL goes through the proxy."""
    return tight(settings, via_proxy(corpus_db.runtime, db_proxy))


def audit_events(db_urls: DatabaseUrls, where: str = "TRUE", *params: object) -> list[tuple]:
    """(id, request_id, action, status, number of sources) of the audit events matching `where`."""
    with psycopg.connect(db_urls.superuser) as conn:
        return conn.execute(
            "SELECT e.id::text, e.request_id, e.action, e.status,"
            " (SELECT count(*) FROM audit_sources s WHERE s.event_id = e.id)"
            f" FROM audit_events e WHERE {where} ORDER BY e.ts", params).fetchall()

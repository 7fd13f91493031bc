"""Who sees what: a small realistic policy set as a principal x document table (SPEC §6).

Each column is a principal, each row a document; `x` means visible. The table is checked
four ways: the reference evaluator, the service path (runtime role, bound principal and
the SQL predicate), row-level security alone, and the SQL predicate alone.
"""

from datetime import UTC, datetime, timedelta

import pytest

from policies.evaluate import decide
from policies.model import ClassificationLevels, parse_access, parse_rule
from policies.principal import Principal
from tests.support.access import bind_reader, bind_writer, sync_engine, visible, write_document, write_policy

pytestmark = pytest.mark.integration

LEVELS = ClassificationLevels()
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)

PRINCIPALS = {
    "alice": Principal("alice", "acme", groups=("employees", "finance"), clearance="confidential",
                       attributes={"region": ("EU",)}),
    "bob": Principal("bob", "acme", groups=("employees", "finance", "contractors"),
                     clearance="confidential", attributes={"region": ("EU",)}),
    "carol": Principal("carol", "acme", groups=("employees", "board"), clearance="restricted",
                       attributes={"region": ("US",)}),
    "dave": Principal("dave", "acme", groups=("employees", "finance"), attributes={"region": ("US",)}),
    "erin": Principal("erin", "acme", groups=("employees", "hr", "legal"), clearance="confidential"),
    "sec": Principal("company-secretary", "acme", clearance="restricted"),
    "gina": Principal("gina", "globex", groups=("employees",), clearance="restricted"),
}

POLICIES = {
    "finance-eu": {"allow": ["group:finance"], "deny": ["group:contractors"],
                   "classification": "confidential", "conditions": {"region": ["EU"]}},
    "board-papers": {"allow": ["group:board", "user:company-secretary"], "classification": "restricted"},
    "all-staff": {"allow": ["everyone"], "deny": ["group:contractors"]},
}

DOCUMENTS = {
    "hr-handbook": {"allow": ["group:employees"], "deny": ["group:contractors"]},
    "salary-bands": {"allow": ["group:hr"], "classification": "confidential"},
    "q3-forecast": {"allow": ["group:finance", "group:board"], "policy": "finance-eu"},
    "board-minutes": {"policy": "board-papers"},
    "canteen-menu": {"allow": ["everyone"], "classification": "public"},
    "press-release": {"allow": ["everyone"], "classification": "public", "valid_from": NOW + DAY},
    "old-price-list": {"allow": ["everyone"], "valid_until": NOW - DAY},
    "legal-memo": {"allow": ["group:legal"], "policy": "legal-hold"},  # no such policy: nobody
    "staff-survey": {"policy": "all-staff"},
    "globex-roadmap": {"tenant": "globex", "allow": ["everyone"]},
}

MATRIX = """
                  alice  bob  carol  dave  erin  sec  gina
hr-handbook         x     .     x     x     x     .    .
salary-bands        .     .     .     .     x     .    .
q3-forecast         x     .     .     .     .     .    .
board-minutes       .     .     x     .     .     x    .
canteen-menu        x     x     x     x     x     x    .
press-release       .     .     .     .     .     .    .
old-price-list      .     .     .     .     .     .    .
legal-memo          .     .     .     .     .     .    .
staff-survey        x     .     x     x     x     x    .
globex-roadmap      .     .     .     .     .     .    x
"""


def expected_matrix() -> dict[str, set[str]]:
    header, *rows = [line.split() for line in MATRIX.strip().splitlines()]
    assert sorted(header) == sorted(PRINCIPALS)
    assert sorted(r[0] for r in rows) == sorted(DOCUMENTS)
    return {who: {r[0] for r in rows if r[1 + i] == "x"} for i, who in enumerate(header)}


def parsed_documents():
    return {name: parse_access({"tenant": "acme", **spec}, LEVELS) for name, spec in DOCUMENTS.items()}


def parsed_policies():
    return {name: parse_rule(spec, LEVELS) for name, spec in POLICIES.items()}


def test_reference_evaluator_matches_the_matrix():
    documents, policies = parsed_documents(), parsed_policies()
    seen = {who: {name for name, access in documents.items()
                  if decide(p, access, policies.get(access.policy) if access.policy else None,
                            now=NOW, levels=LEVELS).allowed}
            for who, p in PRINCIPALS.items()}
    assert seen == expected_matrix()


@pytest.fixture
def stored(db_urls):
    """The policy set written to a fresh database; yields (engines, document name by id)."""
    owner, runtime, superuser = (sync_engine(u) for u in (db_urls.owner, db_urls.runtime, db_urls.superuser))
    names = {}
    for tenant in ("acme", "globex"):
        with owner.begin() as conn:
            bind_writer(conn, tenant)
            if tenant == "acme":
                for name, rule in parsed_policies().items():
                    write_policy(conn, tenant, name, rule, LEVELS)
            for name, access in parsed_documents().items():
                if (access.tenant or "acme") == tenant:
                    names[write_document(conn, tenant, access, LEVELS, external_id=name, chunks=2).id] = name
    yield runtime, superuser, names
    for engine in (owner, runtime, superuser):
        engine.dispose()


def _seen(engine, names, *, bind: bool, predicate: bool):
    result = {}
    for who, principal in PRINCIPALS.items():
        with engine.begin() as conn:
            if bind:
                bind_reader(conn, principal, LEVELS, NOW)
            docs, chunks = visible(conn, principal, LEVELS, NOW, predicate=predicate)
        result[who] = {names[d] for d in docs}
        assert len(chunks) == 2 * len(docs)  # chunks carry their document's access
    return result


def test_service_path_matches_the_matrix(stored):
    runtime, _, names = stored
    assert _seen(runtime, names, bind=True, predicate=True) == expected_matrix()


def test_row_level_security_alone_matches_the_matrix(stored):
    runtime, _, names = stored
    assert _seen(runtime, names, bind=True, predicate=False) == expected_matrix()


def test_sql_predicate_alone_matches_the_matrix(stored):
    _, superuser, names = stored  # a superuser bypasses row-level security
    assert _seen(superuser, names, bind=False, predicate=True) == expected_matrix()

"""Migrations own the schema: they match the models, and they reverse cleanly."""

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from gateway.db import migrate
from gateway.db.engine import sqlalchemy_url
from gateway.db.schema import metadata

pytestmark = pytest.mark.integration


def test_upgrade_head_matches_models(db_urls):
    engine = create_engine(sqlalchemy_url(db_urls.owner))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_back(db_urls):
    migrate.downgrade(db_urls.owner, "base")
    with psycopg.connect(db_urls.owner) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        ).fetchall()
    assert tables == []
    migrate.upgrade(db_urls.owner)
    with psycopg.connect(db_urls.owner) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == (migrate.head_revision(),)


def test_runtime_role_cannot_bypass_row_level_security(db_urls):
    with psycopg.connect(db_urls.runtime) as conn:
        who, superuser, bypass = conn.execute(
            "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        owned = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
            " WHERE r.rolname = current_user"
        ).fetchone()[0]
        member_of_privileged = conn.execute(
            "SELECT count(*) FROM pg_roles r WHERE pg_has_role(current_user, r.oid, 'MEMBER')"
            " AND (r.rolsuper OR r.rolbypassrls)"
        ).fetchone()[0]
    assert who == "gateway_app"
    assert superuser is False
    assert bypass is False
    assert owned == 0
    assert member_of_privileged == 0


def test_runtime_role_cannot_change_the_schema(db_urls):
    with psycopg.connect(db_urls.runtime) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("ALTER TABLE chunks DISABLE ROW LEVEL SECURITY")

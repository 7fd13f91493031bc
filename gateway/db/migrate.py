"""Run and inspect Alembic migrations programmatically (`gateway migrate`, readiness)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from gateway.db.engine import sqlalchemy_url

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str) -> Config:
    """An Alembic config for the repository's `migrations/`, pointed at `url`."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def upgrade(owner_url: str, revision: str = "head") -> None:
    """Apply migrations as the owner role (serialised by an advisory lock in env.py)."""
    command.upgrade(alembic_config(owner_url), revision)


def downgrade(owner_url: str, revision: str = "base") -> None:
    """Revert migrations down to `revision`."""
    command.downgrade(alembic_config(owner_url), revision)


def head_revision() -> str | None:
    """The newest revision in `migrations/versions`."""
    script = ScriptDirectory.from_config(alembic_config("postgresql://localhost/x"))
    return script.get_current_head()

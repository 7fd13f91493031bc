"""`gateway migrate`: apply schema migrations as the owner role."""

from __future__ import annotations

import argparse

from gateway.cli import runtime
from gateway.db import migrate
from gateway.errors import ConfigurationError


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `migrate` subcommand."""
    parser = commands.add_parser("migrate", help="apply database migrations")
    parser.add_argument("--revision", default="head", help="target revision (default head)")
    parser.set_defaults(handler=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    """Embedded: bootstrap and migrate. External: migrate with GATEWAY_MIGRATION_DATABASE_URL."""
    config = runtime.settings()
    if config.database.url is None:
        prepared = runtime.prepare_database(config)
        print(f"migrated embedded database to {migrate.head_revision()}")
        if prepared.embedded:
            prepared.embedded.stop()
        return 0
    owner = config.database.migration_url
    if owner is None:
        raise ConfigurationError(
            "GATEWAY_MIGRATION_DATABASE_URL (the owner role) is required to migrate an external "
            "database; the runtime role in DATABASE_URL owns nothing"
        )
    runtime._check_reachable(owner, "GATEWAY_MIGRATION_DATABASE_URL", config.database.connect_timeout_s)
    migrate.upgrade(owner, args.revision)
    print(f"migrated {runtime.redact(owner)} to {args.revision}")
    return 0

"""`gateway policy apply|list|explain`: named policies as code, from the command line.

`apply` validates every file before touching the database, shows the diff, and changes
nothing unless `--yes` is given; then all changes are applied in one transaction, each
audited. The operator acts as `cli:<login>` with the admin role in the chosen tenant.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog

from gateway.access.explain import AccessExplainer, target_principal
from gateway.access.policies import PolicyService
from gateway.access.service import AccessAdministration
from gateway.audit.service import AuditLog
from gateway.audit.signing import AuditSigner
from gateway.cli import runtime
from gateway.db.engine import create_engine, session_factory
from gateway.errors import InvalidInputError
from gateway.metrics import Metrics
from gateway.settings import Settings
from policies.files import PolicyFileError, describe_change, load_policy_files
from policies.principal import Principal

T = TypeVar("T")
S = TypeVar("S", bound=AccessAdministration)


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `policy` subcommand and its `apply`, `list` and `explain` actions."""
    parser = commands.add_parser("policy", help="manage named access policies")
    actions = parser.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    apply = actions.add_parser("apply", help="apply YAML policy files (dry run unless --yes)")
    apply.add_argument("files", nargs="+", type=Path, metavar="FILE")
    apply.add_argument("--yes", action="store_true", help="apply the changes (default: show them)")
    apply.add_argument("--tenant", help="tenant for files without one (default GATEWAY_DEFAULT_TENANT)")
    apply.set_defaults(handler=run_apply)
    listing = actions.add_parser("list", help="list the named policies of a tenant")
    listing.add_argument("--tenant", help="tenant (default GATEWAY_DEFAULT_TENANT)")
    listing.set_defaults(handler=run_list)
    explain = actions.add_parser("explain", help="why a principal can or cannot see a document")
    explain.add_argument("--document", required=True, type=uuid.UUID, help="document id")
    explain.add_argument("--sub", required=True, help="the principal's subject")
    explain.add_argument("--groups", default="", help="comma-separated groups")
    explain.add_argument("--roles", default="", help="comma-separated roles")
    explain.add_argument("--tenant", help="tenant of the document and principal")
    explain.add_argument("--clearance", help="the principal's clearance")
    explain.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE",
                         help="an attribute of the principal (repeatable)")
    explain.add_argument("--at", type=datetime.fromisoformat, help="decision time (ISO 8601, with zone)")
    explain.set_defaults(handler=run_explain)


def operator(config: Settings, tenant: str | None) -> Principal:
    """The principal the CLI acts as: the login name, admin in the tenant."""
    return Principal(subject=f"cli:{getpass.getuser()}", tenant=tenant or config.auth.default_tenant,
                     issuer="urn:gateway:cli", roles=(config.auth.role_admin,))


def with_service(config: Settings, kind: type[S], work: Callable[[S], Awaitable[T]]) -> T:
    """Run `work` against a service on the configured database (embedded or external)."""
    prepared = runtime.prepare_database(config)
    structlog.contextvars.bind_contextvars(request_id=f"cli-{uuid.uuid4().hex}")

    async def main() -> T:
        engine = create_engine(prepared.urls.runtime, config.database)
        sessions = session_factory(engine)
        try:
            audit = AuditLog(sessions, config.audit, Metrics(), AuditSigner.from_settings(config))
            return await work(kind(sessions, config.policy.classification_levels(), audit))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    finally:
        if prepared.embedded:
            prepared.embedded.stop()


def run_apply(args: argparse.Namespace) -> int:
    """Validate all files, show the plan, apply it with --yes."""
    config = runtime.settings()
    try:
        files = load_policy_files(args.files, config.policy.classification_levels())
    except PolicyFileError as exc:
        raise InvalidInputError(f"{exc} (nothing was applied)") from None
    actor = operator(config, args.tenant)

    async def work(service: PolicyService) -> Any:
        return await (service.apply(actor, files) if args.yes else service.plan(actor.tenant, files))

    changes = with_service(config, PolicyService, work)
    for change in changes:
        print("\n".join(describe_change(change)))
    counts = {a: sum(c.action == a for c in changes) for a in ("create", "update", "unchanged")}
    summary = f"{counts['create']} to create, {counts['update']} to update, {counts['unchanged']} unchanged"
    if args.yes:
        print(f"applied: {summary}")
    else:
        print(f"dry run: {summary}; run again with --yes to apply")
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print the tenant's policies, one per line."""
    config = runtime.settings()
    tenant = operator(config, args.tenant).tenant
    stored = with_service(config, PolicyService, lambda s: s.current_policies(tenant))
    print(f"{'NAME':<28} {'VERSION':>7}  {'CLASSIFICATION':<14} {'ALLOW':<40} DENY")
    for item in stored:
        rule = item.policy.rule
        print(f"{item.policy.name:<28} {item.version:>7}  {rule.classification:<14} "
              f"{','.join(rule.allow):<40} {','.join(rule.deny) or '-'}")
    if not stored:
        print(f"(no policies in tenant {tenant})")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    """Print the rule-by-rule trace and the SQL verdicts; exit 1 if they disagree."""
    config = runtime.settings()
    admin = operator(config, args.tenant)
    attributes: dict[str, list[str]] = {}
    for raw in args.attr:
        key, sep, value = raw.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--attr {raw!r}: expected KEY=VALUE")
        attributes.setdefault(key, []).append(value)
    spec = {"subject": args.sub, "tenant": admin.tenant, "groups": _split(args.groups),
            "roles": _split(args.roles), "clearance": args.clearance, "attributes": attributes}
    target = target_principal(admin, spec, config.auth)
    explanation = with_service(config, AccessExplainer,
                               lambda s: s.explain(admin, args.document, target, args.at))
    print(explanation.text())
    return 0 if explanation.agree else 1


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]

"""`gateway token`: mint a dev-mode access token (refused when an IdP is configured)."""

from __future__ import annotations

import argparse

from gateway.auth.devkeys import mint_dev_token
from gateway.cli import runtime
from gateway.errors import ConfigurationError

_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(raw: str) -> int:
    """`90`, `30m`, `1h`, `2d` -> seconds."""
    raw = raw.strip().lower()
    unit = _TTL_UNITS.get(raw[-1:])
    number = raw[:-1] if unit else raw
    if not number.isdigit() or int(number) <= 0:
        raise argparse.ArgumentTypeError("expected a duration such as 90, 30m, 1h or 2d")
    return int(number) * (unit or 1)


def _attribute(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected key=value")
    return key, value


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `token` subcommand."""
    parser = commands.add_parser("token", help="mint a dev-mode access token")
    parser.add_argument("--sub", required=True, help="subject (user id)")
    parser.add_argument("--groups", default="", help="comma-separated groups")
    parser.add_argument("--roles", default="", help="comma-separated roles (admin, ingest, auditor)")
    parser.add_argument("--tenant", help="tenant (default GATEWAY_DEFAULT_TENANT)")
    parser.add_argument("--clearance", help="clearance level")
    parser.add_argument("--attr", action="append", type=_attribute, default=[],
                        metavar="KEY=VALUE", help="attribute claim (repeatable)")
    parser.add_argument("--ttl", type=parse_ttl, default=None, help="lifetime, e.g. 1h")
    parser.set_defaults(handler=token)


def _split(raw: str) -> list[str]:
    return [p.strip() for p in raw.split(",") if p.strip()]


def token(args: argparse.Namespace) -> int:
    """Print a token signed with the data dir's dev key."""
    config = runtime.settings()
    if not config.auth.dev_mode:
        raise ConfigurationError("gateway token only works in dev mode (no GATEWAY_OIDC_ISSUER "
                                 "or GATEWAY_JWKS_URL); get tokens from your IdP")
    attributes: dict[str, list[str]] = {}
    for key, value in args.attr:
        attributes.setdefault(key, []).append(value)
    print(mint_dev_token(
        config, sub=args.sub, groups=_split(args.groups), roles=_split(args.roles),
        tenant=args.tenant, clearance=args.clearance, attributes=attributes, ttl_s=args.ttl,
    ))
    return 0

"""The `gateway` command. Each subcommand lives in its own module with a `register` function.

Errors the operator can fix (bad settings, unreachable database) print one line and
exit non-zero; they never print a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from gateway.errors import GatewayError


def _command_modules() -> list[ModuleType]:
    from gateway.cli import audit, database, demo, index, ingest, policy, serve, token

    return [serve, database, token, ingest, demo, policy, audit, index]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="gateway", description="Access-controlled retrieval gateway")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules():
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except GatewayError as exc:
        print(f"gateway: error: {exc.detail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())

"""The ``serverprep`` command.

Its client commands are here; other installed packages add commands through the
``serverprep.cli`` entry point group (the service adds ``serve``, ``plan`` and ``drivers``):
each entry point names a function ``add_commands(subparsers, client_options)``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import TextIO

from serverprep.clients.cli import commands
from serverprep.clients.cli.common import EXIT_FAILED, EXIT_USAGE, CliError, address, client_options
from serverprep.clients.client import ServerprepClientError

ENTRY_POINT_GROUP = "serverprep.cli"
#: Commands another distribution provides, and which one: named when they are missing.
ELSEWHERE = {"serve": "serverprep (the service)", "plan": "serverprep (the service)", "drivers": "serverprep (the service)"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="serverprep", description="Prepare Linux servers over SSH to run containers.",
        parents=[client_options(in_subcommand=False)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    in_sub = client_options(in_subcommand=True)
    commands.add_commands(sub, in_sub)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        ep.load()(sub, in_sub)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    missing = next((a for a in argv if not a.startswith("-")), None)
    if missing in ELSEWHERE and missing not in parser._subparsers._group_actions[0].choices:  # type: ignore[union-attr]
        print(f"serverprep: '{missing}' comes with {ELSEWHERE[missing]}: pip install serverprep", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    try:
        return int(args.run(args, out))
    except ServerprepClientError as e:
        if e.reason == "SERVICE_UNAVAILABLE":
            print(f"serverprep: cannot reach the service at {address(args)}: {e.message}", file=sys.stderr)
        else:
            print(f"serverprep: {e}", file=sys.stderr)
        return EXIT_USAGE if e.reason == "INVALID_ARGUMENT" else EXIT_FAILED
    except CliError as e:
        print(f"serverprep: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130

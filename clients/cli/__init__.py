"""The ``serverprep`` command.

Its client commands are here; other installed packages add commands through the
``serverprep.cli`` entry point group (the service adds ``serve``, ``plan`` and ``drivers``):
each entry point names a function ``add_commands(subparsers, client_options)``, where
``client_options`` is the parent parser of the connection and output flags (``--address``,
``-o/--output``, ``--color`` ...), accepted before or after the command. A command takes part
in ``-o json`` by ``set_defaults(json_output=True)`` and reading ``args.output`` (or by having
a ``--json`` flag, which ``-o json`` then sets); errors it raises as
:class:`~serverprep.clients.cli.common.CliError` are printed as text or JSON like any other.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any, NoReturn, TextIO

from serverprep.clients.cli import commands
from serverprep.clients.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
    add_output_options,
    address,
    client_options,
    print_error_json,
    wants_json,
)
from serverprep.clients.cli.interrupt import interrupted
from serverprep.clients.cli.terminal import visible
from serverprep.clients.errors import ServerprepClientError, ServiceUnavailable

ENTRY_POINT_GROUP = "serverprep.cli"
#: Commands another distribution provides, and which one: named when they are missing.
ELSEWHERE = {"serve": "serverprep (the service)", "plan": "serverprep (the service)", "drivers": "serverprep (the service)"}

EXAMPLES = """examples:
  serverprep servers add web1 --host 203.0.113.10 --user admin --key-file ~/.ssh/id_ed25519 --accept-new-host-key
  serverprep prepare web1 --docker-source distro --follow
  serverprep status web1 -o json
  serverprep COMMAND --help        # each command's options and examples

"""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are JSON on stderr when the command line asks for JSON."""

    json_errors = False
    #: The commands that exist (set by build_parser), to tell a missing one from a typo.
    commands: frozenset[str] = frozenset()

    def error(self, message: str) -> NoReturn:
        if Parser.json_errors:
            print_error_json({"reason": "INVALID_ARGUMENT", "message": message, "code": None,
                              "metadata": {"usage": " ".join(self.format_usage().split())}, "violations": {}})
            self.exit(EXIT_USAGE)
        super().error(message)


class _Version(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None) -> None:
        print(commands.version_text())
        parser.exit()


def _json_requested(argv: Sequence[str]) -> bool:
    for i, arg in enumerate(argv):
        if arg == "--":
            return False
        if arg in ("--json", "--output=json", "-ojson", "-o=json") or (arg in ("-o", "--output") and argv[i + 1 : i + 2] == ["json"]):
            return True
    return False


def build_parser() -> Parser:
    parser = Parser(
        prog="serverprep", description="Prepare Linux servers over SSH to run containers.",
        epilog=EXAMPLES + EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[client_options(in_subcommand=False)],
    )
    parser.add_argument("--version", action=_Version, help="show the client's version (and the service's, if installed here)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands",
                                help="what to do (serverprep COMMAND --help shows its options and examples)")
    in_sub = client_options(in_subcommand=True)
    commands.add_commands(sub, in_sub)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            ep.load()(sub, in_sub)
        except Exception as e:  # a broken plugin must not take the client's own commands down with it
            print(f"serverprep: warning: the commands of {ep.name} ({ep.value}) are unavailable: {e}", file=sys.stderr)
    for command in sub.choices.values():
        if not any("--output" in a.option_strings for a in command._actions):
            add_output_options(command, in_subcommand=True)
    parser.set_defaults(root_parser=parser)
    parser.commands = frozenset(sub.choices)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        Parser.json_errors = _json_requested(args)
        code = _run(args, out)
        out.flush()
        return code
    except KeyboardInterrupt:  # Ctrl-C before a command runs (the parser is being built), or as it prints
        return _report(interrupted(), Parser.json_errors)
    except BrokenPipeError:
        # The reader left (| head): end quietly, and keep the interpreter's last flush from complaining.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        return EXIT_BROKEN_PIPE


def _run(argv: list[str], out: TextIO) -> int:
    parser = build_parser()
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in ELSEWHERE and first not in parser.commands:
        return _report(CliError(f"'{first}' comes with {ELSEWHERE[first]}: pip install serverprep", EXIT_USAGE),
                       Parser.json_errors)
    try:
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    as_json = wants_json(args)
    try:
        if as_json and not getattr(args, "json_output", False) and not hasattr(args, "json"):
            raise CliError(f"serverprep {args.command} has no JSON output", EXIT_USAGE)
        if as_json and hasattr(args, "json"):
            args.json = True
        return int(args.run(args, out))
    except ServiceUnavailable as e:
        if e.reason == ServiceUnavailable.REASON:  # nothing answered: say where we looked
            e.metadata["address"] = address(args)
            e.message = f"cannot reach the service at {address(args)}: {e.message}"
        return _report(e, as_json)
    except (ServerprepClientError, CliError) as e:
        return _report(e, as_json)
    except KeyboardInterrupt:
        return _report(CliError("interrupted", EXIT_INTERRUPTED, reason="INTERRUPTED"), as_json)


def _report(e: ServerprepClientError | CliError, as_json: bool) -> int:
    if as_json:
        print_error_json(e.to_dict())
    elif isinstance(e, ServerprepClientError) and e.reason == "SERVICE_UNAVAILABLE":
        print(f"serverprep: {visible(e.message)}", file=sys.stderr)
    else:
        print("\n".join(f"serverprep: {visible(line)}" if i == 0 else visible(line)
                        for i, line in enumerate(str(e).split("\n"))), file=sys.stderr)
    if isinstance(e, CliError):
        return e.code
    return EXIT_USAGE if e.reason == "INVALID_ARGUMENT" else EXIT_FAILED

"""What every command shares: exit codes, errors, output formats, and the options that say how to reach the service."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from serverprep.clients.channel import resolve_address
from serverprep.clients.client import Client
from serverprep.clients.defaults import DEFAULT_ADDRESS, ENV_ADDRESS
from serverprep.clients.errors import InvalidArgumentError
from serverprep.clients.types import (
    PREPARATION_STATE_CANCELLED,
    PREPARATION_STATE_FAILED,
    PREPARATION_STATE_SUCCEEDED,
)

#: Exit statuses (documented in ``serverprep --help`` and the README).
EXIT_OK = 0  # done; a followed or checked preparation SUCCEEDED
EXIT_FAILED = 1  # the call failed: refused by the service, or the service unreachable
EXIT_USAGE = 2  # wrong arguments (the CLI's or the service's INVALID_ARGUMENT)
EXIT_PREPARATION_FAILED = 3  # a followed or checked preparation ended FAILED
EXIT_PREPARATION_CANCELLED = 4  # ... ended CANCELLED
EXIT_NOT_FINISHED = 5  # status --exit-code: still PENDING or RUNNING
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_BROKEN_PIPE = 141  # the reader went away (128 + SIGPIPE), as a shell reports for any writer

EXIT_CODES_HELP = """exit status:
  0    success (a followed or checked preparation SUCCEEDED)
  1    the call failed (refused by the service, service unreachable)
  2    wrong arguments
  3    the preparation FAILED          (--follow, status --exit-code)
  4    the preparation was CANCELLED   (--follow, status --exit-code)
  5    the preparation is still PENDING or RUNNING (status --exit-code)
  130  interrupted (Ctrl-C); a preparation goes on in the service
  141  the output pipe was closed (e.g. | head)"""


class CliError(Exception):
    """A refusal or failure to report on stderr, with the exit status to end with."""

    def __init__(self, message: str, code: int = EXIT_FAILED, *, reason: str = "", metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason or ("INVALID_ARGUMENT" if code == EXIT_USAGE else "CLI_ERROR")
        self.metadata = metadata or {}

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "message": str(self), "code": None, "metadata": self.metadata, "violations": {}}


def preparation_exit(state: int) -> int:
    """The exit status for a preparation that ended (or not) in ``state``."""
    if state == PREPARATION_STATE_SUCCEEDED:
        return EXIT_OK
    if state == PREPARATION_STATE_FAILED:
        return EXIT_PREPARATION_FAILED
    if state == PREPARATION_STATE_CANCELLED:
        return EXIT_PREPARATION_CANCELLED
    return EXIT_NOT_FINISHED


def _options_parent(in_subcommand: bool) -> argparse.ArgumentParser:
    # A subcommand's copy leaves unset flags alone (SUPPRESS), so that a flag given before the command still counts.
    return argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS if in_subcommand else None)


def add_output_options(parser: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    """-o/--output and --color: how the command writes its results."""
    default = argparse.SUPPRESS if in_subcommand else None
    group = parser.add_argument_group("output")
    group.add_argument("-o", "--output", choices=("text", "json"), default=default,
                       help="text for people (default), or json for programs: one JSON document, or JSON lines "
                            "for logs and --follow; errors as {\"error\": {...}} on stderr")
    group.add_argument("--color", choices=("auto", "always", "never"), default=default,
                       help="colour the text output: auto (default: on a terminal, unless $NO_COLOR is set), always, never")


def client_options(*, in_subcommand: bool) -> argparse.ArgumentParser:
    """The options of every command that talks to the service, accepted before or after the command."""
    parent = _options_parent(in_subcommand)
    group = parent.add_argument_group("connection")
    group.add_argument("--address", metavar="HOST:PORT",
                       help=f"service address (default: ${ENV_ADDRESS}, or {DEFAULT_ADDRESS} when unset or empty)")
    group.add_argument("--token-file", metavar="FILE", help="file with the bearer token (default: $SERVERPREP_TOKEN)")
    group.add_argument("--tls-ca", metavar="FILE", help="CA certificate (PEM) to verify the service with (default: $SERVERPREP_TLS_CA)")
    group.add_argument("--tls-cert", metavar="FILE", help="client certificate (PEM) for mutual TLS (default: $SERVERPREP_TLS_CERT)")
    group.add_argument("--tls-key", metavar="FILE", help="client key (PEM) for mutual TLS (default: $SERVERPREP_TLS_KEY)")
    group.add_argument("--timeout", metavar="SECONDS", type=float,
                       help="give up on a call after this long (default 30; log streams are not bounded)")
    add_output_options(parent, in_subcommand=in_subcommand)
    return parent


def server_argument(parser: argparse.ArgumentParser, text: str = "the server's name") -> None:
    """The NAME of a registered server (shell completion offers the registered names)."""
    action = parser.add_argument("name", help=text)
    setattr(action, "completion", "server")  # noqa: B010 (argparse actions take no such keyword)


def option(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    """An option that may be absent (a command added by another package, a suppressed default)."""
    value = getattr(args, name, None)
    return default if value is None else value


def wants_json(args: argparse.Namespace) -> bool:
    return bool(option(args, "output") == "json" or getattr(args, "json", False))


def address(args: argparse.Namespace) -> str:
    return resolve_address(option(args, "address"))


def connect(args: argparse.Namespace) -> Client:
    token = None
    token_file = option(args, "token_file")
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as e:
            raise CliError(f"cannot read token file {token_file}: {e.strerror}", EXIT_USAGE) from None
    timeout = option(args, "timeout", 30.0)
    if timeout <= 0:
        raise CliError(f"--timeout must be more than 0 seconds, not {timeout:g}", EXIT_USAGE)
    try:
        return Client(address(args), timeout=timeout, token=token, tls_ca=option(args, "tls_ca"),
                      tls_cert=option(args, "tls_cert"), tls_key=option(args, "tls_key"))
    except InvalidArgumentError as e:
        raise CliError("; ".join(f"--{k.replace('_', '-')}: {v}" for k, v in e.violations.items()), EXIT_USAGE) from None


def print_json(data: Any, out: TextIO, *, lines: bool = False) -> None:
    """One JSON document (indented), or one JSON line (compact, flushed) of a stream."""
    if lines:
        print(json.dumps(data, ensure_ascii=False, separators=(",", ":")), file=out, flush=True)
    else:
        print(json.dumps(data, ensure_ascii=False, indent=2), file=out)


def print_error_json(error: dict[str, Any]) -> None:
    print(json.dumps({"error": error}, ensure_ascii=False), file=sys.stderr, flush=True)


"""The client's commands (servers, prepare, status, logs, retry, cancel, preparations, health, version, completion)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TextIO

from serverprep.clients.cli import preparations, servers
from serverprep.clients.cli.common import EXIT_FAILED, EXIT_OK, connect, print_json, wants_json
from serverprep.clients.cli.interrupt import ctrl_c
from serverprep.clients.cli.preparations import add_plan_options
from serverprep.clients.client import Client

Handler = Callable[[Client, argparse.Namespace, TextIO], int]

__all__ = ["add_commands", "add_plan_options", "make", "bind", "versions"]


def make(sub: Any, name: str, text: str, examples: str, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """A command's parser: its one-line help, that line as description, and its examples as epilog."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=text, description=text[0].upper() + text[1:] + ".", epilog=examples, parents=parents,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def bind(parser: argparse.ArgumentParser, handler: Handler) -> None:
    """Run ``handler`` with a client connected as the options say, Ctrl-C watched (interrupt.py); the command writes JSON when asked."""

    def run(args: argparse.Namespace, out: TextIO) -> int:
        with ctrl_c.watching():
            with ctrl_c.closing(connect(args)) as client:
                code = handler(client, args, out)
            del client  # its channel goes while Ctrl-C is watched: a grpc finalizer is a place not to raise
        return code

    parser.set_defaults(run=run, json_output=True)


def health(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    state = client.health()
    if wants_json(args):
        print_json({"status": state, "address": client.address}, out)
    else:
        print(state, file=out)
    return EXIT_OK if state == "SERVING" else EXIT_FAILED


def versions() -> dict[str, str | None]:
    """This client's version, and the service's when its distribution is installed here too."""
    found: dict[str, str | None] = {}
    for key, dist in (("client", "serverprep-client"), ("service", "serverprep")):
        try:
            found[key] = version(dist)
        except PackageNotFoundError:
            found[key] = None
    return found


def version_text() -> str:
    v = versions()
    text = f"serverprep-client {v['client'] or 'unknown'}"
    if v["service"]:
        text += f"\nserverprep {v['service']} (the service, installed here)"
    return text


def run_version(args: argparse.Namespace, out: TextIO) -> int:
    if wants_json(args):
        print_json(versions(), out)
    else:
        print(version_text(), file=out)
    return EXIT_OK


def run_completion(args: argparse.Namespace, out: TextIO) -> int:
    from serverprep.clients.cli import completion

    script = completion.script(args.shell, args.root_parser)
    if wants_json(args):
        print_json({"shell": args.shell, "script": script}, out)
    else:
        out.write(script)
    return EXIT_OK


COMPLETION_EXAMPLES = """examples:
  source <(serverprep completion bash)                                  # this bash session
  serverprep completion bash > ~/.local/share/bash-completion/completions/serverprep
  serverprep completion zsh > "${fpath[1]}/_serverprep"                 # then: compinit
  serverprep completion fish > ~/.config/fish/completions/serverprep.fish

Server names are completed from the service (serverprep servers list --names)."""


def add_commands(sub: Any, client_options: argparse.ArgumentParser) -> None:
    """Add the client commands to the ``serverprep`` parser's subcommands."""
    parents = [client_options]
    servers.add_parsers(sub, parents, bind, make)
    preparations.add_parsers(sub, parents, bind, make)
    bind(make(sub, "health", "ask the service whether it is serving (exit 0 when it is)",
              "examples:\n  serverprep health\n  serverprep health --address 10.0.0.2:50051 -o json", parents), health)
    p = make(sub, "version", "show the versions of this client and of the service installed here",
             "examples:\n  serverprep version\n  serverprep version -o json", parents)
    p.set_defaults(run=run_version, json_output=True)
    p = make(sub, "completion", "print the shell completion script for bash, zsh or fish", COMPLETION_EXAMPLES, parents)
    p.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell to complete for")
    p.set_defaults(run=run_completion, json_output=True)

"""``serverprep prepare``, ``status``, ``logs``, ``retry``, ``cancel`` and ``preparations``."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from serverprep.clients.cli import render
from serverprep.clients.cli.common import EXIT_OK, option, preparation_exit, print_json, server_argument, wants_json
from serverprep.clients.cli.follow import LogView, failure_tail, follow, step_names
from serverprep.clients.cli.terminal import Style, visible
from serverprep.clients.client import Client
from serverprep.clients.errors import ServerprepClientError
from serverprep.clients.types import Preparation


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "docker_source": args.docker_source,
        "step_timeout": option(args, "step_timeout", 0),
        "docker_version": args.docker_version or "",
        "channel": args.channel or "",
        "repository_url": args.repository_url or "",
        "http_proxy": args.http_proxy or "",
        "https_proxy": args.https_proxy or "",
        "no_proxy": args.no_proxy or "",
    }


def _started(prep: Preparation, args: argparse.Namespace, out: TextIO, text: str) -> None:
    """What prepare and retry say first: the preparation as JSON (a line when a stream follows), or one line."""
    if wants_json(args):
        if args.follow:
            print_json({"preparation": render.preparation_json(prep)}, out, lines=True)
        else:
            print_json(render.preparation_json(prep), out)
    else:
        print(text, file=out, flush=True)


def prepare(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.dry_run:
        render.print_plan(render.plan_dict(client.plan(args.name, **_options(args))), out, as_json=wants_json(args))
        return EXIT_OK
    prep = client.prepare(args.name, request_id=args.request_id or "", **_options(args))
    _started(prep, args, out, f"preparation {prep.id} of {visible(args.name)}: {render.prep_state(prep.state)}")
    return follow(client, args, args.name, prep, out) if args.follow else EXIT_OK


def retry(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    prep = client.retry(args.name, args.id or "")
    _started(prep, args, out, f"retrying preparation {prep.id} of {visible(args.name)} (attempt {prep.attempt})")
    return follow(client, args, args.name, prep, out, after_seq=prep.last_seq) if args.follow else EXIT_OK


def cancel(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    prep = client.cancel(args.name, args.id or "")
    if wants_json(args):
        print_json(render.preparation_json(prep), out)
    else:
        print(f"preparation {prep.id} of {visible(args.name)}: {render.prep_state(prep.state)}", file=out)
    return EXIT_OK


def status(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    prep = client.status(args.name, args.id or "")
    if wants_json(args):
        print_json(render.preparation_json(prep), out)
    else:
        style = Style.for_stream(out, option(args, "color", "auto"))
        try:
            tail = failure_tail(client, prep)
        except ServerprepClientError:
            tail = []  # the status is what was asked for; the log is a courtesy
        render.print_status(prep, out, style, tail)
    return preparation_exit(prep.state) if args.exit_code else EXIT_OK


def logs(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    prep = client.status(args.name, args.id or "")
    if args.follow:
        return follow(client, args, args.name, prep, out, after_seq=args.after_seq, fold_facts=False)
    view = LogView(out, Style.for_stream(out, option(args, "color", "auto")), step_names(prep), fold_facts=False,
                   as_json=wants_json(args))
    for entry in client.stream_logs(args.name, prep.id, after_seq=args.after_seq, follow=False):
        view(entry)
    return EXIT_OK


def preparations(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    preps = client.list_preparations(args.name)
    if wants_json(args):
        print_json([render.preparation_json(p) for p in preps], out)
        return EXIT_OK
    for p in preps:
        failure = f"  {p.failure.reason} at {p.failure.step}" if p.HasField("failure") else ""
        print(visible(f"{p.id}  {render.prep_state(p.state):<10} attempt {p.attempt}  {render.iso_time(p.create_time) or ''}{failure}"),
              file=out)
    return EXIT_OK


def add_plan_options(p: argparse.ArgumentParser) -> None:
    """The options of a preparation, shared by prepare, prepare --dry-run and the offline plan."""
    p.add_argument("--docker-source", choices=("official", "distro"), default="official",
                   help="Docker's repository (official, the default) or the OS's own packages (distro)")
    p.add_argument("--docker-version", metavar="VERSION", help="version prefix to install, e.g. 27.3.1 (official source)")
    p.add_argument("--channel", choices=("stable", "test"), help="Docker repository channel (default stable)")
    p.add_argument("--repository-url", metavar="URL", help="Docker repository base or mirror (default https://download.docker.com)")
    p.add_argument("--http-proxy", metavar="URL", help="proxy for the package manager and downloads, e.g. http://proxy:3128")
    p.add_argument("--https-proxy", metavar="URL", help="proxy for HTTPS downloads")
    p.add_argument("--no-proxy", metavar="HOSTS", help="hosts, domains or networks to reach without a proxy, comma-separated")


PREPARE_EXAMPLES = """examples:
  serverprep prepare web1 --docker-source distro --follow
  serverprep prepare web1 --dry-run                 # the plan from the server's real facts; changes nothing
  serverprep prepare web1 --request-id deploy-42    # the same id again returns the same preparation
  serverprep prepare web1 --follow -o json | jq -c 'select(.entry.stream == "STDERR")'"""

STATUS_EXAMPLES = """examples:
  serverprep status web1
  serverprep status web1 -o json | jq -r .state
  while serverprep status web1 --exit-code >/dev/null; [ $? -eq 5 ]; do sleep 5; done   # wait for the end"""

LOGS_EXAMPLES = """examples:
  serverprep logs web1                       # the whole log of the latest preparation
  serverprep logs web1 --follow              # and live until it ends (exit status as prepare --follow)
  serverprep logs web1 --after-seq 120       # only what came after entry 120
  serverprep logs web1 -o json | jq -r 'select(.entry.stream == "STDERR") | .entry.text'"""


def add_parsers(sub: Any, parents: list[argparse.ArgumentParser], bind: Any, make: Any) -> None:
    p = make(sub, "prepare", "prepare a server: detect the OS, install and start Docker, give the user access", PREPARE_EXAMPLES,
             parents)
    server_argument(p)
    add_plan_options(p)
    p.add_argument("--follow", "-f", action="store_true",
                   help="show the steps live, then the status; the exit status tells how it ended")
    p.add_argument("-v", "--verbose", action="store_true", help="with --follow: every log line, the raw facts of detect_os too")
    p.add_argument("--dry-run", action="store_true", help="show the plan from the server's real facts; change nothing")
    p.add_argument("--json", action="store_true", help="the same as -o json (kept for older scripts)")
    p.add_argument("--request-id", metavar="ID", help="idempotency key: the same key returns the same preparation")
    p.add_argument("--step-timeout", metavar="SECONDS", type=int, default=0, help="time limit of each step (default 900)")
    bind(p, prepare)

    p = make(sub, "status", "show a preparation: its steps, OS and failure", STATUS_EXAMPLES, parents)
    server_argument(p)
    p.add_argument("--id", help="a preparation id (default: the latest)")
    p.add_argument("--exit-code", action="store_true",
                   help="exit 0 only if it SUCCEEDED: 3 FAILED, 4 CANCELLED, 5 still PENDING or RUNNING")
    p.add_argument("--json", action="store_true", help="the same as -o json (kept for older scripts)")
    bind(p, status)

    p = make(sub, "logs", "print a preparation's log", LOGS_EXAMPLES, parents)
    server_argument(p)
    p.add_argument("--id", help="a preparation id (default: the latest)")
    p.add_argument("--follow", "-f", action="store_true", help="keep following until the preparation ends, then show its status")
    p.add_argument("--after-seq", metavar="N", type=int, default=0, help="only entries after sequence number N")
    bind(p, logs)

    p = make(sub, "retry", "resume a failed or cancelled preparation at the step that did not finish",
             "examples:\n  serverprep retry web1 --follow\n  serverprep retry web1 --id 3f2c... -o json", parents)
    server_argument(p)
    p.add_argument("--id", help="a preparation id (default: the latest)")
    p.add_argument("--follow", "-f", action="store_true", help="show the steps live, then the status")
    p.add_argument("-v", "--verbose", action="store_true", help="with --follow: every log line")
    bind(p, retry)

    p = make(sub, "cancel", "stop a pending or running preparation (its remote command is killed)",
             "examples:\n  serverprep cancel web1\n  serverprep cancel web1 --id 3f2c...", parents)
    server_argument(p)
    p.add_argument("--id", help="a preparation id (default: the latest)")
    bind(p, cancel)

    p = make(sub, "preparations", "list a server's preparations, newest first",
             "examples:\n  serverprep preparations web1\n  serverprep preparations web1 -o json | jq -r '.[0].id'", parents)
    server_argument(p)
    bind(p, preparations)

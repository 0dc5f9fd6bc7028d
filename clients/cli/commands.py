"""The commands that talk to the service: servers, prepare, status, logs, retry, cancel, health."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from serverprep.clients.cli import render
from serverprep.clients.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, connect
from serverprep.clients.client import Client
from serverprep.v1 import preparations_pb2 as pb

Handler = Callable[[Client, argparse.Namespace, TextIO], int]


def follow(client: Client, server: str, prep_id: str, out: TextIO, after_seq: int = 0) -> int:
    printer = render.LogPrinter(out)
    for entry in client.stream_logs(server, prep_id, after_seq=after_seq):
        printer(entry)
    final = client.status(server, prep_id)
    render.print_status(final, out)
    return EXIT_OK if final.state == pb.PREPARATION_STATE_SUCCEEDED else EXIT_FAILED


def _read_secret_lines(args: argparse.Namespace) -> tuple[str, str]:
    wanted = [name for name in ("password", "sudo_password") if getattr(args, f"{name}_stdin")]
    if not wanted:
        return "", ""
    if sys.stdin.isatty():
        import getpass

        values = {n: getpass.getpass(f"{n.replace('_', ' ')}: ") for n in wanted}
    else:
        lines = sys.stdin.read().splitlines()
        if len(lines) < len(wanted):
            raise CliError(f"expected {len(wanted)} line(s) on standard input: {', '.join(wanted)}", EXIT_USAGE)
        values = dict(zip(wanted, lines, strict=False))
    return values.get("password", ""), values.get("sudo_password", "")


def _key_file(path: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except OSError as e:
        raise CliError(f"cannot read key file {path}: {e.strerror}", EXIT_USAGE) from None


def _server_line(s: Any) -> str:
    key = s.host_key_fingerprint or ("trust on first connect" if s.accept_new_host_key else "-")
    return f"{s.name:<24} {s.user}@{s.host}:{s.port:<6} {key}"


def servers_add(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    key = _key_file(args.key_file) if args.key_file else ""
    password, sudo_password = _read_secret_lines(args)
    server = client.create_server(
        args.name, host=args.host, port=args.port, user=args.user, private_key=key, password=password,
        sudo_password=sudo_password, host_key=args.host_key or "", accept_new_host_key=args.accept_new_host_key,
    )
    print(f"added {server.name}: {server.user}@{server.host}:{server.port}", file=out)
    return EXIT_OK


def servers_update(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    changes: dict[str, Any] = {name: getattr(args, name) for name in ("host", "port", "user", "host_key") if getattr(args, name) is not None}
    if args.accept_new_host_key:
        changes["accept_new_host_key"] = True
    if args.key_file:
        changes["private_key"] = _key_file(args.key_file)
    password, sudo_password = _read_secret_lines(args)
    if args.password_stdin:
        changes["password"] = password
    if args.sudo_password_stdin:
        changes["sudo_password"] = sudo_password
    if not changes:
        raise CliError("nothing to change: give --host, --port, --user, --key-file, --password-stdin, "
                       "--sudo-password-stdin, --host-key or --accept-new-host-key", EXIT_USAGE)
    server = client.update_server(args.name, **changes)
    print(f"updated {server.name}: {_server_line(server)}", file=out)
    return EXIT_OK


def servers_list(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    for s in client.list_servers():
        print(_server_line(s), file=out)
    return EXIT_OK


def servers_show(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    print(_server_line(client.get_server(args.name)), file=out)
    return EXIT_OK


def servers_rm(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    client.delete_server(args.name)
    print(f"removed {args.name}", file=out)
    return EXIT_OK


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "docker_source": args.docker_source,
        "step_timeout": getattr(args, "step_timeout", 0),
        "docker_version": args.docker_version or "",
        "channel": args.channel or "",
        "repository_url": args.repository_url or "",
        "http_proxy": args.http_proxy or "",
        "https_proxy": args.https_proxy or "",
        "no_proxy": args.no_proxy or "",
    }


def prepare(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.dry_run:
        render.print_plan(render.plan_dict(client.plan(args.name, **_options(args))), out, as_json=args.json)
        return EXIT_OK
    prep = client.prepare(args.name, request_id=args.request_id or "", **_options(args))
    print(f"preparation {prep.id} of {args.name}: {render.prep_state(prep.state)}", file=out, flush=True)
    return follow(client, args.name, prep.id, out) if args.follow else EXIT_OK


def retry(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    prep = client.retry(args.name, args.id or "")
    print(f"retrying preparation {prep.id} (attempt {prep.attempt})", file=out, flush=True)
    return follow(client, args.name, prep.id, out, after_seq=prep.last_seq) if args.follow else EXIT_OK


def cancel(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    prep = client.cancel(args.name, args.id or "")
    print(f"preparation {prep.id}: {render.prep_state(prep.state)}", file=out)
    return EXIT_OK


def status(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    prep = client.status(args.name, args.id or "")
    if args.json:
        print(json.dumps(render.preparation_json(prep), indent=2), file=out)
    else:
        render.print_status(prep, out)
    return EXIT_OK


def logs(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    printer = render.LogPrinter(out)
    for entry in client.stream_logs(args.name, args.id or "", after_seq=args.after_seq, follow=args.follow):
        printer(entry)
    return EXIT_OK


def preparations(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    for p in client.list_preparations(args.name):
        print(f"{p.id}  {render.prep_state(p.state):<10} attempt {p.attempt}  {render.iso_time(p.create_time) or ''}", file=out)
    return EXIT_OK


def health(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    state = client.health()
    print(state, file=out)
    return EXIT_OK if state == "SERVING" else EXIT_FAILED


def add_plan_options(p: argparse.ArgumentParser) -> None:
    """The options of a preparation, shared by prepare, prepare --dry-run and the offline plan."""
    p.add_argument("--docker-source", choices=("official", "distro"), default="official",
                   help="Docker's repository (default) or the OS's own packages")
    p.add_argument("--docker-version", help="version prefix to install, e.g. 27.3.1 (official source)")
    p.add_argument("--channel", choices=("stable", "test"), help="Docker repository channel (default stable)")
    p.add_argument("--repository-url", help="Docker repository base or mirror (default https://download.docker.com)")
    p.add_argument("--http-proxy", help="proxy for the package manager and downloads, e.g. http://proxy:3128")
    p.add_argument("--https-proxy", help="proxy for HTTPS downloads")
    p.add_argument("--no-proxy", help="hosts, domains or networks to reach without a proxy, comma-separated")


def _bind(parser: argparse.ArgumentParser, handler: Handler) -> None:
    def run(args: argparse.Namespace, out: TextIO) -> int:
        with connect(args) as client:
            return handler(client, args, out)

    parser.set_defaults(run=run)


def add_commands(sub: Any, client_options: argparse.ArgumentParser) -> None:
    """Add the client commands to the ``serverprep`` parser's subcommands."""
    parents = [client_options]
    servers = sub.add_parser("servers", help="register and inspect servers", parents=parents)
    ssub = servers.add_subparsers(dest="servers_command", required=True, metavar="ACTION")
    add = ssub.add_parser("add", help="register a server", parents=parents)
    add.add_argument("name")
    add.add_argument("--host", required=True)
    add.add_argument("--port", type=int, default=22)
    add.add_argument("--user", required=True)
    add.add_argument("--key-file", help="private key file to log in with")
    add.add_argument("--password-stdin", action="store_true", help="read the SSH password from standard input")
    add.add_argument("--sudo-password-stdin", action="store_true", help="read the sudo password from standard input (after the SSH password)")
    trust = add.add_mutually_exclusive_group(required=True)
    trust.add_argument("--host-key", help='the server\'s host key, "TYPE BASE64" (see ssh-keyscan)')
    trust.add_argument("--accept-new-host-key", action="store_true", help="trust the key seen on the first connection, then pin it")
    _bind(add, servers_add)
    update = ssub.add_parser("update", help="change a server's address, login or trusted host key", parents=parents)
    update.add_argument("name")
    update.add_argument("--host")
    update.add_argument("--port", type=int)
    update.add_argument("--user")
    update.add_argument("--key-file")
    update.add_argument("--password-stdin", action="store_true")
    update.add_argument("--sudo-password-stdin", action="store_true")
    trust = update.add_mutually_exclusive_group()
    trust.add_argument("--host-key", help='pin this key, "TYPE BASE64"')
    trust.add_argument("--accept-new-host-key", action="store_true", help="forget the pinned key; pin the next one seen")
    _bind(update, servers_update)
    _bind(ssub.add_parser("list", help="list servers", parents=parents), servers_list)
    for name, text, handler in (("show", "show a server", servers_show), ("rm", "remove a server and its history", servers_rm)):
        p = ssub.add_parser(name, help=text, parents=parents)
        p.add_argument("name")
        _bind(p, handler)

    p = sub.add_parser("prepare", help="prepare a server", parents=parents)
    p.add_argument("name")
    add_plan_options(p)
    p.add_argument("--follow", "-f", action="store_true", help="show steps and logs live; exit 0 only on success")
    p.add_argument("--dry-run", action="store_true", help="show the plan from the server's real facts; change nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON")
    p.add_argument("--request-id", help="idempotency key: the same key returns the same preparation")
    p.add_argument("--step-timeout", type=int, default=0, help="seconds per step (default 900)")
    _bind(p, prepare)

    for name, text, handler in (("status", "show a preparation", status), ("logs", "print a preparation's logs", logs),
                                ("retry", "resume a failed preparation", retry), ("cancel", "stop a running preparation", cancel)):
        p = sub.add_parser(name, help=text, parents=parents)
        p.add_argument("name")
        p.add_argument("--id", help="preparation id (default: the latest)")
        if name == "status":
            p.add_argument("--json", action="store_true")
        if name == "logs":
            p.add_argument("--follow", "-f", action="store_true", help="keep following until the preparation ends")
            p.add_argument("--after-seq", type=int, default=0, help="only entries after this sequence number")
        if name == "retry":
            p.add_argument("--follow", "-f", action="store_true")
        _bind(p, handler)
    p = sub.add_parser("preparations", help="list a server's preparations", parents=parents)
    p.add_argument("name")
    _bind(p, preparations)
    _bind(sub.add_parser("health", help="exit 0 when the service is serving", parents=parents), health)

"""The ``serverprep`` command: run the service, or talk to it."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from serverprep.clients.client import DEFAULT_ADDRESS, Client, ServerprepClientError
from serverprep.v1 import preparations_pb2 as pb

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


def _short(enum_name: str, prefix: str) -> str:
    return enum_name[len(prefix) :] if enum_name.startswith(prefix) else enum_name


def prep_state(value: int) -> str:
    return _short(pb.PreparationState.Name(value), "PREPARATION_STATE_")


def step_state(value: int) -> str:
    return _short(pb.StepState.Name(value), "STEP_STATE_")


def _time(ts: Any) -> str | None:
    return ts.ToDatetime().isoformat() + "Z" if ts.seconds or ts.nanos else None


def preparation_json(p: pb.Preparation) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": p.id,
        "server": p.server,
        "state": prep_state(p.state),
        "attempt": p.attempt,
        "docker_source": _short(pb.DockerSource.Name(p.options.docker_source), "DOCKER_SOURCE_").lower(),
        "created": _time(p.create_time),
        "started": _time(p.start_time),
        "finished": _time(p.end_time),
        "last_seq": p.last_seq,
        "steps": [
            {
                "name": s.name,
                "state": step_state(s.state),
                "exit_code": s.exit_code if s.HasField("exit_code") else None,
                "message": s.message,
                "attempts": s.attempts,
                "started": _time(s.start_time),
                "finished": _time(s.end_time),
            }
            for s in p.steps
        ],
    }
    if p.HasField("operating_system"):
        os_ = p.operating_system
        data["operating_system"] = {
            "id": os_.id, "version_id": os_.version_id, "pretty_name": os_.pretty_name,
            "codename": os_.codename, "architecture": os_.architecture, "driver": os_.driver,
        }
    if p.HasField("failure"):
        data["failure"] = {"reason": p.failure.reason, "message": p.failure.message, "step": p.failure.step}
    return data


def _duration(step: pb.Step) -> str:
    if not (step.start_time.seconds and step.end_time.seconds):
        return ""
    seconds = (step.end_time.ToNanoseconds() - step.start_time.ToNanoseconds()) / 1e9
    return f"{seconds:.1f}s"


def print_status(p: pb.Preparation, out: TextIO) -> None:
    print(f"preparation {p.id} of {p.server}: {prep_state(p.state)} (attempt {p.attempt})", file=out)
    if p.HasField("operating_system"):
        o = p.operating_system
        print(f"os: {o.pretty_name} ({o.codename}, {o.architecture}), driver {o.driver}", file=out)
    for s in p.steps:
        extra = [x for x in (_duration(s), f"exit {s.exit_code}" if s.HasField("exit_code") and s.exit_code else "", s.message) if x]
        print(f"  {step_state(s.state):<10} {s.name:<21} {' · '.join(extra)}", file=out)
    if p.HasField("failure"):
        where = f" at {p.failure.step}" if p.failure.step else ""
        print(f"failure{where}: {p.failure.reason}: {p.failure.message}", file=out)


class LogPrinter:
    """Renders log entries as lines; colours on a terminal."""

    MARKS = {"RUNNING": "▶", "SUCCEEDED": "✔", "SKIPPED": "⏭", "FAILED": "✘", "CANCELLED": "✘"}

    def __init__(self, out: TextIO):
        self.out = out
        color = out.isatty() and not os.environ.get("NO_COLOR")
        self.c = {
            "dim": "\033[2m" if color else "", "red": "\033[31m" if color else "",
            "green": "\033[32m" if color else "", "bold": "\033[1m" if color else "", "end": "\033[0m" if color else "",
        }

    def __call__(self, e: pb.LogEntry) -> None:
        c = self.c
        stamp = time.strftime("%H:%M:%S", time.localtime(e.time.seconds))
        step = f"{e.step or 'preparation':<20}"
        if e.stream == pb.LOG_STREAM_EVENT:
            state = step_state(e.step_state) if e.step_state else prep_state(e.preparation_state) if e.preparation_state else ""
            mark = self.MARKS.get(state, "·")
            colour = c["green"] if state in ("SUCCEEDED", "SKIPPED") else c["red"] if state in ("FAILED", "CANCELLED") else c["bold"]
            line = f"{colour}{mark} {e.text}{c['end']}" if state else f"{c['bold']}{e.text}{c['end']}"
        elif e.stream == pb.LOG_STREAM_STDERR:
            line = f"{c['red']}! {e.text}{c['end']}"
        else:
            line = f"| {e.text}"
        print(f"{c['dim']}{stamp} {e.seq:>5}{c['end']} {step} {line}", file=self.out, flush=True)


def follow(client: Client, server: str, prep_id: str, out: TextIO, after_seq: int = 0) -> int:
    printer = LogPrinter(out)
    for entry in client.stream_logs(server, prep_id, after_seq=after_seq):
        printer(entry)
    final = client.status(server, prep_id)
    print_status(final, out)
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
        values = dict(zip(wanted, lines))
    return values.get("password", ""), values.get("sudo_password", "")


def cmd_servers_add(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    key = ""
    if args.key_file:
        try:
            key = Path(args.key_file).expanduser().read_text()
        except OSError as e:
            raise CliError(f"cannot read key file {args.key_file}: {e.strerror}", EXIT_USAGE) from None
    password, sudo_password = _read_secret_lines(args)
    server = client.create_server(
        args.name, host=args.host, port=args.port, user=args.user, private_key=key, password=password,
        sudo_password=sudo_password, host_key=args.host_key or "", accept_new_host_key=args.accept_new_host_key,
    )
    print(f"added {server.name}: {server.user}@{server.host}:{server.port}", file=out)
    return EXIT_OK


def cmd_servers_update(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    changes: dict[str, Any] = {}
    for name in ("host", "port", "user", "host_key"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.accept_new_host_key:
        changes["accept_new_host_key"] = True
    if args.key_file:
        try:
            changes["private_key"] = Path(args.key_file).expanduser().read_text()
        except OSError as e:
            raise CliError(f"cannot read key file {args.key_file}: {e.strerror}", EXIT_USAGE) from None
    password, sudo_password = _read_secret_lines(args)
    if args.password_stdin:
        changes["password"] = password
    if args.sudo_password_stdin:
        changes["sudo_password"] = sudo_password
    if not changes:
        raise CliError("nothing to change: give --host, --port, --user, --key-file, --password-stdin, --sudo-password-stdin, --host-key or --accept-new-host-key", EXIT_USAGE)
    server = client.update_server(args.name, **changes)
    print(f"updated {server.name}: {_server_line(server)}", file=out)
    return EXIT_OK


def _server_line(s: Any) -> str:
    key = s.host_key_fingerprint or ("trust on first connect" if s.accept_new_host_key else "-")
    return f"{s.name:<24} {s.user}@{s.host}:{s.port:<6} {key}"


def run_client_command(args: argparse.Namespace, out: TextIO) -> int:
    try:
        client = Client(args.address, token=_token(args), tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key)
    except OSError as e:
        raise CliError(f"cannot read TLS file: {e.filename}: {e.strerror}", EXIT_USAGE) from None
    with client:
        if args.command == "servers":
            if args.servers_command == "add":
                return cmd_servers_add(client, args, out)
            if args.servers_command == "update":
                return cmd_servers_update(client, args, out)
            if args.servers_command == "list":
                for s in client.list_servers():
                    print(_server_line(s), file=out)
                return EXIT_OK
            if args.servers_command == "show":
                print(_server_line(client.get_server(args.name)), file=out)
                return EXIT_OK
            if args.servers_command == "rm":
                client.delete_server(args.name)
                print(f"removed {args.name}", file=out)
                return EXIT_OK
        if args.command == "prepare":
            if args.dry_run:
                plan = plan_response_dict(client.plan(args.name, **_options(args)))
                print_plan(plan, out, as_json=args.json)
                return EXIT_OK
            prep = client.prepare(args.name, request_id=args.request_id or "", **_options(args))
            print(f"preparation {prep.id} of {args.name}: {prep_state(prep.state)}", file=out, flush=True)
            return follow(client, args.name, prep.id, out) if args.follow else EXIT_OK
        if args.command == "retry":
            prep = client.retry(args.name, args.id or "")
            print(f"retrying preparation {prep.id} (attempt {prep.attempt})", file=out, flush=True)
            return follow(client, args.name, prep.id, out, after_seq=prep.last_seq) if args.follow else EXIT_OK
        if args.command == "cancel":
            prep = client.cancel(args.name, args.id or "")
            print(f"preparation {prep.id}: {prep_state(prep.state)}", file=out)
            return EXIT_OK
        if args.command == "status":
            prep = client.status(args.name, args.id or "")
            if args.json:
                print(json.dumps(preparation_json(prep), indent=2), file=out)
            else:
                print_status(prep, out)
            return EXIT_OK
        if args.command == "logs":
            printer = LogPrinter(out)
            for entry in client.stream_logs(args.name, args.id or "", after_seq=args.after_seq, follow=args.follow):
                printer(entry)
            return EXIT_OK
        if args.command == "health":
            status = client.health()
            print(status, file=out)
            return EXIT_OK if status == "SERVING" else EXIT_FAILED
        if args.command == "preparations":
            for p in client.list_preparations(args.name):
                created = _time(p.create_time) or ""
                print(f"{p.id}  {prep_state(p.state):<10} attempt {p.attempt}  {created}", file=out)
            return EXIT_OK
    raise CliError(f"unknown command {args.command}", EXIT_USAGE)


def _token(args: argparse.Namespace) -> str | None:
    path = getattr(args, "token_file", None)
    if not path:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as e:
        raise CliError(f"cannot read token file {path}: {e.strerror}", EXIT_USAGE) from None


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "docker_source": args.docker_source,
        "step_timeout": args.step_timeout,
        "docker_version": args.docker_version or "",
        "channel": args.channel or "",
        "repository_url": args.repository_url or "",
        "http_proxy": args.http_proxy or "",
        "https_proxy": args.https_proxy or "",
        "no_proxy": args.no_proxy or "",
    }


def _add_plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--docker-source", choices=("official", "distro"), default="official",
                   help="Docker's repository (default) or the OS's own packages")
    p.add_argument("--docker-version", help="version prefix to install, e.g. 27.3.1 (official source)")
    p.add_argument("--channel", choices=("stable", "test"), help="Docker repository channel (default stable)")
    p.add_argument("--repository-url", help="Docker repository base or mirror (default https://download.docker.com)")
    p.add_argument("--http-proxy")
    p.add_argument("--https-proxy")
    p.add_argument("--no-proxy")


def plan_response_dict(r: pb.PlanResponse) -> dict[str, Any]:
    o = r.operating_system
    return {
        "driver": r.driver,
        "operating_system": {"id": o.id, "version_id": o.version_id, "pretty_name": o.pretty_name,
                             "codename": o.codename, "architecture": o.architecture},
        "repository": {"url": r.repository.url, "suite": r.repository.suite, "component": r.repository.component,
                       "key_url": r.repository.key_url} if r.HasField("repository") else None,
        "steps": [{"name": s.name, "commands": list(s.commands), "checks": list(s.checks), "as_user": s.as_user,
                   "skip_reason": s.skip_reason, "summaries": list(s.summaries), "check_summary": s.check_summary}
                  for s in r.steps],
    }


def print_plan(plan: dict[str, Any], out: TextIO, *, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(plan, indent=2), file=out)
        return
    o = plan["operating_system"]
    print(f"driver:     {plan['driver']}", file=out)
    print(f"os:         {o['pretty_name']} [{o['codename'] or '-'}, {o['architecture']}]", file=out)
    repo = plan["repository"]
    repo_text = f"{repo['url']} {repo['suite']} {repo['component']}".strip() if repo else "the OS's own repositories"
    print(f"repository: {repo_text}", file=out)
    for step in plan["steps"]:
        print(f"\n{step['name']}" + (" (as the user, new SSH session)" if step["as_user"] else ""), file=out)
        if step["skip_reason"]:
            print(f"  skipped: {step['skip_reason']}", file=out)
            continue
        if step["checks"]:
            print(f"  skip if: {step['check_summary'] or '; '.join(step['checks'])}", file=out)
        for command in step["summaries"]:
            print(f"  $ {command}", file=out)


def offline_facts(os_release_text: str, arch: str, user: str, has: Sequence[str]) -> Any:
    """Facts for a plan made without a server: what a typical install of that OS has."""
    from serverprep.drivers import Facts, OsRelease

    osr = OsRelease.from_text(os_release_text)
    family = set(osr.family)
    commands = {"systemctl", "sudo", "curl", *has}
    dnf_version = ""
    major = osr.version_major or 0
    if family & {"debian", "ubuntu"}:
        commands |= {"apt-get", "dpkg"}
    elif family & {"fedora", "rhel", "centos", "amzn"}:
        yum_only = (osr.id == "amzn" and major < 2022) or (osr.id != "fedora" and osr.id != "amzn" and 0 < major <= 7)
        if yum_only:
            commands.add("yum")
        elif osr.id == "fedora" and major >= 41:
            commands |= {"dnf", "dnf5"}
            dnf_version = "dnf5 version 5.2.0"
        else:
            commands.add("dnf")
            dnf_version = "4.20.0"
    return Facts(
        os_release=osr,
        machine=arch,
        dpkg_architecture=arch if "dpkg" in commands else "",
        user=user,
        uid=0 if user == "root" else 1000,
        commands=frozenset(commands),
        dnf_version=dnf_version,
    )


def run_plan(args: argparse.Namespace, out: TextIO) -> int:
    from serverprep.drivers import DEFAULT_REPOSITORY, DockerSource, PlanOptions
    from serverprep.service.errors import ServerprepError
    from serverprep.service.plugins import DriverRegistry

    try:
        text = Path(args.os_release).read_text(errors="replace")
    except OSError as e:
        raise CliError(f"cannot read {args.os_release}: {e.strerror}", EXIT_USAGE) from None
    options = PlanOptions(
        docker_source=DockerSource(args.docker_source), user=args.user,
        repository_base=(args.repository_url or DEFAULT_REPOSITORY), docker_version=args.docker_version or "",
        channel=args.channel or "stable", http_proxy=args.http_proxy or "", https_proxy=args.https_proxy or "",
        no_proxy=args.no_proxy or "",
    )
    try:
        plan = DriverRegistry.default().plan(offline_facts(text, args.arch, args.user, args.has), options)
    except ServerprepError as e:
        if args.json:
            print(json.dumps({"error": {"reason": e.reason, "message": e.message}}, indent=2), file=out)
            return EXIT_FAILED
        raise CliError(f"{e.reason}: {e.message}") from None
    print_plan(plan.to_dict(), out, as_json=args.json)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serverprep", description="Prepare Linux servers over SSH to run containers.")
    parser.add_argument(
        "--address", default=os.environ.get("SERVERPREP_ADDRESS", DEFAULT_ADDRESS),
        help="service address (default: $SERVERPREP_ADDRESS or %(default)s)",
    )
    parser.add_argument("--token-file", help="file with the bearer token (default: $SERVERPREP_TOKEN)")
    parser.add_argument("--tls-ca", help="CA certificate (PEM) to verify the service with (default: $SERVERPREP_TLS_CA)")
    parser.add_argument("--tls-cert", help="client certificate for mutual TLS (default: $SERVERPREP_TLS_CERT)")
    parser.add_argument("--tls-key", help="client key for mutual TLS (default: $SERVERPREP_TLS_KEY)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gRPC service")
    serve.add_argument("--listen", default=os.environ.get("SERVERPREP_LISTEN", "127.0.0.1:50051"), help="host:port (default %(default)s)")
    serve.add_argument("--database", default="", help="peewee database URL (default: $SERVERPREP_DATABASE_URL or SQLite in the data directory)")
    serve.add_argument("--data-dir", default=None, help="data directory (default: $SERVERPREP_DATA_DIR or ~/.local/share/serverprep)")
    serve.add_argument("--max-concurrent", type=int, default=16, help="preparations run at once; more wait PENDING (default %(default)s)")
    serve.add_argument("--log-level", default="INFO")
    serve.add_argument("--tls-cert", dest="serve_tls_cert", help="server certificate (PEM); enables TLS")
    serve.add_argument("--tls-key", dest="serve_tls_key", help="server private key (PEM)")
    serve.add_argument("--tls-client-ca", help="require client certificates signed by this CA (mutual TLS)")
    serve.add_argument("--token-file", dest="serve_token_file", help="require this bearer token on every call but health (default: $SERVERPREP_TOKEN)")
    serve.add_argument("--insecure", action="store_true", default=os.environ.get("SERVERPREP_INSECURE") == "1",
                       help="allow a non-loopback --listen without TLS or token")
    serve.add_argument("--replica", default=os.environ.get("SERVERPREP_REPLICA") or socket.gethostname(),
                       help="this replica's name, unique among services sharing a database (default: the host name)")
    serve.add_argument("--stale-after", type=float, default=30.0,
                       help="seconds without a heartbeat before another replica takes over (default %(default)s)")
    serve.add_argument("--shutdown-grace", type=float, default=20.0, help="seconds running steps get to finish on SIGTERM (default %(default)s)")
    serve.add_argument("--stream-backlog", type=int, default=10_000, help="log entries a reader may fall behind (default %(default)s)")

    servers = sub.add_parser("servers", help="register and inspect servers")
    ssub = servers.add_subparsers(dest="servers_command", required=True, metavar="ACTION")
    add = ssub.add_parser("add", help="register a server")
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
    update = ssub.add_parser("update", help="change a server's address, login or trusted host key")
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
    ssub.add_parser("list", help="list servers")
    for name, text in (("show", "show a server"), ("rm", "remove a server and its history")):
        p = ssub.add_parser(name, help=text)
        p.add_argument("name")

    prepare = sub.add_parser("prepare", help="prepare a server")
    prepare.add_argument("name")
    _add_plan_options(prepare)
    prepare.add_argument("--follow", "-f", action="store_true", help="show steps and logs live; exit 0 only on success")
    prepare.add_argument("--dry-run", action="store_true", help="show the plan from the server's real facts; change nothing")
    prepare.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON")
    prepare.add_argument("--request-id", help="idempotency key: the same key returns the same preparation")
    prepare.add_argument("--step-timeout", type=int, default=0, help="seconds per step (default 900)")

    for name, text in (("status", "show a preparation"), ("logs", "print a preparation's logs"), ("retry", "resume a failed preparation"), ("cancel", "stop a running preparation")):
        p = sub.add_parser(name, help=text)
        p.add_argument("name")
        p.add_argument("--id", help="preparation id (default: the latest)")
        if name == "status":
            p.add_argument("--json", action="store_true")
        if name == "logs":
            p.add_argument("--follow", "-f", action="store_true", help="keep following until the preparation ends")
            p.add_argument("--after-seq", type=int, default=0, help="only entries after this sequence number")
        if name == "retry":
            p.add_argument("--follow", "-f", action="store_true")
    p = sub.add_parser("preparations", help="list a server's preparations")
    p.add_argument("name")
    sub.add_parser("drivers", help="list installed OS drivers")
    plan = sub.add_parser("plan", help="show what would run on an OS, offline (no service, no SSH)")
    plan.add_argument("--os-release", required=True, metavar="FILE", help="an /etc/os-release file")
    plan.add_argument("--arch", default="amd64", help="package architecture (default %(default)s)")
    plan.add_argument("--user", default="root", help="SSH user the plan is for (default %(default)s)")
    plan.add_argument("--has", action="append", default=[], metavar="PROGRAM", help="assume PROGRAM exists (e.g. dnf5)")
    plan.add_argument("--json", action="store_true")
    _add_plan_options(plan)
    sub.add_parser("health", help="exit 0 when the service is serving")
    return parser


def run_serve(args: argparse.Namespace) -> int:
    import asyncio

    from serverprep.service.auth import Exposed
    from serverprep.service.engine import EngineSettings
    from serverprep.service.errors import ServerprepError
    from serverprep.service.server import Settings, default_data_dir, serve

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # asyncssh logs every command line at INFO: too much for an operator, and not its business.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    if args.max_concurrent < 1:
        raise CliError("--max-concurrent must be at least 1", EXIT_USAGE)
    if bool(args.serve_tls_cert) != bool(args.serve_tls_key):
        raise CliError("--tls-cert and --tls-key go together", EXIT_USAGE)
    if args.tls_client_ca and not args.serve_tls_cert:
        raise CliError("--tls-client-ca needs --tls-cert and --tls-key", EXIT_USAGE)
    token = os.environ.get("SERVERPREP_TOKEN", "")
    if args.serve_token_file:
        try:
            token = Path(args.serve_token_file).read_text().strip()
        except OSError as e:
            raise CliError(f"cannot read token file {args.serve_token_file}: {e.strerror}", EXIT_USAGE) from None
        if not token:
            raise CliError(f"token file {args.serve_token_file} is empty", EXIT_USAGE)
    for path in (args.serve_tls_cert, args.serve_tls_key, args.tls_client_ca):
        if path and not Path(path).is_file():
            raise CliError(f"no such file: {path}", EXIT_USAGE)
    settings = Settings(
        listen=args.listen,
        database_url=args.database,
        data_dir=Path(args.data_dir) if args.data_dir else default_data_dir(),
        engine=EngineSettings(
            max_concurrent=args.max_concurrent,
            replica=args.replica,
            stale_after=args.stale_after,
            heartbeat_interval=min(5.0, args.stale_after / 4),
        ),
        tls_cert=Path(args.serve_tls_cert) if args.serve_tls_cert else None,
        tls_key=Path(args.serve_tls_key) if args.serve_tls_key else None,
        tls_client_ca=Path(args.tls_client_ca) if args.tls_client_ca else None,
        token=token,
        insecure=args.insecure,
        stream_backlog=args.stream_backlog,
        shutdown_grace=args.shutdown_grace,
    )
    try:
        asyncio.run(serve(settings))
    except Exposed as e:
        raise CliError(str(e), EXIT_USAGE) from None
    except (ServerprepError, OSError, RuntimeError) as e:
        raise CliError(f"cannot run the service: {e}") from None
    return EXIT_OK


def run_drivers(out: TextIO) -> int:
    from serverprep.service.errors import ServerprepError
    from serverprep.service.plugins import DriverRegistry

    try:
        registry = DriverRegistry.default()
    except ServerprepError as e:
        raise CliError(f"{e.reason}: {e.message}") from None
    for name, plugin, distros in registry.describe():
        print(f"{name} (plugin {plugin})", file=out)
        for distro in distros:
            print(f"  {distro}", file=out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return run_serve(args)
        if args.command == "drivers":
            return run_drivers(out)
        if args.command == "plan":
            return run_plan(args, out)
        return run_client_command(args, out)
    except ServerprepClientError as e:
        if e.reason == "SERVICE_UNAVAILABLE":
            print(f"serverprep: cannot reach the service at {args.address}: {e.message}", file=sys.stderr)
        else:
            print(f"serverprep: {e}", file=sys.stderr)
        return EXIT_USAGE if e.reason == "INVALID_ARGUMENT" else EXIT_FAILED
    except CliError as e:
        print(f"serverprep: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

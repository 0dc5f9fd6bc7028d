"""The commands the service adds to ``serverprep``: serve, and the offline plan and drivers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from serverprep.clients.cli import commands as client_commands
from serverprep.clients.cli.common import EXIT_OK, EXIT_USAGE, CliError
from serverprep.clients.cli.render import print_plan
from serverprep.drivers import DEFAULT_REPOSITORY, DockerSource, PlanOptions, is_known_architecture
from serverprep.drivers.offline import skeleton_facts
from serverprep.service import logconfig
from serverprep.service.errors import InsecureListen, InvalidSetting, ServerprepError
from serverprep.service.plugins import DriverRegistry
from serverprep.service.settings import Settings


def add_commands(sub: Any, client_options: argparse.ArgumentParser) -> None:
    """Entry point of the ``serverprep.cli`` group: serve, plan, drivers."""
    serve = sub.add_parser(
        "serve", help="run the gRPC service",
        description="Run the serverprep service. Every flag can also be set by its environment variable.",
        epilog="examples:\n  serverprep serve                                   # 127.0.0.1:50051, SQLite in ~/.local/share/serverprep\n"
               "  SERVERPREP_TOKEN=... serverprep serve --listen 0.0.0.0:50051 --metrics-listen 127.0.0.1:9464\n"
               "  serverprep serve --database postgresql://sp:pw@db/serverprep --replica $(hostname)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    Settings.add_arguments(serve)
    serve.set_defaults(run=run_serve)

    plan = sub.add_parser(
        "plan", help="show what would run on an OS, offline (no service, no SSH)",
        description="The plan the installed drivers make for a typical install of an OS, from its os-release file.",
        epilog="examples:\n  serverprep plan --os-release /etc/os-release\n"
               "  serverprep plan --os-release ./rocky9-os-release --arch aarch64 --docker-source official -o json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument("--os-release", required=True, metavar="FILE", help="an /etc/os-release file")
    plan.add_argument("--arch", default="amd64",
                      help="the server's architecture, as uname -m (x86_64, aarch64) or dpkg/rpm name it (default %(default)s)")
    plan.add_argument("--user", default="root", help="SSH user the plan is for (default %(default)s)")
    plan.add_argument("--has", action="append", default=[], metavar="PROGRAM", help="assume PROGRAM exists (e.g. dnf5)")
    plan.add_argument("--json", action="store_true", help="the plan as JSON")
    client_commands.add_plan_options(plan)
    plan.set_defaults(run=run_plan)

    drivers = sub.add_parser(
        "drivers", help="list installed OS drivers and the fact probes plugins declare",
        epilog="examples:\n  serverprep drivers\n  SERVERPREP_DISABLE_PLUGINS=zypper serverprep drivers -o json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    drivers.add_argument("--json", action="store_true", help="the drivers and probes as JSON")
    drivers.set_defaults(run=run_drivers)

    prune = sub.add_parser(
        "prune", help="remove old preparations by the retention policy (or show what it would remove)",
        description="Apply the retention policy to the database now: the service does it on its own every "
                    "--prune-interval; this shows first what would go (--dry-run). The latest and active "
                    "preparation of every server always stay.",
        epilog="examples:\n  serverprep prune --dry-run\n  serverprep prune --retain-last 10 --retain-days 30",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    Settings.add_arguments(prune, only=("database_url", "data_dir", "retain_last", "retain_days"))
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    prune.add_argument("--json", action="store_true", help="the list (or what was removed) as JSON")
    prune.set_defaults(run=run_prune)


def main_serve(argv: list[str]) -> int:
    """``python -m serverprep.service``: serve, with the same flags as ``serverprep serve``."""
    parser = argparse.ArgumentParser(prog="python -m serverprep.service", description="Run the serverprep service.")
    Settings.add_arguments(parser)
    try:
        return run_serve(parser.parse_args(argv), sys.stdout)
    except CliError as e:
        print(f"serverprep: {e}", file=sys.stderr)
        return e.code


#: PostgreSQL's drivers, which peewee imports whatever the database (psycopg2-binary maps its own
#: libpq, libssl and libcrypto: 5 MiB of a SQLite service's 75 MiB at rest).
POSTGRES_DRIVERS = ("psycopg2", "psycopg2cffi", "psycopg")


def run_serve(args: argparse.Namespace, out: TextIO) -> int:
    try:
        settings = Settings.from_args(args)
    except InvalidSetting as e:
        raise CliError(str(e), EXIT_USAGE) from None
    sqlite = not settings.database_url or settings.database_url.lower().startswith("sqlite")
    with _hidden(POSTGRES_DRIVERS if sqlite else ()):
        from serverprep.service.server import serve

    logconfig.configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except InsecureListen as e:
        raise CliError(str(e), EXIT_USAGE) from None
    except (ServerprepError, OSError, RuntimeError) as e:
        raise CliError(f"cannot run the service: {e}") from None
    return EXIT_OK


def run_plan(args: argparse.Namespace, out: TextIO) -> int:
    try:
        text = Path(args.os_release).read_text(errors="replace")
    except OSError as e:
        raise CliError(f"cannot read {args.os_release}: {e.strerror}", EXIT_USAGE) from None
    if not is_known_architecture(args.arch):
        raise CliError(f"--arch: {args.arch!r} is not an architecture serverprep knows; give what uname -m says "
                       "(x86_64, aarch64, armv7l, s390x, ppc64le ...) or a dpkg or rpm name (amd64, arm64, armhf ...)", EXIT_USAGE)
    options = PlanOptions(
        docker_source=DockerSource(args.docker_source), user=args.user,
        repository_base=args.repository_url or DEFAULT_REPOSITORY, docker_version=args.docker_version or "",
        channel=args.channel or "stable", http_proxy=args.http_proxy or "", https_proxy=args.https_proxy or "",
        no_proxy=args.no_proxy or "",
    )
    try:
        registry = DriverRegistry.default()
        facts = registry.typical_facts(skeleton_facts(text, args.arch, args.user, args.has))
        plan = registry.plan(facts, options)
    except ServerprepError as e:
        raise CliError(f"{e.reason}: {e.message}", reason=e.reason, metadata=e.metadata) from None
    print_plan(plan.to_dict(), out, as_json=args.json)
    return EXIT_OK


def run_drivers(args: argparse.Namespace, out: TextIO) -> int:
    try:
        registry = DriverRegistry.default()
    except ServerprepError as e:
        raise CliError(f"{e.reason}: {e.message}", reason=e.reason) from None
    if args.json:
        print(json.dumps({
            "drivers": [{"name": name, "plugin": plugin, "distros": list(distros)} for name, plugin, distros in registry.describe()],
            "probes": [{"name": p.name, "description": p.description, "command": p.command.display()} for p in registry.probes],
        }, indent=2), file=out)
        return EXIT_OK
    for name, plugin, distros in registry.describe():
        print(f"{name} (plugin {plugin})", file=out)
        for distro in distros:
            print(f"  {distro}", file=out)
    for probe in registry.probes:
        print(f"probe {probe.name}: {probe.description or probe.command.display()}", file=out)
    return EXIT_OK


def run_prune(args: argparse.Namespace, out: TextIO) -> int:
    from serverprep.service.retention import BATCH, policy, prune
    from serverprep.service.secretbox import SecretBox
    from serverprep.service.store import Store

    try:
        settings = Settings.from_args(args)
    except InvalidSetting as e:
        raise CliError(str(e), EXIT_USAGE) from None
    rule = policy(settings)
    if not rule.active:
        raise CliError("the policy keeps everything: give --retain-last or --retain-days (or their environment variables)", EXIT_USAGE)

    async def go() -> dict[str, Any]:
        store = Store(settings.url, SecretBox.load(settings.data_dir))
        try:
            await store.migrate()
            before = await store.size()
            if args.dry_run:
                listed = await store.removable(rule, 1_000_000)
                return {"dry_run": True, "size_bytes": before, "preparations": [r.__dict__ for r in listed]}
            removed, lines = await prune(store, rule)
            return {"dry_run": False, "removed": removed, "log_lines": lines, "size_before": before, "size_after": await store.size()}
        finally:
            store.close()

    try:
        result = asyncio.run(go())
    except ServerprepError as e:
        raise CliError(f"{e.reason}: {e.message}", reason=e.reason) from None
    keep = f"the last {rule.keep_last} per server" if rule.keep_last else "any number"
    age = f", none older than {rule.keep_days:g} days" if rule.keep_days else ""
    if args.json:
        print(json.dumps(result, indent=2), file=out)
    elif args.dry_run:
        listed = result["preparations"]
        print(f"policy: keep {keep}{age}; the latest and active preparation of each server stay", file=out)
        for r in listed:
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))
            print(f"  would remove {r['id']}  {r['server']:<24} {r['state']:<10} {created}  {r['log_lines']} log lines", file=out)
        print(f"{len(listed)} preparations would be removed (in batches of {BATCH}); the database is {result['size_bytes']:,} bytes",
              file=out)
    else:
        print(f"removed {result['removed']} preparations ({result['log_lines']} log lines); database "
              f"{result['size_before']:,} -> {result['size_after']:,} bytes", file=out)
    return EXIT_OK


@contextlib.contextmanager
def _hidden(modules: tuple[str, ...]) -> Iterator[None]:
    """Imports made inside find ``modules`` not installed (peewee then keeps no PostgreSQL driver);
    after it they import as usual (a plugin that needs one gets it). One already imported (the
    service in a test's process) stays as it is."""
    hidden = [name for name in modules if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]

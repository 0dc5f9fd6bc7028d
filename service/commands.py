"""The commands the service adds to ``serverprep``: serve, and the offline plan and drivers."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from serverprep.clients.cli import commands as client_commands
from serverprep.clients.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from serverprep.clients.cli.render import print_plan
from serverprep.drivers import DEFAULT_REPOSITORY, DockerSource, PlanOptions
from serverprep.drivers.offline import skeleton_facts
from serverprep.service import logconfig
from serverprep.service.errors import InsecureListen, InvalidSetting, ServerprepError
from serverprep.service.plugins import DriverRegistry
from serverprep.service.settings import Settings


def add_commands(sub: Any, client_options: argparse.ArgumentParser) -> None:
    """Entry point of the ``serverprep.cli`` group: serve, plan, drivers."""
    serve = sub.add_parser("serve", help="run the gRPC service",
                           description="Run the serverprep service. Every flag can also be set by its environment variable.")
    Settings.add_arguments(serve)
    serve.set_defaults(run=run_serve)

    plan = sub.add_parser("plan", help="show what would run on an OS, offline (no service, no SSH)")
    plan.add_argument("--os-release", required=True, metavar="FILE", help="an /etc/os-release file")
    plan.add_argument("--arch", default="amd64",
                      help="the server's architecture, as uname -m (x86_64, aarch64) or dpkg/rpm name it (default %(default)s)")
    plan.add_argument("--user", default="root", help="SSH user the plan is for (default %(default)s)")
    plan.add_argument("--has", action="append", default=[], metavar="PROGRAM", help="assume PROGRAM exists (e.g. dnf5)")
    plan.add_argument("--json", action="store_true", help="the plan as JSON")
    client_commands.add_plan_options(plan)
    plan.set_defaults(run=run_plan)

    drivers = sub.add_parser("drivers", help="list installed OS drivers and the fact probes plugins declare")
    drivers.set_defaults(run=run_drivers)


def main_serve(argv: list[str]) -> int:
    """``python -m serverprep.service``: serve, with the same flags as ``serverprep serve``."""
    parser = argparse.ArgumentParser(prog="python -m serverprep.service", description="Run the serverprep service.")
    Settings.add_arguments(parser)
    try:
        return run_serve(parser.parse_args(argv), sys.stdout)
    except CliError as e:
        print(f"serverprep: {e}", file=sys.stderr)
        return e.code


def run_serve(args: argparse.Namespace, out: TextIO) -> int:
    from serverprep.service.server import serve

    try:
        settings = Settings.from_args(args)
    except InvalidSetting as e:
        raise CliError(str(e), EXIT_USAGE) from None
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
        if args.json:
            print(json.dumps({"error": {"reason": e.reason, "message": e.message}}, indent=2), file=out)
            return EXIT_FAILED
        raise CliError(f"{e.reason}: {e.message}") from None
    print_plan(plan.to_dict(), out, as_json=args.json)
    return EXIT_OK


def run_drivers(args: argparse.Namespace, out: TextIO) -> int:
    try:
        registry = DriverRegistry.default()
    except ServerprepError as e:
        raise CliError(f"{e.reason}: {e.message}") from None
    for name, plugin, distros in registry.describe():
        print(f"{name} (plugin {plugin})", file=out)
        for distro in distros:
            print(f"  {distro}", file=out)
    for probe in registry.probes:
        print(f"probe {probe.name}: {probe.description or probe.command.display()}", file=out)
    return EXIT_OK

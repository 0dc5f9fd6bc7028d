"""How the CLI shows servers, preparations and plans: JSON shapes for programs, text for people.

JSON keeps the service's text as it is; text goes through :func:`terminal.visible`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

from serverprep.clients.cli.terminal import Style, visible
from serverprep.clients.types import (
    DockerSource,
    LogEntry,
    LogStream,
    OperatingSystem,
    PlanResponse,
    Preparation,
    PreparationState,
    Server,
    Step,
    StepState,
    short_name,
)


def prep_state(value: int) -> str:
    return short_name(PreparationState, value)


def step_state(value: int) -> str:
    return short_name(StepState, value)


def iso_time(ts: Any) -> str | None:
    """A Timestamp as ISO 8601 UTC (``2025-01-31T12:00:00.123456Z``), None when unset."""
    if not (ts.seconds or ts.nanos):
        return None
    return str(ts.ToDatetime().isoformat()) + "Z"


# -- JSON shapes ---------------------------------------------------------------


def server_json(s: Server) -> dict[str, Any]:
    return {
        "name": s.name, "host": s.host, "port": s.port, "user": s.user, "host_key": s.host_key,
        "host_key_fingerprint": s.host_key_fingerprint, "accept_new_host_key": s.accept_new_host_key,
        "has_private_key": s.has_private_key, "has_password": s.has_password, "has_sudo_password": s.has_sudo_password,
        "created": iso_time(s.create_time),
        "latest_preparation": {"id": s.latest_preparation.id, "state": prep_state(s.latest_preparation.state),
                               "attempt": s.latest_preparation.attempt} if s.HasField("latest_preparation") else None,
    }


def step_json(s: Step) -> dict[str, Any]:
    return {
        "name": s.name, "state": step_state(s.state), "exit_code": s.exit_code if s.HasField("exit_code") else None,
        "message": s.message, "attempts": s.attempts, "started": iso_time(s.start_time), "finished": iso_time(s.end_time),
    }


def preparation_json(p: Preparation) -> dict[str, Any]:
    o = p.options
    data: dict[str, Any] = {
        "id": p.id,
        "server": p.server,
        "state": prep_state(p.state),
        "attempt": p.attempt,
        "request_id": p.request_id,
        "docker_source": short_name(DockerSource, o.docker_source).lower(),
        "options": {"step_timeout_seconds": o.step_timeout_seconds, "docker_version": o.docker_version,
                    "channel": o.channel, "repository_url": o.repository_url, "http_proxy": o.http_proxy,
                    "https_proxy": o.https_proxy, "no_proxy": o.no_proxy},
        "created": iso_time(p.create_time),
        "started": iso_time(p.start_time),
        "finished": iso_time(p.end_time),
        "last_seq": p.last_seq,
        "steps": [step_json(s) for s in p.steps],
        "operating_system": operating_system_dict(p.operating_system) if p.HasField("operating_system") else None,
        "failure": {"reason": p.failure.reason, "message": p.failure.message, "step": p.failure.step}
        if p.HasField("failure") else None,
    }
    return data


def entry_json(e: LogEntry) -> dict[str, Any]:
    return {
        "seq": e.seq, "time": iso_time(e.time), "step": e.step, "stream": short_name(LogStream, e.stream), "text": e.text,
        "step_state": step_state(e.step_state) if e.step_state else None,
        "preparation_state": prep_state(e.preparation_state) if e.preparation_state else None,
    }


def operating_system_dict(o: OperatingSystem) -> dict[str, str]:
    return {"id": o.id, "version_id": o.version_id, "pretty_name": o.pretty_name,
            "codename": o.codename, "architecture": o.architecture, "driver": o.driver}


def plan_dict(r: PlanResponse) -> dict[str, Any]:
    """A PlanResponse in the shape of serverprep.drivers.Plan.to_dict(), so both print alike."""
    return {
        "driver": r.driver,
        "operating_system": operating_system_dict(r.operating_system),
        "repository": {"url": r.repository.url, "suite": r.repository.suite, "component": r.repository.component,
                       "key_url": r.repository.key_url} if r.HasField("repository") else None,
        "steps": [{"name": s.name, "commands": list(s.commands), "checks": list(s.checks), "summaries": list(s.summaries),
                   "check_summary": s.check_summary, "as_user": s.as_user, "skip_reason": s.skip_reason}
                  for s in r.steps],
    }


# -- text ----------------------------------------------------------------------


def server_line(s: Server) -> str:
    key = s.host_key_fingerprint or ("trust on first connect" if s.accept_new_host_key else "-")
    latest = prep_state(s.latest_preparation.state) if s.HasField("latest_preparation") else "not prepared"
    return visible(f"{s.name:<24} {s.user}@{s.host}:{s.port:<6} {key}  {latest}")


def _duration(step: Step) -> str:
    if not (step.start_time.seconds and step.end_time.seconds):
        return ""
    seconds = (step.end_time.ToNanoseconds() - step.start_time.ToNanoseconds()) / 1e9
    return f"{seconds:.1f}s"


STATE_COLOURS = {"SUCCEEDED": "green", "SKIPPED": "green", "FAILED": "red", "CANCELLED": "yellow", "RUNNING": "bold"}


def print_status(p: Preparation, out: TextIO, style: Style | None = None, tail: Iterable[str] = ()) -> None:
    """A preparation as a table of steps, its OS, its failure and the last lines its failed command wrote."""
    style = style or Style(False)
    state = prep_state(p.state)
    print(f"preparation {p.id} of {visible(p.server)}: {style(STATE_COLOURS.get(state, 'bold'), state)} (attempt {p.attempt})",
          file=out)
    if p.HasField("operating_system"):
        o = p.operating_system
        print(visible(f"os: {o.pretty_name} ({o.codename}, {o.architecture}), driver {o.driver}"), file=out)
    width = max((len(s.name) for s in p.steps), default=20) + 1
    for s in p.steps:
        exit_text = f"exit {s.exit_code}" if s.HasField("exit_code") and s.exit_code else ""
        extra = [x for x in (_duration(s), exit_text, visible(s.message)) if x]
        name = step_state(s.state)
        print(f"  {style(STATE_COLOURS.get(name, 'dim'), f'{name:<10}')} {visible(s.name):<{width}} {' · '.join(extra)}".rstrip(),
              file=out)
    if p.HasField("failure"):
        where = f" at {p.failure.step}" if p.failure.step else ""
        print(style("red", visible(f"failure{where}: {p.failure.reason}: {p.failure.message}")), file=out)
        lines = list(tail)
        if lines:
            print("last lines on stderr of the failed command:", file=out)
            for line in lines:
                print(f"  {style('red', '! ' + visible(line))}", file=out)


def print_plan(plan: dict[str, Any], out: TextIO, *, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(plan, indent=2, ensure_ascii=False), file=out)
        return
    o = plan["operating_system"]
    print(visible(f"driver:     {plan['driver']}"), file=out)
    print(visible(f"os:         {o['pretty_name']} [{o['codename'] or '-'}, {o['architecture']}]"), file=out)
    repo = plan["repository"]
    repo_text = f"{repo['url']} {repo['suite']} {repo['component']}".strip() if repo else "the OS's own repositories"
    print(visible(f"repository: {repo_text}"), file=out)
    for step in plan["steps"]:
        print("\n" + visible(step["name"]) + (" (as the user, new SSH session)" if step["as_user"] else ""), file=out)
        if step["skip_reason"]:
            print(visible(f"  skipped: {step['skip_reason']}"), file=out)
            continue
        if step["checks"]:
            print(visible(f"  skip if: {step['check_summary'] or '; '.join(step['checks'])}"), file=out)
        for command in step["summaries"]:
            print(visible(f"  $ {command}"), file=out)

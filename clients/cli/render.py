"""How the CLI shows preparations, log entries and plans: text for people, JSON for programs."""

from __future__ import annotations

import json
import os
import time
from typing import Any, TextIO

from serverprep.v1 import preparations_pb2 as pb


def _short(enum_name: str, prefix: str) -> str:
    return enum_name[len(prefix) :] if enum_name.startswith(prefix) else enum_name


def prep_state(value: int) -> str:
    return _short(pb.PreparationState.Name(value), "PREPARATION_STATE_")


def step_state(value: int) -> str:
    return _short(pb.StepState.Name(value), "STEP_STATE_")


def iso_time(ts: Any) -> str | None:
    return ts.ToDatetime().isoformat() + "Z" if ts.seconds or ts.nanos else None


def preparation_json(p: pb.Preparation) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": p.id,
        "server": p.server,
        "state": prep_state(p.state),
        "attempt": p.attempt,
        "docker_source": _short(pb.DockerSource.Name(p.options.docker_source), "DOCKER_SOURCE_").lower(),
        "created": iso_time(p.create_time),
        "started": iso_time(p.start_time),
        "finished": iso_time(p.end_time),
        "last_seq": p.last_seq,
        "steps": [
            {
                "name": s.name,
                "state": step_state(s.state),
                "exit_code": s.exit_code if s.HasField("exit_code") else None,
                "message": s.message,
                "attempts": s.attempts,
                "started": iso_time(s.start_time),
                "finished": iso_time(s.end_time),
            }
            for s in p.steps
        ],
    }
    if p.HasField("operating_system"):
        data["operating_system"] = operating_system_dict(p.operating_system)
    if p.HasField("failure"):
        data["failure"] = {"reason": p.failure.reason, "message": p.failure.message, "step": p.failure.step}
    return data


def operating_system_dict(o: pb.OperatingSystem) -> dict[str, str]:
    return {"id": o.id, "version_id": o.version_id, "pretty_name": o.pretty_name,
            "codename": o.codename, "architecture": o.architecture, "driver": o.driver}


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


def plan_dict(r: pb.PlanResponse) -> dict[str, Any]:
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

"""The API's messages as the JSON the page reads, and client errors as HTTP answers."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from serverprep.clients.errors import ServerprepClientError
from serverprep.clients.types import (
    DockerSource,
    LogEntry,
    LogStream,
    Preparation,
    PreparationState,
    Server,
    Step,
    StepState,
    short_name,
)

#: The steps of a preparation, in order: the fleet's columns until a preparation says otherwise.
STEP_NAMES = ("detect_os", "update_packages", "install_dependencies", "install_docker", "start_docker",
              "configure_user", "verify_docker")

#: HTTP status of a failed call, by its gRPC code; the service's own faults are the gateway's 502.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def seconds(ts: Timestamp) -> float | None:
    """A timestamp as seconds since the epoch, None when unset."""
    if not ts.seconds and not ts.nanos:
        return None
    return ts.seconds + ts.nanos / 1e9


def os_name(prep: Preparation) -> str:
    o = prep.operating_system
    return o.pretty_name or " ".join(p for p in (o.id, o.version_id) if p)


def failure(prep: Preparation) -> dict[str, str] | None:
    if not prep.failure.reason:
        return None
    return {"reason": prep.failure.reason, "message": prep.failure.message, "step": prep.failure.step}


def row(server: str, host: str, prep: Preparation | None, steps: tuple[str, ...] = STEP_NAMES) -> dict[str, Any]:
    """One line of the fleet view: the latest preparation's state and each step's, in the fleet's column order."""
    if prep is None or not prep.id:
        return {"name": server, "host": host, "state": "NONE", "id": "", "attempt": 0, "os": "",
                "steps": ["NONE"] * len(steps), "created": None, "started": None, "ended": None, "failure": None}
    by_name = {s.name: short_name(StepState, s.state) for s in prep.steps}
    return {
        "name": server, "host": host, "state": short_name(PreparationState, prep.state), "id": prep.id,
        "attempt": prep.attempt, "os": os_name(prep), "steps": [by_name.get(n, "NONE") for n in steps],
        "created": seconds(prep.create_time), "started": seconds(prep.start_time), "ended": seconds(prep.end_time),
        "failure": failure(prep),
    }


def step(s: Step) -> dict[str, Any]:
    return {"name": s.name, "state": short_name(StepState, s.state),
            "exit_code": s.exit_code if s.HasField("exit_code") else None, "message": s.message,
            "started": seconds(s.start_time), "ended": seconds(s.end_time), "attempts": s.attempts}


def preparation(prep: Preparation) -> dict[str, Any]:
    """A preparation in full, for the one-server view (options as the service shows them: proxy passwords masked)."""
    o, opts = prep.operating_system, prep.options
    return {
        "id": prep.id, "server": prep.server, "state": short_name(PreparationState, prep.state), "attempt": prep.attempt,
        "request_id": prep.request_id, "last_seq": prep.last_seq,
        "options": {"docker_source": short_name(DockerSource, opts.docker_source), "docker_version": opts.docker_version,
                    "channel": opts.channel, "repository_url": opts.repository_url,
                    "step_timeout_seconds": opts.step_timeout_seconds},
        "os": {"name": os_name(prep), "id": o.id, "version_id": o.version_id, "codename": o.codename,
               "architecture": o.architecture, "driver": o.driver},
        "steps": [step(s) for s in prep.steps], "failure": failure(prep),
        "created": seconds(prep.create_time), "started": seconds(prep.start_time), "ended": seconds(prep.end_time),
    }


def server(s: Server) -> dict[str, Any]:
    """What the page shows of a server: never a credential (the API returns none, only whether one is set)."""
    return {"name": s.name, "host": s.host, "port": s.port, "user": s.user, "host_key_fingerprint": s.host_key_fingerprint,
            "has_private_key": s.has_private_key, "has_password": s.has_password, "has_sudo_password": s.has_sudo_password,
            "created": seconds(s.create_time)}


def entry(e: LogEntry) -> list[Any]:
    """A log entry as a compact array: [seq, time, step, stream, text, step_state, preparation_state]."""
    return [e.seq, seconds(e.time), e.step, short_name(LogStream, e.stream), e.text,
            short_name(StepState, e.step_state) if e.step_state else "",
            short_name(PreparationState, e.preparation_state) if e.preparation_state else ""]


def error(e: ServerprepClientError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of a failed call: the API's reason and message, as the page shows them."""
    return HTTP_STATUS.get(e.code, 502), {"error": e.to_dict()}


def gateway_error(status: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    """An error of the gateway itself, in the same shape as the API's."""
    return status, {"error": {"reason": reason, "message": message, "code": None, "metadata": {}, "violations": {}}}

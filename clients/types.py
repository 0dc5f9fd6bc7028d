"""The API's messages and enums, re-exported so that callers import one package.

States and the like are the generated protobuf enums of ``serverprep.v1``, not Python enums:
the values are the ints on the wire, so a state from a newer service still compares and
prints, and the ``.pyi`` stubs type every message field with them::

    from serverprep.clients import PREPARATION_STATE_SUCCEEDED, PreparationState

    if prep.state == PREPARATION_STATE_SUCCEEDED: ...
    PreparationState.Name(prep.state)        # "PREPARATION_STATE_SUCCEEDED"
    short_name(PreparationState, prep.state)  # "SUCCEEDED"
"""

from __future__ import annotations

from typing import Any

from serverprep.v1.preparations_pb2 import (
    DOCKER_SOURCE_DISTRO,
    DOCKER_SOURCE_OFFICIAL,
    DOCKER_SOURCE_UNSPECIFIED,
    LOG_STREAM_EVENT,
    LOG_STREAM_STDERR,
    LOG_STREAM_STDOUT,
    LOG_STREAM_UNSPECIFIED,
    PREPARATION_STATE_CANCELLED,
    PREPARATION_STATE_FAILED,
    PREPARATION_STATE_PENDING,
    PREPARATION_STATE_RUNNING,
    PREPARATION_STATE_SUCCEEDED,
    PREPARATION_STATE_UNSPECIFIED,
    STEP_STATE_CANCELLED,
    STEP_STATE_FAILED,
    STEP_STATE_PENDING,
    STEP_STATE_RUNNING,
    STEP_STATE_SKIPPED,
    STEP_STATE_SUCCEEDED,
    STEP_STATE_UNSPECIFIED,
    DockerSource,
    Failure,
    LogEntry,
    LogStream,
    OperatingSystem,
    PlannedStep,
    PlanResponse,
    Preparation,
    PreparationState,
    PreparationSummary,
    PrepareOptions,
    Repository,
    Step,
    StepState,
)
from serverprep.v1.servers_pb2 import Server

#: The states a preparation ends in; a preparation in another state is still PENDING or RUNNING.
TERMINAL: frozenset[PreparationState] = frozenset(
    {PREPARATION_STATE_SUCCEEDED, PREPARATION_STATE_FAILED, PREPARATION_STATE_CANCELLED}
)
#: The states a preparation can be retried from.
RETRYABLE: frozenset[PreparationState] = frozenset({PREPARATION_STATE_FAILED, PREPARATION_STATE_CANCELLED})

_PREFIXES = {
    "PreparationState": "PREPARATION_STATE_",
    "StepState": "STEP_STATE_",
    "DockerSource": "DOCKER_SOURCE_",
    "LogStream": "LOG_STREAM_",
}


def short_name(enum: Any, value: int) -> str:
    """The name of ``value`` in a generated enum, without its prefix: ``short_name(StepState, 3) == "SUCCEEDED"``.

    A value this client does not know (from a newer service) reads ``"UNKNOWN_7"``.
    """
    try:
        name: str = enum.Name(value)
    except ValueError:
        return f"UNKNOWN_{int(value)}"
    return name.removeprefix(_PREFIXES.get(enum.DESCRIPTOR.name, ""))


__all__ = [
    "DOCKER_SOURCE_DISTRO", "DOCKER_SOURCE_OFFICIAL", "DOCKER_SOURCE_UNSPECIFIED",
    "LOG_STREAM_EVENT", "LOG_STREAM_STDERR", "LOG_STREAM_STDOUT", "LOG_STREAM_UNSPECIFIED",
    "PREPARATION_STATE_CANCELLED", "PREPARATION_STATE_FAILED", "PREPARATION_STATE_PENDING",
    "PREPARATION_STATE_RUNNING", "PREPARATION_STATE_SUCCEEDED", "PREPARATION_STATE_UNSPECIFIED",
    "STEP_STATE_CANCELLED", "STEP_STATE_FAILED", "STEP_STATE_PENDING", "STEP_STATE_RUNNING",
    "STEP_STATE_SKIPPED", "STEP_STATE_SUCCEEDED", "STEP_STATE_UNSPECIFIED",
    "DockerSource", "Failure", "LogEntry", "LogStream", "OperatingSystem", "PlanResponse", "PlannedStep",
    "Preparation", "PreparationState", "PreparationSummary", "PrepareOptions", "Repository", "RETRYABLE", "Server", "Step",
    "StepState", "TERMINAL", "short_name",
]

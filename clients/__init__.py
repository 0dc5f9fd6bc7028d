"""Clients of the serverprep service: a typed blocking Client, an asyncio AsyncClient, and the ``serverprep`` CLI.

>>> from serverprep.clients import Client, ServerNotFound
>>> with Client("127.0.0.1:50051") as sp:                        # doctest: +SKIP
...     try:
...         sp.status("web1")
...     except ServerNotFound as e:
...         print(e.reason, e.message)

The API's messages and enums are re-exported from :mod:`serverprep.clients.types`, every error
class from :mod:`serverprep.clients.errors`.
"""

from serverprep.clients.aio import AsyncClient
from serverprep.clients.client import Client
from serverprep.clients.errors import (
    AuthFailed,
    CallTimeout,
    Cancelled,
    ConnectFailed,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    DriverConflict,
    DriverError,
    FactsFailed,
    HostKeyMismatch,
    HostUnknown,
    HostUnreachable,
    InternalError,
    Interrupted,
    InvalidArgumentError,
    NotCancellable,
    NotFoundError,
    NotRetryable,
    PreparationActive,
    PreparationNotFound,
    RemoteError,
    ServerExists,
    ServerNotFound,
    ServerprepClientError,
    ServiceUnavailable,
    ShuttingDown,
    StepFailed,
    StepTimeout,
    StorageError,
    StreamTooSlow,
    SudoFailed,
    SudoMissing,
    SudoNeedsTty,
    SudoNotAllowed,
    SudoPasswordRequired,
    SudoPasswordWrong,
    Unauthenticated,
    UnknownReason,
    UnsupportedOS,
    error_class,
    failure_error,
)
from serverprep.clients.messages import ServerChanges
from serverprep.clients.types import (
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
    RETRYABLE,
    STEP_STATE_CANCELLED,
    STEP_STATE_FAILED,
    STEP_STATE_PENDING,
    STEP_STATE_RUNNING,
    STEP_STATE_SKIPPED,
    STEP_STATE_SUCCEEDED,
    STEP_STATE_UNSPECIFIED,
    TERMINAL,
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
    Server,
    Step,
    StepState,
    short_name,
)

__all__ = [
    "AsyncClient", "Client", "ServerChanges",
    # errors
    "AuthFailed", "CallTimeout", "Cancelled", "ConnectFailed", "ConnectionLost", "ConnectionRefused", "ConnectTimeout",
    "DriverConflict", "DriverError", "FactsFailed", "HostKeyMismatch", "HostUnknown", "HostUnreachable", "InternalError",
    "Interrupted", "InvalidArgumentError", "NotCancellable", "NotFoundError", "NotRetryable", "PreparationActive",
    "PreparationNotFound", "RemoteError", "ServerExists", "ServerNotFound", "ServerprepClientError", "ServiceUnavailable",
    "ShuttingDown", "StepFailed", "StepTimeout", "StorageError", "StreamTooSlow", "SudoFailed", "SudoMissing",
    "SudoNeedsTty", "SudoNotAllowed", "SudoPasswordRequired", "SudoPasswordWrong", "Unauthenticated", "UnknownReason",
    "UnsupportedOS", "error_class", "failure_error",
    # messages and enums
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

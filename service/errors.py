"""The error tree: every failure serverprep reports has a class, a reason and a message."""

from __future__ import annotations

from collections.abc import Mapping


class ServerprepError(Exception):
    """Base of every serverprep error. ``reason`` is stable and machine-readable."""

    reason = "SERVERPREP_ERROR"

    def __init__(self, message: str, *, metadata: Mapping[str, str] | None = None, reason: str | None = None):
        super().__init__(message)
        self.message = message
        self.metadata = dict(metadata or {})
        if reason:
            self.reason = reason

    def __str__(self) -> str:
        return self.message


# -- the caller's request ---------------------------------------------------


class InvalidArgument(ServerprepError, ValueError):
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Mapping[str, str]):
        self.violations = dict(violations)
        text = "; ".join(f"{field}: {why}" for field, why in self.violations.items())
        super().__init__(f"invalid request: {text}")


class NotFound(ServerprepError, LookupError):
    reason = "NOT_FOUND"


class ServerNotFound(NotFound):
    reason = "SERVER_NOT_FOUND"


class PreparationNotFound(NotFound):
    reason = "PREPARATION_NOT_FOUND"


class ServerExists(ServerprepError):
    reason = "SERVER_EXISTS"


class RequestIdReused(ServerprepError):
    """A request_id sent again with a different request (AIP-155): not the same operation."""

    reason = "REQUEST_ID_REUSED"


class PreparationActive(ServerprepError):
    """A server has a pending or running preparation already."""

    reason = "PREPARATION_ACTIVE"

    def __init__(self, server: str, preparation_id: str):
        super().__init__(
            f"server {server!r} is being prepared by {preparation_id}",
            metadata={"server": server, "preparation_id": preparation_id},
        )
        self.preparation_id = preparation_id


class NotRetryable(ServerprepError):
    reason = "NOT_RETRYABLE"


class NotCancellable(ServerprepError):
    reason = "NOT_CANCELLABLE"


class Unauthenticated(ServerprepError):
    reason = "UNAUTHENTICATED"


class ServiceUnavailable(ServerprepError):
    reason = "SHUTTING_DOWN"


class StorageError(ServerprepError):
    reason = "STORAGE_ERROR"


class StreamTooSlow(ServerprepError):
    """A log reader fell too far behind the live entries; it resumes by sequence number."""

    reason = "STREAM_TOO_SLOW"


class TooManyPlans(ServerprepError):
    """More Plan calls (dry runs) at once than the service allows; try again shortly."""

    reason = "TOO_MANY_PLANS"


class InsecureListen(ServerprepError):
    """Refusal to serve a non-loopback address in the clear and without a token."""

    reason = "INSECURE_LISTEN"


class ReplicaNameInUse(ServerprepError):
    """Another live process holds this replica name (two services would run the same work)."""

    reason = "REPLICA_NAME_IN_USE"


class InvalidSetting(ServerprepError, ValueError):
    """A setting of the service that cannot work (told before anything starts)."""

    reason = "INVALID_SETTING"


class Internal(ServerprepError):
    """A bug in serverprep: the preparation ends instead of staying RUNNING forever."""

    reason = "INTERNAL"


# -- the server being prepared ----------------------------------------------


class UnsupportedOS(ServerprepError):
    reason = "UNSUPPORTED_OS"


class DriverConflict(ServerprepError):
    reason = "DRIVER_CONFLICT"


class DriverError(ServerprepError):
    reason = "DRIVER_ERROR"


class RemoteError(ServerprepError):
    """A failure talking to or on the remote server."""

    reason = "REMOTE_ERROR"


class HostKeyMismatch(RemoteError):
    reason = "HOST_KEY_MISMATCH"


class ConnectFailed(RemoteError, ConnectionError):
    """Could not reach the SSH server (refused, unreachable, timed out, name unknown)."""

    reason = "CONNECT_FAILED"


class AuthFailed(RemoteError, PermissionError):
    reason = "AUTH_FAILED"


class ConnectionLost(RemoteError, ConnectionError):
    reason = "CONNECTION_LOST"


class OutputTooLarge(RemoteError):
    """A remote command printed more than serverprep reads from it."""

    reason = "OUTPUT_TOO_LARGE"


class SudoFailed(RemoteError, PermissionError):
    reason = "SUDO_FAILED"


class FactsFailed(RemoteError):
    reason = "FACTS_FAILED"


class StepFailed(RemoteError):
    reason = "STEP_FAILED"

    def __init__(
        self, message: str, *, exit_code: int | None = None, command: str = "",
        metadata: Mapping[str, str] | None = None, reason: str | None = None,
    ):
        super().__init__(message, metadata=metadata, reason=reason)
        self.exit_code = exit_code
        self.command = command


class StepTimeout(StepFailed):
    reason = "STEP_TIMEOUT"


class Cancelled(ServerprepError):
    reason = "CANCELLED"


class Interrupted(ServerprepError):
    reason = "INTERRUPTED"

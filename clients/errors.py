"""Every error a client call can raise: one class per serverprep reason, under ServerprepClientError.

Long because it is the documented error tree of the public API: one small class per reason.
The service sends a ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer, with an
``ErrorInfo`` (the reason, in domain ``serverprep.dev``) and, for invalid input, ``BadRequest``
field violations. :func:`error_from_rpc` turns it into the class registered for the reason::

    try:
        sp.prepare("web1")
    except PreparationActive as e:      # a subclass of ServerprepClientError
        print("already running:", e.preparation_id)
    except ServerNotFound:
        ...
    except ServerprepClientError as e:  # anything else: e.code, e.reason, e.message, e.metadata, e.violations
        ...

Builtins are mixed in where they fit, so ``except LookupError`` or ``except ConnectionError`` work too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from serverprep.clients.defaults import ERROR_DOMAIN

#: The trailer that carries a serialized google.rpc.Status (the gRPC rich error model).
STATUS_DETAILS_KEY = "grpc-status-details-bin"

_BY_REASON: dict[str, type[ServerprepClientError]] = {}


class ServerprepClientError(Exception):
    """A failed call, or a call refused before it was sent.

    :ivar code: the gRPC status code (``grpc.StatusCode``)
    :ivar reason: serverprep's machine-readable reason (``ErrorInfo.reason``), ``""`` when the service sent none
    :ivar message: the human explanation
    :ivar metadata: ``ErrorInfo.metadata``, e.g. ``{"preparation_id": "..."}``
    :ivar violations: ``{field: why}`` from ``BadRequest`` (several violations of one field joined by ``"; "``)
    """

    #: The reason this class stands for; subclasses register themselves under it.
    REASON: ClassVar[str] = ""
    #: The gRPC code this error has when raised locally (the service's code wins when it sent one).
    DEFAULT_CODE: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        violations: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: grpc.StatusCode = code if code is not None else self.DEFAULT_CODE
        self.reason: str = self.REASON if reason is None else reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.violations: dict[str, str] = dict(violations or {})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.REASON and cls.REASON not in _BY_REASON:
            _BY_REASON[cls.REASON] = cls

    def __str__(self) -> str:
        text = f"{self.reason or self.code.name}: {self.message}"
        # The service's message already lists the violations ("invalid request: field: why; ...").
        if self.violations and not self.message.startswith("invalid request"):
            text += "".join(f"\n  {name}: {why}" for name, why in self.violations.items())
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.message, self.code.name, self.reason, self.metadata, self.violations)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the CLI prints: ``{"reason", "message", "code", "metadata", "violations"}``."""
        return {"reason": self.reason, "message": self.message, "code": self.code.name,
                "metadata": dict(self.metadata), "violations": dict(self.violations)}

    @classmethod
    def from_rpc(cls, error: grpc.RpcError) -> ServerprepClientError:
        """Kept for callers of the first client: the same as :func:`error_from_rpc`."""
        return error_from_rpc(error)


def _rebuild(cls: type[ServerprepClientError], message: str, code: str, reason: str,
             metadata: dict[str, str], violations: dict[str, str]) -> ServerprepClientError:
    error = cls.__new__(cls)
    ServerprepClientError.__init__(error, message, code=grpc.StatusCode[code], reason=reason,
                                   metadata=metadata, violations=violations)
    return error


class UnknownReason(ServerprepClientError):
    """A reason this client does not know (a newer service), or an error without serverprep details."""


# -- the request -------------------------------------------------------------


class InvalidArgumentError(ServerprepClientError, ValueError):
    """A field is missing or malformed: ``violations`` names each one.

    Raised by the service, and raised locally (before any call) for arguments that cannot be
    sent at all: a wrong type, an unknown ``docker_source``, an unknown field to update.
    """

    REASON = "INVALID_ARGUMENT"
    DEFAULT_CODE = grpc.StatusCode.INVALID_ARGUMENT

    @classmethod
    def local(cls, violations: Mapping[str, str]) -> InvalidArgumentError:
        text = "; ".join(f"{name}: {why}" for name, why in violations.items())
        return cls(f"invalid request: {text}", violations=violations, metadata={"origin": "client"})


class NotFoundError(ServerprepClientError, LookupError):
    REASON = "NOT_FOUND"
    DEFAULT_CODE = grpc.StatusCode.NOT_FOUND


class ServerNotFound(NotFoundError):
    REASON = "SERVER_NOT_FOUND"


class PreparationNotFound(NotFoundError):
    REASON = "PREPARATION_NOT_FOUND"


class ServerExists(ServerprepClientError):
    REASON = "SERVER_EXISTS"
    DEFAULT_CODE = grpc.StatusCode.ALREADY_EXISTS


class PreparationActive(ServerprepClientError):
    """The server has a pending or running preparation; ``preparation_id`` is that one."""

    REASON = "PREPARATION_ACTIVE"
    DEFAULT_CODE = grpc.StatusCode.FAILED_PRECONDITION

    @property
    def preparation_id(self) -> str:
        return self.metadata.get("preparation_id", "")


class NotRetryable(ServerprepClientError):
    """Retry of a preparation that is not FAILED or CANCELLED."""

    REASON = "NOT_RETRYABLE"
    DEFAULT_CODE = grpc.StatusCode.FAILED_PRECONDITION


class NotCancellable(ServerprepClientError):
    """Cancel of a preparation that is not PENDING or RUNNING."""

    REASON = "NOT_CANCELLABLE"
    DEFAULT_CODE = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(ServerprepClientError, PermissionError):
    """The service wants a bearer token and got none, or a wrong one."""

    REASON = "UNAUTHENTICATED"
    DEFAULT_CODE = grpc.StatusCode.UNAUTHENTICATED


class StreamTooSlow(ServerprepClientError):
    """A log reader fell too far behind; ``resume_after_seq`` is where to pick up."""

    REASON = "STREAM_TOO_SLOW"
    DEFAULT_CODE = grpc.StatusCode.RESOURCE_EXHAUSTED

    @property
    def resume_after_seq(self) -> int:
        return int(self.metadata.get("resume_after_seq", "0") or 0)


class InternalError(ServerprepClientError):
    """A bug in the service."""

    REASON = "INTERNAL"
    DEFAULT_CODE = grpc.StatusCode.INTERNAL


# -- the service's availability -----------------------------------------------


class ServiceUnavailable(ServerprepClientError, ConnectionError):
    """The service cannot be reached, or cannot serve right now: try again later.

    Raised as is for transport failures (nothing listening, TLS refused, connection lost);
    its subclasses are the service's own refusals.
    """

    REASON = "SERVICE_UNAVAILABLE"
    DEFAULT_CODE = grpc.StatusCode.UNAVAILABLE


class ShuttingDown(ServiceUnavailable):
    REASON = "SHUTTING_DOWN"


class StorageError(ServiceUnavailable):
    REASON = "STORAGE_ERROR"


class CallTimeout(ServerprepClientError, TimeoutError):
    """No answer within the call's deadline (``Client(timeout=...)``)."""

    REASON = "DEADLINE_EXCEEDED"
    DEFAULT_CODE = grpc.StatusCode.DEADLINE_EXCEEDED


# -- the server being prepared (from Plan, and in Preparation.failure) -------


class UnsupportedOS(ServerprepClientError):
    REASON = "UNSUPPORTED_OS"
    DEFAULT_CODE = grpc.StatusCode.FAILED_PRECONDITION


class DriverConflict(ServerprepClientError):
    REASON = "DRIVER_CONFLICT"
    DEFAULT_CODE = grpc.StatusCode.FAILED_PRECONDITION


class DriverError(ServerprepClientError):
    REASON = "DRIVER_ERROR"
    DEFAULT_CODE = grpc.StatusCode.FAILED_PRECONDITION


class RemoteError(ServerprepClientError):
    """A failure talking to the server being prepared, or on it."""

    REASON = "REMOTE_ERROR"
    DEFAULT_CODE = grpc.StatusCode.ABORTED


class HostKeyMismatch(RemoteError):
    """The server presented another host key than the pinned one (see the fingerprints in ``metadata``)."""

    REASON = "HOST_KEY_MISMATCH"
    DEFAULT_CODE = grpc.StatusCode.FAILED_PRECONDITION


class AuthFailed(RemoteError, PermissionError):
    REASON = "AUTH_FAILED"
    DEFAULT_CODE = grpc.StatusCode.PERMISSION_DENIED


class ConnectFailed(RemoteError, ConnectionError):
    """The server's SSH port could not be reached; the subclasses say how."""

    REASON = "CONNECT_FAILED"
    DEFAULT_CODE = grpc.StatusCode.UNAVAILABLE


class ConnectionRefused(ConnectFailed):
    REASON = "CONNECTION_REFUSED"


class ConnectTimeout(ConnectFailed):
    REASON = "CONNECT_TIMEOUT"


class HostUnknown(ConnectFailed):
    REASON = "HOST_UNKNOWN"


class HostUnreachable(ConnectFailed):
    REASON = "HOST_UNREACHABLE"


class ConnectionLost(RemoteError, ConnectionError):
    REASON = "CONNECTION_LOST"


class SudoFailed(RemoteError, PermissionError):
    """sudo refused to run a step; the subclasses say why."""

    REASON = "SUDO_FAILED"


class SudoPasswordRequired(SudoFailed):
    REASON = "SUDO_PASSWORD_REQUIRED"


class SudoPasswordWrong(SudoFailed):
    REASON = "SUDO_PASSWORD_WRONG"


class SudoNeedsTty(SudoFailed):
    REASON = "SUDO_NEEDS_TTY"


class SudoNotAllowed(SudoFailed):
    REASON = "SUDO_NOT_ALLOWED"


class SudoMissing(SudoFailed):
    REASON = "SUDO_MISSING"


class FactsFailed(RemoteError):
    REASON = "FACTS_FAILED"


class StepFailed(RemoteError):
    REASON = "STEP_FAILED"


class StepTimeout(StepFailed):
    REASON = "STEP_TIMEOUT"


class Cancelled(ServerprepClientError):
    REASON = "CANCELLED"
    DEFAULT_CODE = grpc.StatusCode.CANCELLED


class Interrupted(ServerprepClientError):
    """The service stopped (or crashed) while the preparation ran; Retry resumes it."""

    REASON = "INTERRUPTED"
    DEFAULT_CODE = grpc.StatusCode.ABORTED


def error_class(reason: str) -> type[ServerprepClientError]:
    """The class raised for ``reason`` (:class:`UnknownReason` for one this client does not know)."""
    return _BY_REASON.get(reason, UnknownReason)


def known_reasons() -> dict[str, type[ServerprepClientError]]:
    return dict(_BY_REASON)


def error_from_rpc(error: grpc.RpcError) -> ServerprepClientError:
    """The error a failed call stands for, decoded from its status and ``grpc-status-details-bin``."""
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    details = error.details() if callable(getattr(error, "details", None)) else None
    message = details or str(code.name)
    trailers = error.trailing_metadata() if callable(getattr(error, "trailing_metadata", None)) else None
    reason, metadata, violations = _decode_details(_status_details(trailers))
    if not reason:
        cls: type[ServerprepClientError] = {
            grpc.StatusCode.UNAVAILABLE: ServiceUnavailable,
            grpc.StatusCode.DEADLINE_EXCEEDED: CallTimeout,
        }.get(code, UnknownReason)
        return cls(message, code=code, reason=cls.REASON, metadata=metadata, violations=violations)
    return error_class(reason)(message, code=code, reason=reason, metadata=metadata, violations=violations)


def failure_error(reason: str, message: str, step: str = "") -> ServerprepClientError:
    """The error class of a ``Preparation.failure``, for callers who prefer to raise it."""
    cls = error_class(reason)
    return cls(message, reason=reason, metadata={"step": step} if step else None)


def _status_details(trailers: Iterable[tuple[str, str | bytes]] | None) -> bytes | None:
    for key, value in trailers or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return value
    return None


def _decode_details(raw: bytes | None) -> tuple[str, dict[str, str], dict[str, str]]:
    reason, metadata, violations = "", dict[str, str](), dict[str, str]()
    if not raw:
        return reason, metadata, violations
    status = status_pb2.Status()
    try:
        status.ParseFromString(raw)
    except DecodeError:  # a malformed trailer from something in between: keep the code and message
        return reason, metadata, violations
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            metadata = dict(info.metadata)
            # Another domain's reason (a proxy, a gateway) is not ours to interpret.
            reason = info.reason if info.domain in ("", ERROR_DOMAIN) else ""
            if info.domain not in ("", ERROR_DOMAIN):
                metadata.setdefault("domain", info.domain)
                metadata.setdefault("foreign_reason", info.reason)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                violations[v.field] = f"{violations[v.field]}; {v.description}" if v.field in violations else v.description
    return reason, metadata, violations

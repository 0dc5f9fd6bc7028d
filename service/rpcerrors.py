"""The one mapping from serverprep errors to gRPC status codes with rich details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from serverprep.clients.defaults import ERROR_DOMAIN
from serverprep.service import errors

# Most specific first: the first matching class decides.
_CODES: list[tuple[type[errors.ServerprepError], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.ServerExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.RequestIdReused, grpc.StatusCode.ALREADY_EXISTS),
    (errors.PreparationActive, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.NotRetryable, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.NotCancellable, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.ServiceUnavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.StorageError, grpc.StatusCode.UNAVAILABLE),
    (errors.StreamTooSlow, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.TooManyPlans, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.UnsupportedOS, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.DriverConflict, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.DriverError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.HostKeyMismatch, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.AuthFailed, grpc.StatusCode.PERMISSION_DENIED),
    (errors.ConnectFailed, grpc.StatusCode.UNAVAILABLE),
    (errors.RemoteError, grpc.StatusCode.ABORTED),
    (errors.Cancelled, grpc.StatusCode.CANCELLED),
]


def code_for(error: errors.ServerprepError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.UNKNOWN


def to_status(error: errors.ServerprepError) -> grpc.Status:
    code = code_for(error)
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    details = [_pack(info)]
    if isinstance(error, errors.InvalidArgument):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in error.violations.items()
            ]
        )
        details.append(_pack(bad))
    status = status_pb2.Status(code=code.value[0], message=error.message, details=details)
    return rpc_status.to_status(status)


def _pack(message) -> any_pb2.Any:  # type: ignore[no-untyped-def]
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed

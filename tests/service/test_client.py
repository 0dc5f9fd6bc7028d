"""The blocking Client against the real service: one error class per reason, arguments checked before any call, no extra dependency."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import subprocess
import sys
import time
from concurrent import futures

import grpc
import pytest
from google.protobuf import any_pb2, descriptor_pb2
from google.rpc import error_details_pb2, status_pb2

import serverprep.clients as sp
from conftest import register, wait_done, wait_step
from harness.service import ServiceThread
from harness.targets import KeyPair, behave, free_port
from serverprep.clients import AsyncClient, Client, errors
from serverprep.clients.types import TERMINAL
from serverprep.v1 import preparations_pb2 as pb


def test_request_errors_have_their_own_classes(client):
    with pytest.raises(sp.ServerNotFound) as e:
        client.get_server("nope")
    assert isinstance(e.value, sp.NotFoundError) and isinstance(e.value, LookupError)
    assert (e.value.code, e.value.reason, e.value.message) == (grpc.StatusCode.NOT_FOUND, "SERVER_NOT_FOUND", "no server named 'nope'")

    client.create_server("web1", host="127.0.0.1", user="u", password="pw", accept_new_host_key=True)
    with pytest.raises(sp.ServerExists):
        client.create_server("web1", host="127.0.0.1", user="u", password="pw", accept_new_host_key=True)
    with pytest.raises(sp.PreparationNotFound):
        client.status("web1")
    with pytest.raises(sp.PreparationNotFound):
        client.status("web1", "0" * 32)

    with pytest.raises(sp.InvalidArgumentError) as e:
        client.create_server("bad name", host="h!", user="u", password="pw", accept_new_host_key=True)
    assert isinstance(e.value, ValueError) and e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {"name", "host"} <= set(e.value.violations) and "origin" not in e.value.metadata  # the service's verdict

    with pytest.raises(sp.InvalidArgumentError) as e:
        client.update_server("web1")
    assert "update_mask" in e.value.violations


@pytest.mark.sshd
def test_preparation_and_remote_errors_have_their_own_classes(client, sim, tmp_path):
    register(client, sim)
    behave(sim, "apt-get", "sleep 60")
    running = client.prepare("sim", docker_source="distro")
    wait_step(client, "sim", "update_packages", pb.STEP_STATE_RUNNING)
    with pytest.raises(sp.PreparationActive) as active:
        client.prepare("sim")
    assert active.value.preparation_id == running.id
    with pytest.raises(sp.PreparationActive):
        client.delete_server("sim")
    with pytest.raises(sp.NotRetryable):
        client.retry("sim")
    client.cancel("sim")
    wait_done(client, "sim")
    with pytest.raises(sp.NotCancellable):
        client.cancel("sim")

    # Plan connects and gathers facts, so it raises what a connection can.
    register(client, sim, "wrongkey", host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFsJX6Mg0bvmTHe3LUNQbnLxlOSsdIq1vUP4N0DxIK8P")
    with pytest.raises(sp.HostKeyMismatch) as mismatch:
        client.plan("wrongkey")
    assert isinstance(mismatch.value, sp.RemoteError) and mismatch.value.metadata["presented_fingerprint"].startswith("SHA256:")
    register(client, sim, "badlogin", private_key=KeyPair.generate(tmp_path, "stranger").private)
    with pytest.raises(sp.AuthFailed) as auth:
        client.plan("badlogin")
    assert isinstance(auth.value, PermissionError)
    register(client, sim, "closed", port=free_port())
    with pytest.raises(sp.ConnectionRefused) as refused:
        client.plan("closed")
    assert isinstance(refused.value, sp.ConnectFailed) and isinstance(refused.value, ConnectionError)


def test_service_and_transport_failures(tmp_path):
    with Client("127.0.0.1:1", timeout=5) as nowhere:
        with pytest.raises(sp.ServiceUnavailable) as down:
            nowhere.health()
        assert isinstance(down.value, ConnectionError) and down.value.reason == "SERVICE_UNAVAILABLE"
    svc = ServiceThread(tmp_path / "data")
    svc.settings = dataclasses.replace(svc.settings, token="s3cret")
    svc.start()
    try:
        with Client(svc.address, token="wrong") as wrong, pytest.raises(sp.Unauthenticated):
            list(wrong.list_servers())
        with Client(svc.address, token="s3cret", timeout=0.2) as hurried, pytest.raises(sp.CallTimeout) as late:
            svc.loop.call_soon_threadsafe(time.sleep, 1.0)  # the service cannot answer for a second
            list(hurried.list_servers())
        assert isinstance(late.value, TimeoutError)
    finally:
        svc.stop()


class Refuser:
    """A real gRPC server whose every call fails with the google.rpc.Status it was given."""

    def __init__(self) -> None:
        self.status: status_pb2.Status | None = None
        self.trailer: bytes = b""
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.method_handlers_generic_handler("serverprep.v1.ServerService", {
            "GetServer": grpc.unary_unary_rpc_method_handler(self.refuse, lambda raw: raw, lambda raw: raw)})
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def refuse(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        assert self.status is not None
        context.set_trailing_metadata((("grpc-status-details-bin", self.trailer or self.status.SerializeToString()),))
        context.abort(grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == self.status.code)), self.status.message)
        raise AssertionError("abort returns no more")


def packed(message) -> any_pb2.Any:  # type: ignore[no-untyped-def]
    a = any_pb2.Any()
    a.Pack(message)
    return a


def test_details_are_decoded_from_the_status_trailer():
    refuser = Refuser()
    try:
        with Client(f"127.0.0.1:{refuser.port}", timeout=10) as c:
            def fails(**status: object) -> errors.ServerprepClientError:
                refuser.status = status_pb2.Status(**status)  # type: ignore[arg-type]
                with pytest.raises(errors.ServerprepClientError) as e:
                    c.get_server("x")
                return e.value

            info = error_details_pb2.ErrorInfo(reason="SERVER_NOT_FOUND", domain="serverprep.dev", metadata={"server": "x"})
            found = fails(code=5, message="gone", details=[packed(info)])
            assert type(found) is sp.ServerNotFound and found.metadata == {"server": "x"}

            newer = error_details_pb2.ErrorInfo(reason="QUOTA_EXCEEDED", domain="serverprep.dev", metadata={"limit": "3"})
            unknown = fails(code=8, message="too many", details=[packed(newer)])
            assert type(unknown) is sp.UnknownReason
            assert (unknown.reason, unknown.code, unknown.metadata) == ("QUOTA_EXCEEDED", grpc.StatusCode.RESOURCE_EXHAUSTED, {"limit": "3"})

            foreign = error_details_pb2.ErrorInfo(reason="SERVER_NOT_FOUND", domain="proxy.example", metadata={})
            other = fails(code=5, message="not ours", details=[packed(foreign)])
            assert type(other) is sp.UnknownReason and other.reason == ""
            assert other.metadata == {"domain": "proxy.example", "foreign_reason": "SERVER_NOT_FOUND"}

            bad = error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field="host", description="too long"),
                error_details_pb2.BadRequest.FieldViolation(field="host", description="not a name")])
            invalid = fails(code=3, message="invalid request", details=[
                packed(error_details_pb2.ErrorInfo(reason="INVALID_ARGUMENT", domain="serverprep.dev")), packed(bad)])
            assert type(invalid) is sp.InvalidArgumentError and invalid.violations == {"host": "too long; not a name"}

            refuser.trailer = b"\xff\xfe not a status"
            garbled = fails(code=13, message="broken proxy")
            assert type(garbled) is sp.UnknownReason and (garbled.code, garbled.message) == (grpc.StatusCode.INTERNAL, "broken proxy")
    finally:
        refuser.server.stop(0)


def test_arguments_are_refused_before_any_call():
    # Nothing listens on port 1: an InvalidArgumentError (not ServiceUnavailable) proves no call was made.
    with Client("127.0.0.1:1", timeout=5) as c:
        cases = [
            (lambda: c.prepare("web1", docker_source="bogus"), "docker_source"),
            (lambda: c.plan("web1", step_timeout="90"), "step_timeout"),  # type: ignore[arg-type]
            (lambda: c.update_server("web1", hots="10.0.0.1"), "hots"),  # type: ignore[call-arg]
            (lambda: c.update_server("web1", port="22"), "port"),  # type: ignore[typeddict-item]
            (lambda: c.create_server("web1", host="h", user=None, password="pw"), "user"),  # type: ignore[arg-type]
            (lambda: c.status(["web1"]), "server"),  # type: ignore[arg-type]
            (lambda: list(c.list_servers(page_size=0)), "page_size"),
            (lambda: list(c.stream_logs("web1", "x", after_seq=-5)), "after_seq"),
            (lambda: c.health(service=3), "service"),  # type: ignore[arg-type]
        ]
        for call, field in cases:
            with pytest.raises(sp.InvalidArgumentError) as e:
                call()
            assert field in e.value.violations, e.value
    for kwargs, field in (({"token": "a\nb"}, "token"), ({"tls_cert": "/etc/hostname"}, "tls_key"),
                          ({"tls_ca": "/nonexistent/ca.pem"}, "tls_ca")):
        with pytest.raises(sp.InvalidArgumentError) as e:
            Client("127.0.0.1:1", **kwargs)
        assert field in e.value.violations


def test_no_grpcio_status_or_health_checking_needed(service):
    """The client distribution's dependencies are grpcio, protobuf and googleapis-common-protos only."""
    program = f"""
import sys
sys.modules["grpc_status"] = sys.modules["grpc_health"] = sys.modules["grpc_reflection"] = None  # importing them fails
from serverprep.clients import Client, ServerNotFound, InvalidArgumentError
with Client("{service.address}") as c:
    print(c.health())
    try:
        c.get_server("nope")
    except ServerNotFound as e:
        print(e.reason, e.metadata)
    try:
        c.create_server("bad name", host="h", user="u", password="p", accept_new_host_key=True)
    except InvalidArgumentError as e:
        print(sorted(e.violations))
"""
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert out.stderr == ""
    assert out.stdout.splitlines() == ["SERVING", "SERVER_NOT_FOUND {'server': 'nope'}", "['name']"]


def test_health_messages_have_the_wire_format_of_the_wrappers_standing_in_for_them():
    from importlib.resources import files

    fds = descriptor_pb2.FileDescriptorSet.FromString(files("serverprep.v1").joinpath("serverprep.binpb").read_bytes())
    health = next(f for f in fds.file if f.name == "grpc/health/v1/health.proto")
    messages = {m.name: m for m in health.message_type}
    (request_field,) = messages["HealthCheckRequest"].field
    assert (request_field.number, request_field.type) == (1, descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    (status_field,) = messages["HealthCheckResponse"].field
    assert (status_field.number, status_field.type) == (1, descriptor_pb2.FieldDescriptorProto.TYPE_ENUM)
    enum = next(e for e in messages["HealthCheckResponse"].enum_type if e.name == "ServingStatus")
    assert {v.number: v.name for v in enum.value} == sp.messages.SERVING_STATUS
    assert health.package == "grpc.health.v1" and health.service[0].name == "Health" and health.service[0].method[0].name == "Check"


def test_client_and_async_client_have_the_same_methods():
    public = {n for n in dir(Client) if not n.startswith("_")}
    assert public == {n for n in dir(AsyncClient) if not n.startswith("_")}
    for name in public:
        sync, async_ = getattr(Client, name), getattr(AsyncClient, name)
        assert inspect.signature(sync).parameters == inspect.signature(async_).parameters, name
        is_iterator = name in ("list_servers", "list_preparations", "stream_logs")
        assert inspect.iscoroutinefunction(async_) == (not is_iterator), name
        assert inspect.isasyncgenfunction(async_) == is_iterator, name
        assert sync.__doc__ and async_.__doc__, name
    assert inspect.signature(Client.__init__) == inspect.signature(AsyncClient.__init__)


def test_enums_and_errors_are_exported():
    assert sp.PREPARATION_STATE_SUCCEEDED == pb.PREPARATION_STATE_SUCCEEDED == 3
    assert sp.STEP_STATE_CANCELLED == pb.STEP_STATE_CANCELLED == 6
    assert sp.StepState is pb.StepState and sp.LogStream.Name(sp.LOG_STREAM_STDERR) == "LOG_STREAM_STDERR"
    assert sp.short_name(sp.StepState, 6) == "CANCELLED" and sp.short_name(sp.PreparationState, 42) == "UNKNOWN_42"
    assert TERMINAL == {sp.PREPARATION_STATE_SUCCEEDED, sp.PREPARATION_STATE_FAILED, sp.PREPARATION_STATE_CANCELLED}
    from serverprep.clients.client import TERMINAL as old_terminal
    from serverprep.clients.client import Client as OldClient
    from serverprep.clients.client import ServerprepClientError

    assert (old_terminal, OldClient, ServerprepClientError) == (TERMINAL, Client, sp.ServerprepClientError)
    # Every reason the README documents has its class, and every class is exported.
    for reason in ("INVALID_ARGUMENT", "SERVER_NOT_FOUND", "PREPARATION_NOT_FOUND", "SERVER_EXISTS", "PREPARATION_ACTIVE",
                   "NOT_RETRYABLE", "NOT_CANCELLABLE", "UNAUTHENTICATED", "SHUTTING_DOWN", "STORAGE_ERROR", "STREAM_TOO_SLOW",
                   "UNSUPPORTED_OS", "DRIVER_CONFLICT", "DRIVER_ERROR", "HOST_KEY_MISMATCH", "AUTH_FAILED", "CONNECTION_REFUSED",
                   "CONNECT_TIMEOUT", "HOST_UNKNOWN", "HOST_UNREACHABLE", "CONNECT_FAILED", "CONNECTION_LOST", "SUDO_FAILED",
                   "SUDO_PASSWORD_REQUIRED", "SUDO_PASSWORD_WRONG", "SUDO_NEEDS_TTY", "SUDO_NOT_ALLOWED", "SUDO_MISSING",
                   "FACTS_FAILED", "STEP_FAILED", "STEP_TIMEOUT", "CANCELLED", "INTERRUPTED", "INTERNAL"):
        assert errors.error_class(reason) is not sp.UnknownReason, reason
    for cls in errors.known_reasons().values():
        assert getattr(sp, cls.__name__) is cls and cls.__name__ in sp.__all__


def test_errors_survive_pickling_and_read_well():
    error = sp.PreparationActive("server 'web1' is being prepared by abc", code=grpc.StatusCode.FAILED_PRECONDITION,
                                 metadata={"preparation_id": "abc"})
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.preparation_id, copy.code, str(copy)) == (
        sp.PreparationActive, "abc", grpc.StatusCode.FAILED_PRECONDITION, "PREPARATION_ACTIVE: server 'web1' is being prepared by abc")
    assert copy.to_dict() == {"reason": "PREPARATION_ACTIVE", "message": "server 'web1' is being prepared by abc",
                              "code": "FAILED_PRECONDITION", "metadata": {"preparation_id": "abc"}, "violations": {}}
    failure = pb.Failure(reason="STEP_TIMEOUT", message="apt-get did not finish", step="install_docker")
    raised = errors.failure_error(failure.reason, failure.message, failure.step)
    assert isinstance(raised, sp.StepFailed) and type(raised) is sp.StepTimeout and raised.metadata == {"step": "install_docker"}


@pytest.mark.sshd
def test_stream_logs_resumes_after_the_last_entry_seen(client, sim):
    register(client, sim)
    prep = client.prepare("sim", docker_source="distro")
    head = []
    for entry in client.stream_logs("sim", prep.id):
        head.append(entry.seq)
        if len(head) == 3:
            break
    rest = [e.seq for e in client.stream_logs("sim", prep.id, after_seq=head[-1])]
    assert head + rest == list(range(1, rest[-1] + 1))
    assert wait_done(client, "sim", prep.id).state in TERMINAL

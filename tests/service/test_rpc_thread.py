"""The gRPC server on a loop of its own (serverprep.service.rpcloop) as the Service wires it: calls
answered from that thread, health set on it, and nothing left listening or running after a stop or
after a start that failed, before or once the server was listening."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.service import ServiceThread


def threads(name: str) -> int:
    """Live threads of that name: the gRPC loop's (serverprep-grpc), the store's checkpointer
    (serverprep-db-checkpoint: the store's one thread that outlives its calls)."""
    return sum(1 for t in threading.enumerate() if t.name == name and t.is_alive())


def running() -> tuple[int, int]:
    return threads("serverprep-grpc"), threads("serverprep-db-checkpoint")


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A port of 127.0.0.1 that something else listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_calls_go_through_the_grpc_thread_and_stop_ends_it(tmp_path):
    before = threads("serverprep-grpc")
    svc = ServiceThread(tmp_path).start()
    try:
        assert threads("serverprep-grpc") == before + 1
        with grpc.insecure_channel(svc.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
        with svc.client() as client:
            assert list(client.list_servers()) == []
    finally:
        port = svc.service.port
        svc.stop()
    assert threads("serverprep-grpc") == before
    assert refused(port)


def test_a_start_that_fails_after_listening_stops_the_server(tmp_path):
    before = running()
    with taken_port() as port:
        svc = ServiceThread(tmp_path, metrics_listen=f"127.0.0.1:{port}")
        try:
            with pytest.raises(OSError):
                svc.start()  # the metrics port is taken: after the API port is open
            assert svc.service.port, "the API server was listening before the failure"
            assert refused(svc.service.port)
            assert running() == before, "the gRPC loop or the store was left running"
        finally:
            svc.service = None  # nothing to stop
            svc.stop()


def test_a_start_that_fails_before_listening_closes_the_store(tmp_path):
    """The API port is taken: the start fails before anything listens, and the store it opened is closed."""
    before = running()
    with taken_port() as port:
        svc = ServiceThread(tmp_path, listen=f"127.0.0.1:{port}")
        try:
            with pytest.raises(RuntimeError):
                svc.start()
            assert running() == before, "the gRPC loop or the store was left running"
        finally:
            svc.service = None
            svc.stop()

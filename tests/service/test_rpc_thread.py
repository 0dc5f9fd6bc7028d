"""The gRPC server on a loop of its own (serverprep.service.rpcloop) as the Service wires it: calls
answered from that thread, health set on it, and nothing left listening or running after a stop or
after a start that failed, before or once the server was listening."""

from __future__ import annotations

import socket
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.service import ServiceThread


def grpc_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "serverprep-grpc" and t.is_alive()]


def store_threads() -> list[str]:
    """The store's own thread that outlives any call (its executors' threads end with their work or at exit)."""
    return [t.name for t in threading.enumerate() if t.name == "serverprep-db-checkpoint" and t.is_alive()]


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_calls_go_through_the_grpc_thread_and_stop_ends_it(tmp_path):
    before = len(grpc_threads())
    svc = ServiceThread(tmp_path).start()
    try:
        assert len(grpc_threads()) == before + 1
        with grpc.insecure_channel(svc.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
        with svc.client() as client:
            assert list(client.list_servers()) == []
    finally:
        port = svc.service.port
        svc.stop()
    assert len(grpc_threads()) == before
    assert refused(port)


def test_a_start_that_fails_after_listening_stops_the_server(tmp_path):
    before, stores = len(grpc_threads()), len(store_threads())
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    svc = ServiceThread(tmp_path, metrics_listen=f"127.0.0.1:{taken.getsockname()[1]}")
    try:
        with pytest.raises(OSError):
            svc.start()  # the metrics port is taken: after the API port is open
        assert svc.service.port, "the API server was listening before the failure"
        assert refused(svc.service.port)
        assert len(grpc_threads()) == before
        assert len(store_threads()) == stores, "the store was not closed"
    finally:
        taken.close()
        svc.service = None  # nothing to stop
        svc.stop()


def test_a_start_that_fails_before_listening_closes_the_store(tmp_path):
    """The API port is taken: the start fails before anything listens, and the store it opened is closed."""
    before, stores = len(grpc_threads()), len(store_threads())
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    svc = ServiceThread(tmp_path, listen=f"127.0.0.1:{taken.getsockname()[1]}")
    try:
        with pytest.raises(RuntimeError):
            svc.start()
        assert len(grpc_threads()) == before
        assert len(store_threads()) == stores, "the store was not closed"
    finally:
        taken.close()
        svc.service = None
        svc.stop()

"""Run a real serverprep gRPC service on a free port, in a thread or as a process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from serverprep.clients.client import Client
from serverprep.service.plugins import DriverRegistry
from serverprep.service.server import Service
from serverprep.service.settings import Settings

#: Shorter than the defaults, so that fault tests end quickly.
TEST_SETTINGS = {"connect_timeout": 5.0, "keepalive_interval": 2.0, "keepalive_count_max": 3, "kill_grace": 1.0, "shutdown_grace": 2.0}


class ServiceThread:
    """A Service on 127.0.0.1:<free port>, its event loop in a background thread."""

    def __init__(self, data_dir: Path, *, drivers: DriverRegistry | None = None, **settings: object):
        self.settings = Settings(data_dir=data_dir, **{"listen": "127.0.0.1:0", **TEST_SETTINGS, **settings})  # type: ignore[arg-type]
        self.drivers = drivers
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="serverprep-test-service", daemon=True)
        self.service: Service | None = None

    def call(self, coro, timeout: float = 60):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> ServiceThread:
        self.thread.start()
        self.service = Service(self.settings, self.drivers)
        self.call(self.service.start())
        return self

    @property
    def address(self) -> str:
        assert self.service is not None
        return f"127.0.0.1:{self.service.port}"

    def client(self) -> Client:
        return Client(self.address, timeout=30)

    def stop(self) -> None:
        if self.service is not None:
            with contextlib.suppress(Exception):
                self.call(self.service.stop(grace=2.0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@contextlib.contextmanager
def service_process(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """``serverprep serve`` as its own process; yields (process, address)."""
    from harness.targets import free_port

    port = free_port()
    address = f"127.0.0.1:{port}"
    log = open(data_dir / "service.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "serverprep.service", "--listen", address, "--data-dir", str(data_dir), *extra],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
    )
    try:
        wait_serving(address, proc)
        yield proc, address
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def wait_serving(address: str, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"service exited with {proc.returncode}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"service at {address} not serving after {timeout}s")

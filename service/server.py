"""The gRPC server: settings, servicers, health, reflection and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from serverprep.service.api import PreparationService, ServerService
from serverprep.service.auth import TokenInterceptor, check_exposure, server_credentials
from serverprep.service.engine import Engine, EngineSettings
from serverprep.service.logbus import LogBus
from serverprep.service.plugins import DriverRegistry
from serverprep.service.secretbox import SecretBox
from serverprep.service.store import Store, default_url
from serverprep.v1 import preparations_pb2, preparations_pb2_grpc, servers_pb2, servers_pb2_grpc

log = logging.getLogger("serverprep")

SERVICE_NAMES = (
    servers_pb2.DESCRIPTOR.services_by_name["ServerService"].full_name,
    preparations_pb2.DESCRIPTOR.services_by_name["PreparationService"].full_name,
)


def default_data_dir() -> Path:
    if "SERVERPREP_DATA_DIR" in os.environ:
        return Path(os.environ["SERVERPREP_DATA_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "serverprep"


@dataclass(frozen=True)
class Settings:
    listen: str = "127.0.0.1:50051"
    database_url: str = ""
    data_dir: Path = field(default_factory=default_data_dir)
    #: Seconds running steps get to finish on SIGTERM before they are interrupted.
    shutdown_grace: float = 20.0
    engine: EngineSettings = field(default_factory=EngineSettings)
    #: PEM files: the server's certificate and key; with client_ca, clients need a certificate it signed.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    #: Bearer token every call (but health) must carry.
    token: str = ""
    #: Serve a non-loopback address without TLS or token.
    insecure: bool = False
    #: Log entries a StreamLogs reader may fall behind before it is cut off.
    stream_backlog: int = 10_000

    @property
    def url(self) -> str:
        return self.database_url or os.environ.get("SERVERPREP_DATABASE_URL") or default_url(self.data_dir)


class Service:
    """A running serverprep: use ``async with Service(settings) as svc`` or :func:`serve`."""

    def __init__(self, settings: Settings, drivers: DriverRegistry | None = None):
        self.settings = settings
        self.drivers = drivers
        self.port = 0

    async def start(self) -> None:
        s = self.settings
        check_exposure(s.listen, tls=s.tls_cert is not None, token=bool(s.token), insecure=s.insecure)
        self.store = Store(s.url, SecretBox.load(s.data_dir))
        await self.store.run(self.store.migrate)
        drivers = self.drivers or DriverRegistry.default()
        self.bus = LogBus(self.store, subscriber_limit=s.stream_backlog)
        self.engine = Engine(self.store, drivers, self.bus, s.engine)
        self.health = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        interceptors = [TokenInterceptor(s.token)] if s.token else []
        server = self.server = grpc.aio.server(interceptors=interceptors)
        servers_pb2_grpc.add_ServerServiceServicer_to_server(ServerService(self.store), server)
        preparations_pb2_grpc.add_PreparationServiceServicer_to_server(
            PreparationService(self.store, self.engine, self.bus), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
        )
        if s.tls_cert and s.tls_key:
            self.port = server.add_secure_port(s.listen, server_credentials(s.tls_cert, s.tls_key, s.tls_client_ca))
        else:
            self.port = server.add_insecure_port(s.listen)
        if not self.port:
            raise OSError(f"cannot listen on {s.listen}")
        await server.start()
        await self.engine.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)

    async def _set_health(self, status: int) -> None:
        for name in ("", *SERVICE_NAMES):
            result = self.health.set(name, status)
            if asyncio.iscoroutine(result):
                await result

    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.shutdown_grace if grace is None else grace
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.engine.shutdown(grace)
        self.bus.shutdown()
        await self.server.stop(min(grace, 5.0))
        self.store.close()

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve(settings: Settings) -> None:
    service = Service(settings)
    await service.start()
    log.info("serverprep listening on %s (database %s)", settings.listen.rsplit(":", 1)[0] + f":{service.port}", _safe_url(settings.url))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: running steps get %.0f s to finish", settings.shutdown_grace)
    await service.stop()


def _safe_url(url: str) -> str:
    """A database URL without its password, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


@contextlib.asynccontextmanager
async def running(settings: Settings, drivers: DriverRegistry | None = None) -> AsyncIterator[Service]:
    service = Service(settings, drivers)
    await service.start()
    try:
        yield service
    finally:
        await service.stop(grace=2.0)

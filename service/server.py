"""The gRPC server: the parts wired together, health, reflection and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.metadata
import logging
import signal
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from serverprep.service import metrics
from serverprep.service.api import PreparationService, ServerService
from serverprep.service.auth import TokenInterceptor, check_exposure, server_credentials
from serverprep.service.cqdrain import drain_wakeups
from serverprep.service.limits import server_options
from serverprep.service.logbus import LogBus
from serverprep.service.plugins import DriverRegistry
from serverprep.service.preparations import Preparations
from serverprep.service.reflection import enable_reflection
from serverprep.service.replicas import Replicas
from serverprep.service.retention import Pruner
from serverprep.service.rpcloop import RpcLoop
from serverprep.service.runner import PreparationRunner
from serverprep.service.scheduler import Scheduler
from serverprep.service.secretbox import SecretBox
from serverprep.service.servers import Servers
from serverprep.service.settings import Settings
from serverprep.service.store import Store
from serverprep.service.store.migrations import LATEST
from serverprep.v1 import preparations_pb2, preparations_pb2_grpc, servers_pb2, servers_pb2_grpc

log = logging.getLogger("serverprep")

SERVICE_NAMES = (
    servers_pb2.DESCRIPTOR.services_by_name["ServerService"].full_name,
    preparations_pb2.DESCRIPTOR.services_by_name["PreparationService"].full_name,
)


class Service:
    """A running serverprep: use ``async with Service(settings) as svc`` or :func:`serve`."""

    def __init__(self, settings: Settings, drivers: DriverRegistry | None = None):
        self.settings = settings
        self.drivers = drivers
        self.port = 0
        self.loop_lag = metrics.LoopLag()

    async def start(self) -> None:
        """Open the store, then the gRPC server, then the rest. Should a step fail, what the steps
        before it opened is closed again, last first: nothing listens or runs after a failed start."""
        s = self.settings
        check_exposure(s.listen, tls=s.tls_cert is not None, token=bool(s.token), insecure=s.insecure)
        async with contextlib.AsyncExitStack() as undo:
            self.store = Store(s.url, SecretBox.load(s.data_dir))
            undo.callback(self.store.close)
            applied = await self.store.migrate()
            drivers = self.drivers or DriverRegistry.default()
            log.info("serverprep %s (%s), replica %r, database %s at schema %d%s, drivers %s",
                     _version("serverprep"), ", ".join(f"{p} {_version(p)}" for p in ("grpcio", "asyncssh", "peewee")),
                     s.replica, safe_url(s.url), LATEST, f" (applied migrations {applied})" if applied else "",
                     ", ".join(drivers.names()))
            self.bus = LogBus(self.store, s.stream_backlog, s.max_log_lines, s.max_log_bytes, keep_bytes=s.stream_backlog_bytes,
                              backlog_bytes=s.max_unstored_bytes)
            runner = PreparationRunner(self.store, drivers, s)
            self.scheduler = Scheduler(self.store, self.bus, runner, s)
            self.replicas = Replicas(self.store, self.bus, self.scheduler, s)
            self.preparations = Preparations(self.store, self.bus, self.scheduler, self.replicas, runner)
            self.health = health.aio.HealthServicer()
            await self.replicas.claim()
            self.rpc = RpcLoop()
            undo.callback(self.rpc.close)
            self.port = await self.rpc.run(self._serve_rpc(asyncio.get_running_loop()))
            undo.push_async_callback(self._stop_server)  # it listens: it must not go on taking calls
            if s.metrics_listen:
                metrics.record_build()
                metrics.serve_metrics(s.metrics_listen)
                self.loop_lag.start()
                undo.push_async_callback(self.loop_lag.stop)
                log.info("metrics on http://%s/metrics", s.metrics_listen)
            await self.replicas.start()
            undo.push_async_callback(self.replicas.stop)
            self.pruner = Pruner(self.store, s)
            self.pruner.start()
            undo.push_async_callback(self.pruner.stop)
            await self._set_health(health_pb2.HealthCheckResponse.SERVING)
            undo.pop_all()  # started: from now on stop() closes all of it
        self.replicas.on_storage = self._storage_health

    async def _stop_server(self, grace: float = 0.0) -> None:
        await self.rpc.run(self.server.stop(grace))

    async def _serve_rpc(self, engine: asyncio.AbstractEventLoop) -> int:
        """On the gRPC loop: the server with every servicer, listening; returns its port."""
        s = self.settings
        interceptors: list[grpc.aio.ServerInterceptor] = [metrics.RpcMetrics()]
        if s.token:
            interceptors.append(TokenInterceptor(s.token))
        server = self.server = grpc.aio.server(interceptors=interceptors, options=server_options(s))
        servers_pb2_grpc.add_ServerServiceServicer_to_server(ServerService(Servers(self.store), engine), server)
        _add_preparation_service(server, PreparationService(self.preparations, s.stream_message_bytes, engine))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        enable_reflection(server, (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name))
        try:
            if s.tls_cert and s.tls_key:
                port = server.add_secure_port(s.listen, server_credentials(s.tls_cert, s.tls_key, s.tls_client_ca))
            else:
                port = server.add_insecure_port(s.listen)
            if not port:
                raise OSError(f"cannot listen on {s.listen}")
            await server.start()
        except BaseException:
            await server.stop(None)
            raise
        if not drain_wakeups(asyncio.get_running_loop()):
            log.warning("grpcio's completion-queue reader was not found: under load, calls may wait for the event loop "
                        "(see serverprep.service.cqdrain)")
        return port

    async def _storage_health(self, healthy: bool) -> None:
        """NOT_SERVING while the database does not answer (a load balancer then sends calls elsewhere)."""
        if self.scheduler.accepting:
            serving = health_pb2.HealthCheckResponse.SERVING if healthy else health_pb2.HealthCheckResponse.NOT_SERVING
            await self._set_health(serving)

    async def _set_health(self, status: int) -> None:
        async def set_all() -> None:  # the health servicer lives on the gRPC loop
            for name in ("", *SERVICE_NAMES):
                await self.health.set(name, status)

        await self.rpc.run(set_all())

    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.shutdown_grace if grace is None else grace
        try:
            await self.loop_lag.stop()  # first: nothing below may leave its timer running
            await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
            await self.scheduler.shutdown(grace)
            await self.pruner.stop()
            await self.replicas.stop()
            self.bus.shutdown()
        finally:  # whatever failed above, the server stops taking calls and its loop and the store close
            try:
                await self._stop_server(min(grace, 5.0))
            finally:
                self.rpc.close()
                self.store.close()

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    service = Service(settings)
    await service.start()
    settle_gc()
    host = settings.listen.rsplit(":", 1)[0]
    log.info("serverprep listening on %s:%s (database %s)", host, service.port, safe_url(settings.url))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: running steps get %.0f s to finish", settings.shutdown_grace)
    await service.stop()


#: Allocations of container objects, less deallocations, between two collections of the youngest
#: generation (Python's default is 700). Each line of output is a LogEntry that lives until it is
#: stored and has left the live readers' window, so at 100,000 lines/s the default collected
#: 400 times a second, and every entry was visited in each generation before it was freed.
GC_YOUNGEST = 10_000


def settle_gc() -> None:
    """Once the service is up: what start-up made (modules, protobuf descriptors, gRPC and asyncssh:
    about 145,000 objects the collector visited in every full collection) leaves the collector's
    sight for good, and the youngest generation is collected less often.

    In the log bench (100,000 lines/s, 10 readers) full collections took 36 ms each (median) and 1.4 s
    in all, and set the p99 latency of the paced phase; see bench/README.md, fifth round.
    """
    gc.collect()  # what start-up left as garbage is freed, not kept for good
    gc.freeze()
    gc.set_threshold(GC_YOUNGEST, *gc.get_threshold()[1:])


class _Handlers:
    """Stands in for a server to take the method handlers the generated code registers."""

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.service, self.handlers = service, handlers


def stream_logs_serializer(response: bytes | preparations_pb2.StreamLogsResponse) -> bytes:
    """StreamLogs sends messages it encoded itself (bytes); a message object is encoded as usual."""
    return response if isinstance(response, bytes) else response.SerializeToString()


def _add_preparation_service(server: grpc.aio.Server, servicer: PreparationService) -> None:
    """The generated registration, with StreamLogs' messages passed through already encoded."""
    taken = _Handlers()
    preparations_pb2_grpc.add_PreparationServiceServicer_to_server(servicer, taken)
    handlers = dict(taken.handlers)
    logs = handlers["StreamLogs"]
    handlers["StreamLogs"] = grpc.unary_stream_rpc_method_handler(
        logs.unary_stream, request_deserializer=logs.request_deserializer, response_serializer=stream_logs_serializer
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(taken.service, handlers),))
    server.add_registered_method_handlers(taken.service, handlers)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def safe_url(url: str) -> str:
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

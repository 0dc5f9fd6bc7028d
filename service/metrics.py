"""Prometheus metrics: the only module that imports prometheus_client.

Names follow Prometheus conventions (``serverprep_`` prefix, base units, ``_total`` counters).
Everything is in one registry of the service's own, served by :func:`serve_metrics` on its own
address (``--metrics-listen``), never on the API port.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds: from a quick check (10 ms) to a long package install (30 min).
STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

BUILD = Info("serverprep_build", "Version of the running service.", registry=REGISTRY)
PREPARATIONS = Counter(
    "serverprep_preparations_total", "Preparations that ended, by final state, failure reason and OS driver.",
    ["state", "reason", "driver"], registry=REGISTRY,
)
ACTIVE = Gauge("serverprep_preparations_active", "Preparations of this replica now, by state (PENDING waits for a slot).",
               ["state"], registry=REGISTRY)
STEP_SECONDS = Histogram("serverprep_step_duration_seconds", "How long steps took, by step and result.",
                         ["step", "result"], buckets=STEP_BUCKETS, registry=REGISTRY)
SSH_CONNECT_SECONDS = Histogram("serverprep_ssh_connect_seconds", "Time to open and log in an SSH connection to a server.",
                                buckets=RPC_BUCKETS, registry=REGISTRY)
SSH_CONNECT_FAILURES = Counter("serverprep_ssh_connect_failures_total", "SSH connections that failed, by reason.",
                               ["reason"], registry=REGISTRY)
LOG_READERS = Gauge("serverprep_log_readers", "StreamLogs calls following a preparation now.", registry=REGISTRY)
LOG_BACKLOG = Gauge("serverprep_log_backlog_bytes", "Log entries waiting to be stored, in bytes (text and about 200 per entry).",
                    registry=REGISTRY)
LOG_HOLDS = Counter("serverprep_log_holds_total", "Times the log backlog filled and reading command output paused.",
                    registry=REGISTRY)
LOG_LINES = Counter("serverprep_log_lines_stored_total", "Log entries stored.", registry=REGISTRY)
LOG_LINES_DROPPED = Counter("serverprep_log_lines_dropped_total", "Command output lines counted but not stored (output limit).",
                            registry=REGISTRY)
DB_TRANSACTIONS = Counter("serverprep_db_calls_total", "Calls to the database threads, by kind (read, write, or checkpoint: the WAL copied back beside the writer).",
                          ["kind"], registry=REGISTRY)
DB_SECONDS = Histogram("serverprep_db_call_seconds", "Time a database call took on its database thread.",
                       ["kind"], buckets=RPC_BUCKETS, registry=REGISTRY)
RPCS = Counter("serverprep_rpc_requests_total", "API calls handled, by method and gRPC status code.",
               ["method", "code"], registry=REGISTRY)
RPC_SECONDS = Histogram("serverprep_rpc_duration_seconds", "API call latency (streams: until they end), by method.",
                        ["method"], buckets=RPC_BUCKETS, registry=REGISTRY)
#: Seconds: a healthy loop is late by well under a millisecond; a starved one by seconds.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
LOOP_LAG = Histogram("serverprep_event_loop_lag_seconds",
                     "How late the engine loop ran a timer due every 0.1 s (a sample of what the calls' work, SSH "
                     "packets and database answers wait for the loop; the gRPC loop that takes calls is another).",
                     buckets=LAG_BUCKETS, registry=REGISTRY)
REJECTED = Counter("serverprep_rpc_rejected_total", "API calls refused before they ran, by reason.", ["reason"], registry=REGISTRY)
TAKEOVERS = Counter("serverprep_replica_takeovers_total", "Preparations taken over from a silent replica, by what was done.",
                    ["action"], registry=REGISTRY)


def serve_metrics(listen: str) -> None:
    """Serve /metrics on ``host:port`` from a thread of its own."""
    host, _, port = listen.rpartition(":")
    start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=REGISTRY)


class LoopLag:
    """Observes ``serverprep_event_loop_lag_seconds``: a timer due every ``interval`` s, and how late it ran.

    The work of every call, every SSH packet and every database answer waits for the engine loop
    (the gRPC loop only takes calls and hands them over); when it is busy or cannot get a core,
    this samples how long they wait (ten times a second:
    one long stall is one observation), as an operator can see it.
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="serverprep-loop-lag")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            LOOP_LAG.observe(max(0.0, loop.time() - due))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def record_build() -> None:
    try:
        BUILD.info({"version": version("serverprep")})
    except PackageNotFoundError:
        BUILD.info({"version": "unknown"})


def short_method(full: str) -> str:
    """/serverprep.v1.PreparationService/Prepare -> PreparationService/Prepare."""
    service, _, method = full.rpartition("/")
    return f"{service.rsplit('.', 1)[-1]}/{method}"


class RpcMetrics(grpc.aio.ServerInterceptor):
    """Counts every call by method and status code, and times it."""

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]], details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = short_method(details.method)
        kw = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started, failure = time.perf_counter(), None
                try:
                    return await inner(request, context)
                except BaseException as e:
                    failure = e
                    raise
                finally:
                    _observe(method, context, started, failure)

            return grpc.unary_unary_rpc_method_handler(unary, **kw)
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started, failure = time.perf_counter(), None
                try:
                    async with contextlib.aclosing(inner_stream(request, context)) as items:
                        async for item in items:
                            yield item
                except BaseException as e:
                    failure = e
                    raise
                finally:
                    _observe(method, context, started, failure)

            return grpc.unary_stream_rpc_method_handler(stream, **kw)
        return handler


def _observe(method: str, context: grpc.aio.ServicerContext, started: float, failure: BaseException | None) -> None:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        name = code.name
    elif isinstance(code, int):
        name = next((c.name for c in grpc.StatusCode if c.value[0] == code), str(code))
    elif failure is None:
        name = "OK"
    else:
        name = "CANCELLED" if isinstance(failure, asyncio.CancelledError) else "UNKNOWN"
    RPCS.labels(method, name).inc()
    RPC_SECONDS.labels(method).observe(time.perf_counter() - started)

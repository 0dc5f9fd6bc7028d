"""grpc.aio's completion queue drained of every wake-up byte per wake-up (serverprep.service.cqdrain),
on a real grpc.aio server: with the pinned grpcio, the reader is found and replaced, and after a
hundred events arrive while the loop is busy, one pass of the loop leaves no byte behind (grpcio's
own reader leaves all but one, and its poller thread blocks once some 265 pile up). What it does not
prove: how much faster the service is under load; bench/README.md measures that."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from serverprep.service.cqdrain import drain_wakeups, unread_bytes

EVENTS = 100


def reader_socket(loop: asyncio.AbstractEventLoop):
    """The socket whose reader drain_wakeups installed."""
    for key in loop._selector.get_map().values():  # type: ignore[attr-defined]
        if getattr(key.data[0]._callback, "__wrapped_reader__", False):
            return key.fileobj
    raise AssertionError("no draining reader on the loop")


def test_one_pass_reads_every_wakeup_byte():
    async def run() -> tuple[int, int, list[str]]:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        loop = asyncio.get_running_loop()
        try:
            assert drain_wakeups(loop), "grpcio's completion-queue reader not found: has grpcio changed?"
            assert drain_wakeups(loop)  # a second call finds it replaced and wraps nothing twice
            sock = reader_socket(loop)
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            stub = health_pb2_grpc.HealthStub(channel)
            watches = [stub.Watch(health_pb2.HealthCheckRequest()) for _ in range(EVENTS)]
            first = await asyncio.gather(*(asyncio.to_thread(next, w) for w in watches))
            assert {health_pb2.HealthCheckResponse.ServingStatus.Name(r.status) for r in first} == {"SERVING"}
            # The loop is busy (this callback blocks it) while the client cancels every watch: gRPC's
            # core completes one operation of each server call, and the poller writes a byte for each.
            for w in watches:
                w.cancel()
            deadline = time.monotonic() + 20
            while unread_bytes(sock) < EVENTS and time.monotonic() < deadline:
                time.sleep(0.01)
            waiting = unread_bytes(sock)
            for _ in range(3):  # a few passes: the reader runs in the first
                await asyncio.sleep(0)
            left = unread_bytes(sock)
            channel.close()
            return waiting, left, [str(w.code()) for w in watches]
        finally:
            await server.stop(0)

    waiting, left, codes = asyncio.run(run())
    assert waiting >= EVENTS, f"only {waiting} wake-up bytes arrived for {EVENTS} cancelled calls"
    assert left == 0, f"{left} of {waiting} wake-up bytes left after the reader ran (grpcio's own reader reads one)"
    assert set(codes) == {"StatusCode.CANCELLED"}

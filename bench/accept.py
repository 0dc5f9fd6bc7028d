"""What a busy event loop costs a grpc.aio server: a burst of calls, and many live streams.

    .venv/bin/python bench/accept.py --calls 300 --streams 100 --flips 20 --pass-ms 20 --rounds 2

A grpc.aio server with the health service, alone in its process, beside a task that makes every pass
of the event loop take ``--pass-ms`` of CPU (as a thousand preparations' SSH traffic does to
serverprep's loop). A client in another process then (1) sends ``--calls`` Check calls at once, and
(2) opens ``--streams`` Watch streams and counts the messages of ``--flips`` status changes, each
sent on every stream. Each round runs three ways, each in a fresh process, in turn: the server on the
busy loop with grpcio's own completion-queue reader (``grpcio``), the same with serverprep's
(``drain``, ``serverprep.service.cqdrain``), and the server on a loop of its own in a thread beside
the busy one (``own-loop``, as serverprep's ``RpcLoop``). Figures: wall time, passes of the busy
loop, and how the calls ended. No root, no serverprep service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from serverprep.service.cqdrain import drain_wakeups
from serverprep.service.rpcloop import RpcLoop

READERS = ("grpcio", "drain", "own-loop")
SERVICE = "bench"
NAMES = (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)


async def start(reader: str) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    srv = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    await servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    if reader != "grpcio" and not drain_wakeups(asyncio.get_running_loop()):
        raise SystemExit("bench: grpcio's completion-queue reader not found")
    return srv, servicer, port


async def server(reader: str, args: argparse.Namespace) -> dict:
    """``own-loop``: the gRPC server on a loop of its own in a thread (as serverprep's), the busy work on this one."""
    own = RpcLoop("bench-grpc") if reader == "own-loop" else None

    async def there(coro: Any) -> Any:
        return await (own.run(coro) if own else coro)

    srv, servicer, port = await there(start(reader))
    passes = 0

    async def busy() -> None:
        nonlocal passes
        while True:
            t = time.perf_counter()
            while time.perf_counter() - t < args.pass_ms / 1000:
                pass
            passes += 1
            await asyncio.sleep(0)

    spinner = asyncio.create_task(busy())
    client = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", str(port), "--calls", str(args.calls), "--streams", str(args.streams),
        "--flips", str(args.flips), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    assert client.stdout is not None and client.stdin is not None
    result: dict = {}
    await client.stdout.readline()  # the client is connected; the burst starts
    start_passes = passes
    line = json.loads(await client.stdout.readline())
    result["burst"] = {**line, "passes": passes - start_passes}
    await client.stdout.readline()  # every stream has its first message
    start_passes = passes
    for i in range(args.flips):
        await there(servicer.set(SERVICE, NAMES[(i + 1) % 2]))
        await asyncio.sleep(0)
    line = json.loads(await client.stdout.readline())
    result["streams"] = {**line, "passes": passes - start_passes}
    await client.wait()
    spinner.cancel()
    await there(srv.stop(0))
    if own:
        own.close()
    return result


async def client(port: int, calls: int, streams: int, flips: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=60)
        print("{}", flush=True)

        async def check() -> str:
            try:
                await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=120)
                return "OK"
            except grpc.aio.AioRpcError as e:
                return e.code().name

        t = time.perf_counter()
        codes = Counter(await asyncio.gather(*(check() for _ in range(calls))))
        print(json.dumps({"seconds": time.perf_counter() - t, "codes": codes}), flush=True)

        watches = [stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=300) for _ in range(streams)]
        for w in watches:
            await w.read()
        print("{}", flush=True)
        t = time.perf_counter()
        received = Counter()

        async def follow(w: grpc.aio.UnaryStreamCall) -> None:
            for _ in range(flips):
                # Watch sends a status only when it changes: flips that land before a read coalesce.
                try:
                    message = await asyncio.wait_for(w.read(), 120)
                except TimeoutError:
                    received["timed out"] += 1
                    return
                received["messages"] += 1
                if message.status == NAMES[flips % 2]:
                    return

        await asyncio.gather(*(follow(w) for w in watches))
        for w in watches:
            w.cancel()
        print(json.dumps({"seconds": time.perf_counter() - t, "codes": received}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--flips", type=int, default=20)
    parser.add_argument("--pass-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one", choices=READERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (1 <= args.calls <= 5000 and 1 <= args.streams <= 2000 and 1 <= args.flips <= 200 and 0 <= args.pass_ms <= 200
            and 1 <= args.rounds <= 10):
        raise SystemExit("bench: --calls 1..5000, --streams 1..2000, --flips 1..200, --pass-ms 0..200, --rounds 1..10")
    if args.client:
        asyncio.run(client(args.client, args.calls, args.streams, args.flips))
        return
    if args.one:
        print(json.dumps(asyncio.run(server(args.one, args))))
        return
    print(f"grpc.aio server, each loop pass {args.pass_ms:g} ms; {args.calls} Check calls at once; "
          f"{args.streams} Watch streams x {args.flips} status changes")
    for r in range(args.rounds):
        for reader in (READERS if r % 2 == 0 else READERS[::-1]):
            argv = [sys.executable, __file__, "--one", reader, "--calls", str(args.calls), "--streams", str(args.streams),
                    "--flips", str(args.flips), "--pass-ms", str(args.pass_ms)]
            out = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True, timeout=900).stdout)
            b, s = out["burst"], out["streams"]
            print(f"round {r + 1} {reader:8}: burst {b['seconds']:6.1f} s, {b['passes']} passes "
                  f"({b['passes'] / args.calls:.1f} per call), {dict(b['codes'])}; "
                  f"streams {s['seconds']:6.1f} s, {s['passes']} passes, {dict(s['codes'])}", flush=True)


if __name__ == "__main__":
    main()

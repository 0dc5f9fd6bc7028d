"""The web gateway's sweep of a large fleet: with the servers' briefs (latest_preparation) against a Status call for each.

    .venv/bin/python bench/sweep.py --servers 1000 --prepared 200 --times 10

The real `serverprep serve` (SQLite, a fresh data directory) with --servers registrations of a
loopback port that refuses connections; --prepared of them are prepared --times times each, one
after another (each preparation fails at once, CONNECTION_REFUSED, and is stored as any other:
steps, log entries). Then the gateway's own sweep (serverprep.clients.web.fleet) runs --sweeps
times as it runs today, and as many times with the briefs removed from ListServers' answers, which
is the sweep of a gateway that asks Status for every server not followed (what it did before the
brief, and still does for a service that sends none). Printed: the median and every sweep's wall
time, and how many Status calls each made. No root needed; nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import sprun
from fleethost import free_ports

from serverprep.clients.aio import AsyncClient
from serverprep.clients.types import TERMINAL, Server
from serverprep.clients.web import fleet, sse

KEY_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ"


class Counting(AsyncClient):
    """The gateway's client, counting its Status calls; ``briefs=False`` strips latest_preparation."""

    briefs = True
    status_calls = 0

    async def status(self, server: str, preparation_id: str = ""):  # type: ignore[no-untyped-def]
        self.status_calls += 1
        return await super().status(server, preparation_id)

    async def list_servers(self, page_size: int = 100) -> AsyncIterator[Server]:
        async for server in super().list_servers(page_size):
            if not self.briefs:
                server.ClearField("latest_preparation")
            yield server


async def fill(client: AsyncClient, servers: int, prepared: int, times: int) -> None:
    refused = free_ports(1)[0]  # bound and closed again: nothing listens there
    slots = asyncio.Semaphore(16)

    async def add(name: str) -> None:
        async with slots:
            await client.create_server(name, host="127.0.0.1", port=refused, user="nobody", password="not-used", host_key=KEY_LINE)

    names = [f"n{i:05d}" for i in range(servers)]
    await asyncio.gather(*(add(n) for n in names))
    for _ in range(times):
        ids = {n: (await client.prepare(n, docker_source="distro")).id for n in names[:prepared]}
        for name, prep_id in ids.items():
            while (await client.status(name, prep_id)).state not in TERMINAL:
                await asyncio.sleep(0.05)


async def sweeps(address: str, count: int, briefs: bool) -> tuple[list[float], list[int]]:
    async with Counting(address) as client:
        client.briefs = briefs
        gateway = fleet.Fleet(client, sse.Hub(max_subscribers=1, backlog=10), refresh=60, max_streams=0)
        await gateway.sweep()  # the first sweep learns every row
        took, calls = [], []
        for _ in range(count):
            client.status_calls = 0
            began = time.perf_counter()
            await gateway.sweep()
            took.append(time.perf_counter() - began)
            calls.append(client.status_calls)
        await gateway.close()
        return took, calls


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", type=int, default=1000, choices=range(1, 10_001), metavar="1..10000")
    p.add_argument("--prepared", type=int, default=200, help="servers prepared (the first ones)")
    p.add_argument("--times", type=int, default=10, choices=range(1, 101), metavar="1..100", help="preparations of each")
    p.add_argument("--sweeps", type=int, default=5, choices=range(1, 51), metavar="1..50")
    args = p.parse_args(argv)
    args.prepared = min(args.prepared, args.servers)
    with tempfile.TemporaryDirectory(prefix="sp-sweep-") as work, sprun.service(Path(work) / "data", 16) as svc:
        async def run() -> None:
            async with AsyncClient(svc.address) as client:
                began = time.perf_counter()
                await fill(client, args.servers, args.prepared, args.times)
                print(f"{args.servers} servers, {args.prepared} of them prepared {args.times} times each "
                      f"({time.perf_counter() - began:.0f} s to set up); {args.sweeps} sweeps each way:")
            for label, briefs in (("with the briefs (today)", True), ("a Status call per server", False)):
                took, calls = await sweeps(svc.address, args.sweeps, briefs)
                print(f"  {label:<26} median {statistics.median(took) * 1000:7.0f} ms  "
                      f"(sweeps: {', '.join(f'{t * 1000:.0f}' for t in took)} ms; Status calls per sweep: {max(calls)})")
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

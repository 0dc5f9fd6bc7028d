"""serverprep under fleet load: the real `serverprep serve` process, driven over its gRPC API only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import procs
from fleethost import FleetHost, free_ports
from grpc_health.v1 import health_pb2, health_pb2_grpc
from measure import WalCommits, buckets, commits_between, scrape, vm_field

from serverprep.v1 import preparations_pb2 as pb
from serverprep.v1 import preparations_pb2_grpc as pb_grpc
from serverprep.v1 import servers_pb2 as spb
from serverprep.v1 import servers_pb2_grpc as spb_grpc

TERMINAL = (pb.PREPARATION_STATE_SUCCEEDED, pb.PREPARATION_STATE_FAILED, pb.PREPARATION_STATE_CANCELLED)
RPC_TIMEOUT = 60.0


@dataclass
class Service:
    proc: subprocess.Popen
    address: str
    data_dir: Path
    #: The service's own /metrics page.
    metrics: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def commits(self) -> int | None:
        return WalCommits(self.data_dir / "serverprep.db-shm").read()


@contextlib.contextmanager
def service(data_dir: Path, max_concurrent: int, *extra: str, database_url: str = "") -> Iterator[Service]:
    """``serverprep serve`` as its own process on a free loopback port, with a fresh data directory."""
    data_dir.mkdir(parents=True, exist_ok=False)
    address, metrics = (f"127.0.0.1:{port}" for port in free_ports(2))
    argv = [
        *serve_command(), "--listen", address, "--data-dir", str(data_dir), "--max-concurrent", str(max_concurrent),
        "--metrics-listen", metrics, *extra,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if database_url:
        env["SERVERPREP_DATABASE_URL"] = database_url  # not in argv: it holds a password
    with open(data_dir / "service.log", "wb") as log:
        proc = procs.spawn(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_serving(address, proc, data_dir / "service.log")
        yield Service(proc, address, data_dir, f"http://{metrics}/metrics")
    finally:
        code = procs.stop(proc, grace=30)
        if code not in (0, -15, None):
            print(f"bench: serverprep serve exited with {code}; its log: {data_dir / 'service.log'}", file=sys.stderr)


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one run (dropped after); yields its URL."""
    try:
        import psycopg2
    except ImportError:
        raise SystemExit("bench: serverprep-postgres needs psycopg2 in the bench's Python (pip install psycopg2-binary)") from None
    import secrets

    name = f"serverprep_bench_{secrets.token_hex(6)}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        admin.cursor().execute(f"CREATE DATABASE {name}")
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def serve_command() -> list[str]:
    """`serverprep serve` of the environment the bench runs in (its console script, else the module)."""
    script = Path(sys.executable).parent / "serverprep"
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "serverprep.clients.cli", "serve"]


def _wait_serving(address: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"serverprep serve exited with {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(grpc.RpcError):
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.1)
    raise TimeoutError(f"serverprep serve at {address} not serving after {timeout:.0f} s")


def server_names(n: int) -> list[str]:
    return [f"s{i:04d}" for i in range(n)]


def probe_names(n: int) -> list[str]:
    """The servers of the Prepare probe (``prepare_fleet``), registered beside the fleet's."""
    return [f"p{i:04d}" for i in range(n)]


async def register(address: str, host: FleetHost, names: list[str], window: int = 16, first: int = 0) -> None:
    """N registrations of the one sshd, each with its key and pinned host key (spread over its
    listening sockets from the ``first``-th on)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = spb_grpc.ServerServiceStub(channel)
        slots = asyncio.Semaphore(window)

        async def one(index: int, name: str) -> None:
            request = spb.CreateServerRequest(
                name=name, host=host.host, port=host.port_for(first + index), user=host.user,
                credentials=spb.Credentials(private_key=host.key.private), host_key=host.host_key,
            )
            async with slots:
                await stub.CreateServer(request, timeout=RPC_TIMEOUT)

        await asyncio.gather(*(one(i, name) for i, name in enumerate(names)))


async def _follow(channel: grpc.aio.Channel, states: list[tuple[str, float]]) -> None:
    """Keep each state ``channel`` goes through, until cancelled (the calls connect it, as before)."""
    opened = time.perf_counter()
    state = channel.get_state()
    while True:
        states.append((state.name, round((time.perf_counter() - opened) * 1000, 1)))
        await channel.wait_for_state_change(state)
        state = channel.get_state()


@dataclass
class FleetResult:
    #: From sending the first Prepare to the latest end_time the service recorded.
    wall: float = float("nan")
    #: From sending the first Prepare to seeing the last terminal state in a Status poll.
    observed: float = float("nan")
    failures: list[str] = field(default_factory=list)
    prepare_ms: list[float] = field(default_factory=list)
    #: Of each Prepare call, the part from the service writing the preparation (its create_time, on
    #: this machine's clock) to the answer reaching the bench: the commit, the handler's end, the way back.
    prepare_back_ms: list[float] = field(default_factory=list)
    status_ms: list[float] = field(default_factory=list)
    #: The bench's channel to the service: each state it went through while the fleet ran, with the
    #: milliseconds since it was opened (a failed connection attempt shows as TRANSIENT_FAILURE).
    channel_states: list[tuple[str, float]] = field(default_factory=list)
    #: The Prepare probe's calls, one at a time while the fleet runs.
    probe_ms: list[float] = field(default_factory=list)
    peak_rss_kib: int = 0
    db_commits: int | None = None
    #: Log entries the live readers received, and problems they saw (gaps, errors).
    reader_entries: int = 0
    reader_problems: list[str] = field(default_factory=list)
    #: The service's own histograms over the run (bucket bound -> count): see SERVICE_VIEW.
    histograms: dict[str, dict[float, float]] = field(default_factory=dict)


#: What the service itself measured, from its /metrics: a call's time from its handler's start to
#: its end (not the time it waited before that), and how late its event loop ran (10 ticks a second).
SERVICE_VIEW = {
    "Prepare": ("serverprep_rpc_duration_seconds", {"method": "PreparationService/Prepare"}),
    "Status": ("serverprep_rpc_duration_seconds", {"method": "PreparationService/Status"}),
    "loop lag": ("serverprep_event_loop_lag_seconds", {}),
}


def service_view(url: str) -> dict[str, dict[float, float]]:
    samples = scrape(url)
    return {key: buckets(samples, name, **labels) for key, (name, labels) in SERVICE_VIEW.items()}


async def prepare_fleet(
    svc: Service,
    names: list[str],
    *,
    readers: int,
    status_rate: float,
    prepare_window: int,
    timeout: float,
    probes: Sequence[str] = (),
    probe_interval: float = 1.0,
) -> FleetResult:
    """Prepare every server at once; follow them with Status polls and a few live StreamLogs readers.

    Status polls go at ``status_rate`` calls per second in all (one in flight), cycling over the
    servers not yet finished: a steady load like a dashboard, and the source of the Status latencies.

    The Prepare probe: once every server's Prepare is answered, and while their preparations run,
    one more Prepare every ``probe_interval`` seconds, one at a time, each for a server of its own
    from ``probes`` (a client starting one more preparation on a busy service). Its latencies are
    ``probe_ms``; its preparations must succeed too, but their times are not the fleet's wall time.
    """
    result = FleetResult()
    options = pb.PrepareOptions(docker_source=pb.DOCKER_SOURCE_DISTRO)
    sampled = {names[i * len(names) // readers] for i in range(readers)} if readers else set()
    ends: dict[str, float] = {}
    async with grpc.aio.insecure_channel(svc.address) as channel:
        follower = asyncio.create_task(_follow(channel, result.channel_states))
        stub = pb_grpc.PreparationServiceStub(channel)
        before, view_before = svc.commits(), service_view(svc.metrics)
        view_after: dict[str, dict[float, float]] = {}
        slots = asyncio.Semaphore(prepare_window)
        prep_ids: dict[str, str] = {}
        readers_last: dict[str, int] = {}
        reader_tasks: list[asyncio.Task[None]] = []
        started = time.time()

        async def prepare(name: str) -> None:
            async with slots:
                t = time.perf_counter()
                try:
                    response = await stub.Prepare(pb.PrepareRequest(server=name, options=options), timeout=RPC_TIMEOUT)
                except grpc.aio.AioRpcError as e:
                    result.failures.append(f"{name}: Prepare: {e.code().name}: {e.details()}")
                    ends[name] = float("nan")
                    return
                result.prepare_ms.append((time.perf_counter() - t) * 1000)
                result.prepare_back_ms.append((time.time() - response.preparation.create_time.ToNanoseconds() / 1e9) * 1000)
                prep_ids[name] = response.preparation.id
                if name in sampled:
                    reader_tasks.append(asyncio.create_task(_read_logs(stub, name, response.preparation.id, result, readers_last)))

        async def poll() -> None:
            pending = [n for n in names]
            interval = 1.0 / status_rate
            while pending:
                for name in list(pending):
                    if name in ends:
                        pending.remove(name)
                        continue
                    if name not in prep_ids:
                        continue
                    t0 = time.perf_counter()
                    try:
                        prep = (await stub.Status(pb.StatusRequest(server=name, preparation_id=prep_ids[name]), timeout=RPC_TIMEOUT)).preparation
                    except grpc.aio.AioRpcError as e:
                        result.failures.append(f"{name}: Status: {e.code().name}: {e.details()}")
                        ends[name] = float("nan")
                        continue
                    took = time.perf_counter() - t0
                    result.status_ms.append(took * 1000)
                    if prep.state in TERMINAL:
                        ends[name] = prep.end_time.ToNanoseconds() / 1e9
                        pending.remove(name)
                        if prep.state != pb.PREPARATION_STATE_SUCCEEDED:
                            result.failures.append(f"{name}: {pb.PreparationState.Name(prep.state)}: {prep.failure.reason}: {prep.failure.message}")
                    await asyncio.sleep(max(0.0, interval - took))
                if pending:
                    await asyncio.sleep(interval)

        async def probe() -> None:
            probe_ids: dict[str, str] = {}
            for name in probes:
                await asyncio.sleep(probe_interval)
                if poller.done():
                    break  # the fleet has finished: no longer "while they run"
                t0 = time.perf_counter()
                try:
                    response = await stub.Prepare(pb.PrepareRequest(server=name, options=options), timeout=RPC_TIMEOUT)
                except grpc.aio.AioRpcError as e:
                    result.failures.append(f"{name}: Prepare (probe): {e.code().name}: {e.details()}")
                    continue
                result.probe_ms.append((time.perf_counter() - t0) * 1000)
                probe_ids[name] = response.preparation.id
            for name, prep_id in probe_ids.items():  # each must end well too
                try:
                    while (prep := (await stub.Status(pb.StatusRequest(server=name, preparation_id=prep_id), timeout=RPC_TIMEOUT))
                           .preparation).state not in TERMINAL:
                        await asyncio.sleep(0.5)
                except grpc.aio.AioRpcError as e:
                    result.failures.append(f"{name}: Status (probe): {e.code().name}: {e.details()}")
                    continue
                if prep.state != pb.PREPARATION_STATE_SUCCEEDED:
                    result.failures.append(f"{name} (probe): {pb.PreparationState.Name(prep.state)}: {prep.failure.reason}: "
                                           f"{prep.failure.message}")

        poller = asyncio.create_task(poll())
        prober: asyncio.Task[None] | None = None
        try:
            await asyncio.wait_for(asyncio.gather(*(prepare(n) for n in names)), timeout)
            prober = asyncio.create_task(probe()) if probes else None
            await asyncio.wait_for(poller, max(1.0, timeout - (time.time() - started)))
            result.observed = time.time() - started
            view_after = service_view(svc.metrics)  # before the readers' last reads and checks
            await asyncio.wait_for(asyncio.gather(*reader_tasks, *([prober] if prober else [])), 60)
        except TimeoutError:
            result.failures.append(f"not all {len(names)} preparations finished within {timeout:.0f} s ({len(ends)} did)")
        finally:
            for task in (*reader_tasks, poller, follower, *([prober] if prober else [])):
                task.cancel()
        for name, last in readers_last.items():
            stored = (await stub.Status(pb.StatusRequest(server=name, preparation_id=prep_ids[name]), timeout=RPC_TIMEOUT)).preparation.last_seq
            if last != stored:
                result.reader_problems.append(f"{name}: the reader's last entry is {last}, the stored last is {stored}")
        finished = [t for t in ends.values() if t == t]
        if finished and not result.failures:
            result.wall = max(finished) - started
        result.db_commits = commits_between(before, svc.commits())
        after = view_after or service_view(svc.metrics)
        result.histograms = {key: {le: n - view_before[key].get(le, 0) for le, n in after[key].items()} for key in after}
    result.peak_rss_kib = vm_field(svc.pid, "VmHWM")
    return result


async def _read_logs(
    stub: pb_grpc.PreparationServiceStub, name: str, prep_id: str, result: FleetResult, lasts: dict[str, int]
) -> None:
    """A live reader: every entry in order without gaps, until the preparation ends."""
    last = 0
    try:
        async for response in stub.StreamLogs(pb.StreamLogsRequest(server=name, preparation_id=prep_id)):
            for entry in response.entries:
                if entry.seq != last + 1:
                    result.reader_problems.append(f"{name}: entry {entry.seq} after {last}")
                last = entry.seq
                result.reader_entries += 1
        lasts[name] = last
    except grpc.aio.AioRpcError as e:
        result.reader_problems.append(f"{name}: StreamLogs: {e.code().name}: {e.details()}")

"""Log pipeline benchmark: a remote command prints M lines; lines/s to the database and to 10 live readers.

    sudo .venv/bin/python bench/logs.py --lines 100000 --rounds 3

Three phases per round, each one preparation of a simulated server (see bench/README.md):
  burst   the command prints M lines as fast as it can: lines/s remote -> database, -> readers
  paced   it prints M lines at --rate lines/s: latency line produced -> line received (p50, p99)
  stalled one reader that never reads, no other: the service's memory while M lines pass
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import re
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import procs
import profile_summary
import sprun
from fleethost import FleetHost, fleet_host
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from measure import RssSampler, loadavg, median, vm_field, weighted_percentile

from serverprep.v1 import preparations_pb2 as pb
from serverprep.v1 import preparations_pb2_grpc as pb_grpc

MAX_LINES = 2_000_000
STREAM_LOGS = "/serverprep.v1.PreparationService/StreamLogs"

# Runs on the simulated server in place of `docker info` (the verify_docker step, the last one).
# Every line carries its number and the time it was written; lines go out in batches of 100.
PRODUCER = r"""
import sys, time
lines, rate = int(sys.argv[1]), float(sys.argv[2])
pad = "Get:1 http://deb.debian.org/debian bookworm/main amd64 Packages [8,786 kB]"
out = sys.stdout
start = time.time()
for first in range(0, lines, 100):
    if rate:
        delay = start + first / rate - time.time()
        if delay > 0:
            time.sleep(delay)
    now = "%.6f" % time.time()
    out.write("".join("@L %d T %s %s\n" % (i, now, pad) for i in range(first, min(first + 100, lines))))
    out.flush()
"""

LINE = re.compile(rb"@L (\d+) T (\d+\.\d+) ")


@dataclass
class Reader:
    """A live StreamLogs reader that takes the raw bytes (no protobuf parsing in Python, so it keeps up)."""

    lines: int = 0
    #: (latency of the oldest line in a message, lines in it): each line is counted with the
    #: latency of the oldest line of its message, an upper bound of its own.
    latencies: list[tuple[float, int]] = field(default_factory=list)
    last_at: float = float("nan")
    #: Times the service cut this reader off for falling behind (it then resumed by sequence).
    cut_offs: int = 0
    messages: int = 0
    #: CPU seconds the reader's thread used, to tell a slow reader from a slow service.
    cpu: float = 0.0
    error: str = ""


def read_raw(address: str, request: pb.StreamLogsRequest, total: int, reader: Reader, stalled: threading.Event | None) -> None:
    """Follow one preparation's log as a client would: when cut off for being slow, resume by sequence."""
    # Own connection per reader: by default gRPC Python shares one among channels to one address.
    with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        method = channel.unary_stream(STREAM_LOGS, request_serializer=pb.StreamLogsRequest.SerializeToString)
        while True:
            call = method(request)
            try:
                if stalled is not None:
                    stalled.wait()  # holds the stream open without reading until released
                for message in call:
                    now = time.time()
                    reader.messages += 1
                    reader.cpu = time.thread_time()
                    n = message.count(b"@L ")
                    if not n:
                        continue
                    first = LINE.search(message)
                    if first:
                        reader.latencies.append((now - float(first.group(2)), n))
                    reader.lines += n
                    if reader.lines >= total:
                        reader.last_at = now
                return
            except grpc.RpcError as e:
                resume = _resume_after(e)
                if stalled is not None or resume is None or reader.cut_offs >= 100:
                    reader.error = f"{e.code().name}: {e.details()}"
                    return
                reader.cut_offs += 1
                # Lines at or before the resume point were counted already (the server stops at a message boundary).
                request = pb.StreamLogsRequest(server=request.server, preparation_id=request.preparation_id, after_seq=resume)


def _resume_after(error: grpc.RpcError) -> int | None:
    """The sequence number to resume after, when the service cut the reader off for being slow."""
    if error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            value = info.metadata.get("resume_after_seq", "")
            return int(value) if value.isdigit() else None
    return None


@dataclass
class Phase:
    name: str
    lines: int
    to_db: float = float("nan")
    to_readers: float = float("nan")
    latency_p50_ms: float = float("nan")
    latency_p99_ms: float = float("nan")
    #: The longest a printed line waited to be stored, seen by the Status polls (the age of the
    #: oldest line printed and not stored yet, at each poll).
    db_lag_ms: float = float("nan")
    rss_kib: list[tuple[float, int]] = field(default_factory=list)
    #: What the stalled reader was told when it finally read (expected: cut off, resume by sequence).
    cut_off: str = ""
    #: Times live readers were cut off for falling behind and resumed.
    resumed: int = 0
    #: CPU seconds the bench process (all its readers) used, and the phase's wall seconds.
    bench_cpu: float = 0.0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def run_phase(
    svc: sprun.Service, host: FleetHost, name: str, lines: int, rate: float, readers: int, stall: bool, timeout: float,
    profile: Path | None = None,
) -> Phase:
    phase = Phase(name, lines)
    profiler = profile_summary.record(svc.pid, profile / "serverprep-logs.txt") if profile else None
    cpu_before, wall_before = _cpu(), time.monotonic()
    producer = host.work / "producer.py"
    host.behave("docker", f'if [ "$1" = info ]; then exec /usr/bin/python3 {producer} {lines} {rate}; fi')
    with grpc.insecure_channel(svc.address) as channel:
        stub = pb_grpc.PreparationServiceStub(channel)
        options = pb.PrepareOptions(docker_source=pb.DOCKER_SOURCE_DISTRO, step_timeout_seconds=int(timeout))
        prep = stub.Prepare(pb.PrepareRequest(server="s0000", options=options), timeout=30).preparation
        request = pb.StreamLogsRequest(server="s0000", preparation_id=prep.id)
        release = threading.Event() if stall else None
        states = [Reader() for _ in range(readers)]
        threads = [
            threading.Thread(target=read_raw, args=(svc.address, request, lines, r, release), daemon=True) for r in states
        ]
        for t in threads:
            t.start()
        rss = RssSampler(svc.pid).start() if stall else None
        polls: list[tuple[float, int, int]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = stub.Status(pb.StatusRequest(server="s0000", preparation_id=prep.id), timeout=30).preparation
            polls.append((time.time(), status.last_seq, status.state))
            if status.state in sprun.TERMINAL:
                break
            time.sleep(0.02)
        else:
            phase.problems.append(f"the preparation did not finish within {timeout:.0f} s")
        if rss is not None:
            phase.rss_kib = rss.stop()
        if release is not None:
            release.set()
        for t in threads:
            t.join(max(1.0, deadline - time.monotonic()))
        phase.bench_cpu, phase.seconds = _cpu() - cpu_before, time.monotonic() - wall_before
        if profiler is not None:
            profile_summary.finish(profiler)  # before the bench's own check below reads every stored line back
        if polls and polls[-1][2] != pb.PREPARATION_STATE_SUCCEEDED:
            phase.problems.append(f"the preparation ended {pb.PreparationState.Name(polls[-1][2])}")
        produced = _stored_lines(stub, prep.id)
        if len(produced) != lines:
            phase.problems.append("the database does not hold every line the command printed")
            return phase
        first_at, last_seq = produced[0][1], produced[-1][0]
        stored_at = next((t for t, seq, _ in polls if seq >= last_seq), float("nan"))
        phase.to_db = lines / (stored_at - first_at)
        phase.db_lag_ms = _db_lag(polls, produced, stored_at) * 1000
        for i, r in enumerate(states):
            if r.error and not stall:
                phase.problems.append(f"reader {i}: {r.error}")
            elif not stall and r.lines != lines:
                phase.problems.append(f"reader {i} received {r.lines} of {lines} lines")
        if stall:
            phase.cut_off = "; ".join(r.error for r in states if r.error) or "not cut off"
        elif states:
            phase.resumed = sum(r.cut_offs for r in states)
            phase.to_readers = lines / (max(r.last_at for r in states) - first_at)
            pairs = [pair for r in states for pair in r.latencies]
            phase.latency_p50_ms = weighted_percentile(pairs, 50) * 1000
            phase.latency_p99_ms = weighted_percentile(pairs, 99) * 1000
    return phase


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stored_lines(stub: pb_grpc.PreparationServiceStub, prep_id: str) -> list[tuple[int, float]]:
    """The command's lines as stored, in order: (sequence number, time the command printed it)."""
    produced = []
    for response in stub.StreamLogs(pb.StreamLogsRequest(server="s0000", preparation_id=prep_id, no_follow=True), timeout=300):
        for entry in response.entries:
            if m := LINE.match(entry.text.encode()):
                produced.append((entry.seq, float(m.group(2))))
    return produced


def _db_lag(polls: list[tuple[float, int, int]], produced: list[tuple[int, float]], stored_at: float) -> float:
    """The longest a printed line had waited to be stored at any Status poll until the last one was
    stored: at each poll, the age of the first line not stored yet, if it was printed by then."""
    seqs = [seq for seq, _ in produced]
    lag = 0.0
    for at, last_seq, _ in polls:
        if at > stored_at:
            break
        waiting = bisect.bisect_right(seqs, last_seq)  # the first line not stored at this poll
        if waiting < len(produced) and produced[waiting][1] < at:
            lag = max(lag, at - produced[waiting][1])
    return lag


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=100_000, help=f"lines the remote command prints per phase (1..{MAX_LINES})")
    p.add_argument("--rate", type=float, default=100_000, help="lines per second in the paced phase (default 100000)")
    p.add_argument("--readers", type=int, default=10, help="live readers in the burst and paced phases (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, medians reported (1..10)")
    p.add_argument("--phase-timeout", type=float, default=300, help="seconds one phase may take (default 300)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds the whole benchmark may take (default 1800)")
    p.add_argument("--profile", type=Path, help="run py-spy on `serverprep serve` during the first burst phase; output here")
    args = p.parse_args(argv)
    if not 1 <= args.lines <= MAX_LINES or not 1 <= args.rounds <= 10 or not 0 <= args.readers <= 50 or args.rate <= 0:
        p.error(f"--lines 1..{MAX_LINES}, --rounds 1..10, --readers 0..50, --rate > 0")
    phases: list[Phase] = []
    load_before = loadavg()
    with procs.exclusive(), procs.guarded(args.timeout), tempfile.TemporaryDirectory(prefix="spb-logs-") as tmp, fleet_host(1) as host:
        (host.work / "producer.py").write_text(PRODUCER)
        (host.work / "producer.py").chmod(0o644)
        # Every line the command prints must be stored: lift the per-preparation output cap above what a round prints.
        cap = str(4 * args.lines * args.rounds + 100_000)
        with sprun.service(Path(tmp) / "data", 1, "--max-log-lines", cap, "--max-log-bytes", str(200 * int(cap))) as svc:
            asyncio.run(sprun.register(svc.address, host, ["s0000"]))
            baseline = vm_field(svc.pid, "VmRSS")
            for rnd in range(args.rounds):
                for name, rate, readers, stall in (
                    ("burst", 0.0, args.readers, False),
                    ("paced", args.rate, args.readers, False),
                    ("stalled", 0.0, 1, True),
                ):
                    profile = args.profile if rnd == 0 and name == "burst" else None
                    phase = run_phase(svc, host, name, args.lines, rate, readers, stall, args.phase_timeout, profile)
                    phases.append(phase)
                    print(f"round {rnd + 1} {name}: {phase.to_db:,.0f} lines/s to the database (a line waited at most "
                          f"{phase.db_lag_ms:,.0f} ms to be stored), "
                          f"{phase.to_readers:,.0f} to readers, p99 {phase.latency_p99_ms:,.0f} ms, "
                          f"{phase.resumed} reader cut-offs (resumed), the bench used {phase.bench_cpu:.1f} s CPU in {phase.seconds:.1f} s"
                          + (f"; stalled reader: {phase.cut_off}" if stall else "")
                          + (f"; {'; '.join(phase.problems)}" if phase.problems else ""), flush=True)
            peak = vm_field(svc.pid, "VmHWM")
    print(report(phases, args, baseline, peak, (load_before, loadavg())))
    if args.profile:
        print(f"\n### py-spy profile of `serverprep serve` during a burst phase\n\n"
              f"{profile_summary.summarize(args.profile / 'serverprep-logs.txt')}")
    return 1 if any(p.problems for p in phases) else 0


def _reader_cost(phases: list[Phase]) -> str:
    share = median([p.bench_cpu / p.seconds * 100 for p in phases if p.name != "stalled" and p.seconds])
    verdict = "so they are not what limits the figures" if share < 50 else "so they may be part of what limits the figures"
    return f"The bench's readers used {share:.0f} % of one core (median over phases), {verdict}."


def report(phases: list[Phase], args: argparse.Namespace, baseline_kib: int, peak_kib: int, load: tuple[str, str]) -> str:
    def med(name: str, attr: str) -> float:
        return median([getattr(p, attr) for p in phases if p.name == name and getattr(p, attr) == getattr(p, attr)])

    stalled = [p for p in phases if p.name == "stalled"]
    rss_max = max((kib for p in stalled for _, kib in p.rss_kib), default=0)
    rss_end = median([p.rss_kib[-1][1] for p in stalled if p.rss_kib])
    # The phase's own growth: earlier phases leave the process larger (freed memory is kept by the allocator).
    rss_start = median([p.rss_kib[0][1] for p in stalled if p.rss_kib])
    rss_growth = median([max(kib for _, kib in p.rss_kib) - p.rss_kib[0][1] for p in stalled if p.rss_kib])
    return "\n".join([
        "",
        f"### Log pipeline ({args.lines:,} lines per phase, {args.readers} live readers, {args.rounds} rounds, medians; "
        f"load average before {load[0]}, after {load[1]})",
        "",
        "| phase | lines/s remote -> database | lines/s remote -> all readers | latency produced -> received p50 | p99 "
        "| a line waited to be stored, at most |",
        "|---|---|---|---|---|---|",
        f"| burst (as fast as the command prints) | {med('burst', 'to_db'):,.0f} | {med('burst', 'to_readers'):,.0f} "
        f"| {med('burst', 'latency_p50_ms'):,.0f} ms | {med('burst', 'latency_p99_ms'):,.0f} ms | {med('burst', 'db_lag_ms'):,.0f} ms |",
        f"| paced at {args.rate:,.0f} lines/s | {med('paced', 'to_db'):,.0f} | {med('paced', 'to_readers'):,.0f} "
        f"| {med('paced', 'latency_p50_ms'):,.0f} ms | {med('paced', 'latency_p99_ms'):,.0f} ms | {med('paced', 'db_lag_ms'):,.0f} ms |",
        "",
        f"Service memory (VmRSS) with one stalled reader while {args.lines:,} lines pass: {baseline_kib / 1024:.0f} MiB "
        f"before the first phase, {rss_start / 1024:.0f} MiB when the stalled phase began (median), growth during it "
        f"{rss_growth / 1024:.0f} MiB (median), at most {rss_max / 1024:.0f} MiB, {rss_end / 1024:.0f} MiB at the end (median); "
        f"peak of the whole run (VmHWM) {peak_kib / 1024:.0f} MiB. "
        f"The stalled reader, when it read again: {'; '.join(sorted({p.cut_off for p in stalled}))}.",
        "",
        _reader_cost(phases),
    ])


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (procs.BenchTimeout, KeyboardInterrupt) as e:
        print(f"{str(e) or 'bench: interrupted'}; every process it started was stopped", file=sys.stderr)
        sys.exit(130 if isinstance(e, KeyboardInterrupt) else 124)

"""Fleet benchmark: N servers prepared by serverprep, the raw asyncssh floor, pyinfra and Ansible, side by side.

    sudo .venv/bin/python bench/fleet.py --servers 10,100 --rounds 3 --tools serverprep,floor,pyinfra,ansible

See bench/README.md for what is measured, how, and what the figures mean.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cpusplit
import kwait
import peers
import procs
import profile_summary
import recording
import sprun
from fleethost import Counts, FleetHost, fleet_host
from measure import CpuMeter, bucket_bound, listen_overflows, loadavg, median, percentile

TOOLS = ("serverprep", "floor", "pyinfra", "ansible", "floor-now", "floor-logins", "serverprep-postgres")
DEFAULT_TOOLS = tuple(t for t in TOOLS if t != "serverprep-postgres")
#: What the floor, pyinfra and Ansible run per server: the work as serverprep 0.1 sent it, one SSH
#: session per step (7 commands over 2 connections), which is how the issue defines a server's work.
#: floor-now replays what serverprep sends today (recorded at the start of every run), so that the
#: ratio of serverprep to floor-now is its own overhead alone; floor-logins opens the same
#: connections, `true` alone on each: the share of the work that is SSH logins. Their recordings:
RECORDING_OF = {"floor": "peers", "pyinfra": "peers", "ansible": "peers", "floor-now": "now", "floor-logins": "logins"}
PEER_RECORDING = Path(__file__).resolve().parent / "recordings" / "serverprep-0.1.json"
MAX_SERVERS = 2000
MAX_ROUNDS = 10
MAX_OUTPUT_LINES = 10_000


@dataclass
class Sample:
    """One tool's run at one N in one round."""

    tool: str
    servers: int
    round: int
    wall: float
    peak_rss_kib: int
    connections: float
    sessions: float
    tasks: float
    db_commits: float | None = None
    failures: list[str] = field(default_factory=list)
    prepare_ms: list[float] = field(default_factory=list)
    prepare_back_ms: list[float] = field(default_factory=list)
    channel_states: list[tuple[str, float]] = field(default_factory=list)
    status_ms: list[float] = field(default_factory=list)
    probe_ms: list[float] = field(default_factory=list)
    observed: float | None = None
    cpu_busy: float = 0.0
    listen_overflows: int = 0
    sshd_refusals: list[str] = field(default_factory=list)
    #: Stretches of 0.2 s or more that a thread of serverprep spent blocked in the kernel (bench/kwait.py).
    kernel: kwait.Report = field(default_factory=kwait.Report)
    #: serverprep's own histograms over the run (sprun.SERVICE_VIEW), bucket bound -> count.
    histograms: dict[str, dict[float, float]] = field(default_factory=dict)


@dataclass
class Options:
    readers: int
    status_rate: float
    prepare_window: int
    run_timeout: float
    profile: Path | None
    postgres: str
    serve: list[str]
    prepare_probes: int = 0
    probe_interval: float = 1.0


def run_tool(tool: str, host: FleetHost, recs: dict[str, recording.Recording], n: int, rnd: int, opts: Options, work: Path) -> Sample:
    before = host.counts()
    overflows = listen_overflows()
    cpu = CpuMeter()
    extra: dict = {}
    prepared = n  # preparations whose SSH work the counts below include
    if tool.startswith("serverprep"):
        extra = _run_serverprep(host, n, rnd, opts, work, postgres=tool == "serverprep-postgres")
        wall, rss, failures = extra.pop("wall"), extra.pop("peak_rss_kib"), extra.pop("failures")
        prepared += len(extra["probe_ms"])
        extra["db_commits"] = extra["db_commits"] / prepared if extra["db_commits"] is not None else None
    else:
        runner: Callable[..., peers.PeerResult] = {"pyinfra": peers.run_pyinfra, "ansible": peers.run_ansible}.get(tool, peers.run_floor)
        result = runner(host, recs[RECORDING_OF[tool]], n, opts.run_timeout)
        wall, rss, failures = result.wall, result.peak_rss_kib, result.failures
    busy = cpu.busy()
    delta: Counts = host.counts() - before
    return Sample(
        tool=tool, servers=n, round=rnd, wall=wall, peak_rss_kib=rss, connections=delta.connections / prepared,
        sessions=delta.sessions / prepared, tasks=delta.tasks / prepared, failures=failures, cpu_busy=busy,
        sshd_refusals=delta.refusals[:20], listen_overflows=listen_overflows() - overflows, **extra,
    )


def _run_serverprep(host: FleetHost, n: int, rnd: int, opts: Options, work: Path, postgres: bool) -> dict:
    data = work / f"serverprep{'-pg' if postgres else ''}-n{n}-r{rnd}"
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(sprun.postgres_database(opts.postgres)) if postgres else ""
        svc = stack.enter_context(sprun.service(data, n + opts.prepare_probes, *opts.serve, database_url=url))
        names, probes = sprun.server_names(n), sprun.probe_names(opts.prepare_probes)
        asyncio.run(sprun.register(svc.address, host, names))
        asyncio.run(sprun.register(svc.address, host, probes, first=n))
        out = opts.profile / f"serverprep{'-postgres' if postgres else ''}-n{n}.txt" if opts.profile and rnd == 0 else None
        profiler = profile_summary.record(svc.pid, out) if out else None  # attached before the first Prepare
        kernel = stack.enter_context(kwait.watch(svc.pid))  # filled as the stack closes, before the return
        try:
            result = asyncio.run(sprun.prepare_fleet(
                svc, names, readers=min(opts.readers, n), status_rate=opts.status_rate,
                prepare_window=opts.prepare_window or n, timeout=opts.run_timeout, probes=probes, probe_interval=opts.probe_interval,
            ))
        finally:
            if profiler is not None:
                profile_summary.finish(profiler)
    return {
        "wall": result.wall, "peak_rss_kib": result.peak_rss_kib, "failures": result.failures + result.reader_problems,
        "db_commits": result.db_commits, "prepare_ms": result.prepare_ms, "status_ms": result.status_ms, "observed": result.observed,
        "probe_ms": result.probe_ms, "kernel": kernel, "histograms": result.histograms, "prepare_back_ms": result.prepare_back_ms,
        "channel_states": result.channel_states,
    }


# -- the report ------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def table(samples: list[Sample], n: int, tools: list[str]) -> str:
    floor = {s.round: s.wall for s in samples if s.tool == "floor" and s.servers == n and not s.failures}
    rows = [
        "| tool | wall (median) | vs floor (median of per-round ratios) | peak RSS | SSH connections / server "
        "| SSH sessions / server | processes / server | DB commits / server | failed runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for tool in tools:
        mine = [s for s in samples if s.tool == tool and s.servers == n]
        if not mine:
            continue
        ok = [s for s in mine if not s.failures]
        ratios = [s.wall / floor[s.round] for s in ok if s.round in floor]
        # Counts and memory mean something for a failed run too; wall times only for complete ones.
        rss = median([s.peak_rss_kib / 1024 for s in mine])
        label = f"**{tool}**" if tool.startswith("serverprep") else tool
        rows.append(
            f"| {label} | {_fmt(median([s.wall for s in ok]), 2)} s | {_fmt(median(ratios), 2)} | {_fmt(rss, 0)} MiB "
            f"| {_fmt(median([s.connections for s in mine]))} | {_fmt(median([s.sessions for s in mine]))} "
            f"| {_fmt(median([s.tasks for s in mine]), 0)} "
            f"| {_fmt(median([s.db_commits for s in mine if s.db_commits is not None]))} "
            f"| {len(mine) - len(ok)} of {len(mine)} |"
        )
    return "\n".join(rows)


def latency(samples: list[Sample], n: int, tool: str) -> str:
    mine = [s for s in samples if s.tool == tool and s.servers == n]
    prepare, back, status, probe = ([v for s in mine for v in getattr(s, k)] for k in ("prepare_ms", "prepare_back_ms", "status_ms", "probe_ms"))
    if not mine:
        return ""
    pooled: defaultdict[str, Counter[float]] = defaultdict(Counter)
    for s in mine:
        for key, counts in s.histograms.items():
            pooled[key].update(counts)

    def bound(key: str, q: float) -> str:
        value = bucket_bound(pooled.get(key, {}), q) * 1000
        return "n/a" if value != value else "over the last bucket" if value == float("inf") else f"≤ {value:g} ms"

    return (
        f"{tool} RPC latency while the fleet runs (all rounds): Prepare p50 {_fmt(percentile(prepare, 50))} ms, "
        f"p99 {_fmt(percentile(prepare, 99))} ms over {len(prepare)} calls (from the service writing the preparation to the "
        f"answer: p50 {_fmt(percentile(back, 50))} ms, p99 {_fmt(percentile(back, 99))} ms); "
        f"Status p50 {_fmt(percentile(status, 50))} ms, p99 {_fmt(percentile(status, 99))} ms over {len(status)} calls"
        + (f"; the Prepare probe, one call at a time once all were sent: p50 {_fmt(percentile(probe, 50))} ms, "
           f"p99 {_fmt(percentile(probe, 99))} ms, at most {_fmt(max(probe))} ms over {len(probe)} calls" if probe else "")
        + ".\nThe bench's channel to the service while the fleet ran: "
        + "; ".join(" → ".join(f"{name} {ms:g} ms" for name, ms in s.channel_states) for s in mine) + ".\n"
        f"The service's own view (its /metrics; a handler's time, not the wait before it): Prepare p99 {bound('Prepare', 99)}, "
        f"Status p99 {bound('Status', 99)}; its event loop ran late by p50 {bound('loop lag', 50)}, p99 {bound('loop lag', 99)}, "
        f"at most {bound('loop lag', 100)} ({int(pooled.get('loop lag', {}).get(float('inf'), 0))} ticks of 0.1 s).\n"
        + kwait.pooled([s.kernel for s in mine]).summary())


def report(samples: list[Sample], n: int, tools: list[str], rounds: int, load: tuple[str, str]) -> str:
    mine = [s for s in samples if s.servers == n]
    busy = median([s.cpu_busy * 100 for s in mine])
    lines = [
        f"### N = {n} ({rounds} round{'s' if rounds > 1 else ''}; load average before {load[0]}, after {load[1]}; "
        f"machine CPU busy during runs: median {_fmt(busy, 0)} %)",
        "",
        table(samples, n, tools),
        "",
    ]
    for tool in ("serverprep", "serverprep-postgres"):
        if text := latency(samples, n, tool):
            lines += [text, ""]
    for s in mine:
        if s.failures:
            shown = "; ".join(f.splitlines()[0] for f in s.failures[:3])
            more = f" (and {len(s.failures) - 3} more)" if len(s.failures) > 3 else ""
            lines.append(f"- round {s.round + 1}, {s.tool}: {len(s.failures)} failed: {shown}{more}")
        if s.listen_overflows:
            lines.append(f"- round {s.round + 1}, {s.tool}: {s.listen_overflows} connection attempts dropped by a full listen queue "
                         "(sshd's backlog is 128; the client retried after 1 s)")
        if s.sshd_refusals:
            lines.append(f"- round {s.round + 1}, {s.tool}: sshd: {s.sshd_refusals[0]} ({len(s.sshd_refusals)} such lines)")
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="10,100", help=f"comma-separated N values (each 1..{MAX_SERVERS}; default 10,100)")
    p.add_argument("--rounds", type=int, default=3, help=f"rounds per N, tools alternating (1..{MAX_ROUNDS}; default 3)")
    p.add_argument("--tools", help="comma-separated, from " + ",".join(TOOLS) + " (default: all but serverprep-postgres)")
    p.add_argument("--readers", type=int, default=10, help="live StreamLogs readers on a sample of servers (default 10)")
    p.add_argument("--status-rate", type=float, default=50, help="Status polls per second in all, one in flight (default 50)")
    p.add_argument("--prepare-window", type=int, default=0, help="Prepare calls in flight at once (default 0: all N)")
    p.add_argument("--prepare-probes", type=int, default=0,
                   help="the Prepare probe: once all N are sent, while they run, up to K more Prepare calls one at a time, each for a "
                        f"server of its own (counted per server, not in the wall time; 0..{MAX_SERVERS}; default 0: none)")
    p.add_argument("--probe-interval", type=float, default=1.0, help="seconds between the probe's calls (0.05..60; default 1)")
    p.add_argument("--run-timeout", type=float, default=600, help="seconds one tool's run may take (default 600)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds the whole benchmark may take (default 3600)")
    p.add_argument("--postgres", default=os.environ.get("SERVERPREP_TEST_POSTGRES_URL", ""),
                   help="for serverprep-postgres: a PostgreSQL URL allowed to create databases (default $SERVERPREP_TEST_POSTGRES_URL)")
    p.add_argument("--output-lines", type=int, default=0,
                   help=f"lines each apt-get call prints, for every tool (0..{MAX_OUTPUT_LINES}; default 0: none; a real install prints hundreds)")
    p.add_argument("--profile", type=Path, help="also run py-spy on `serverprep serve` in each N's first round; output here")
    p.add_argument("--json", type=Path, help="write every sample (and the recording) to this file")
    p.add_argument("--split-cpu", action="store_true",
                   help="the simulated servers' sshd in a CPU control group of the lowest weight, the tool under test (and the "
                        "bench's client) ahead of them, as if the servers had CPUs of their own (see bench/cpusplit.py); root")
    p.add_argument("--serve", action="append", default=[], metavar="ARG",
                   help="one more argument to `serverprep serve`, e.g. --serve=--connect-timeout=60 (repeatable)")
    p.add_argument("--smoke", action="store_true", help="N=3, one round (CI): proves every part runs, times nothing")
    args = p.parse_args(argv)
    if args.smoke:
        args.servers, args.rounds = "3", 1
    if args.tools is None:
        args.tools = ",".join(DEFAULT_TOOLS)
    try:
        args.servers = [int(x) for x in args.servers.split(",")]
    except ValueError:
        p.error(f"--servers: expected numbers separated by commas, got {args.servers!r}")
    if not all(1 <= n <= MAX_SERVERS for n in args.servers):
        p.error(f"--servers: each N must be between 1 and {MAX_SERVERS}")
    if not 1 <= args.rounds <= MAX_ROUNDS:
        p.error(f"--rounds must be between 1 and {MAX_ROUNDS}")
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in args.tools if t not in TOOLS]
    if unknown:
        p.error(f"--tools: unknown {', '.join(unknown)}; choose from {', '.join(TOOLS)}")
    if "serverprep-postgres" in args.tools and not args.postgres:
        p.error("serverprep-postgres needs --postgres URL (or $SERVERPREP_TEST_POSTGRES_URL), e.g. as ./dev test sets it")
    if "floor" not in args.tools and not args.split_cpu:
        # Every ratio is to the floor of the same round. With --split-cpu wall times are not
        # comparable (a busy tool starves its own servers there), so the floor is not added.
        args.tools.insert(0, "floor")
    if not 0 <= args.prepare_probes <= MAX_SERVERS:
        p.error(f"--prepare-probes must be between 0 and {MAX_SERVERS}")
    if not 0.05 <= args.probe_interval <= 60:
        p.error("--probe-interval must be between 0.05 and 60")
    for name in ("readers", "prepare_window"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must not be negative")
    if any(a.split("=")[0] == "--metrics-listen" for a in args.serve):
        p.error("--serve=--metrics-listen: the bench sets the service's metrics address itself")
    if not 0 <= args.output_lines <= MAX_OUTPUT_LINES:
        p.error(f"--output-lines must be between 0 and {MAX_OUTPUT_LINES}")
    if not 0 < args.status_rate <= 1000:
        p.error("--status-rate must be in (0, 1000]")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    opts = Options(args.readers, args.status_rate, args.prepare_window, args.run_timeout, args.profile, args.postgres, args.serve,
                   args.prepare_probes, args.probe_interval)
    samples: list[Sample] = []
    reports: list[str] = []
    with procs.exclusive(), procs.guarded(args.timeout), tempfile.TemporaryDirectory(prefix="spb-run-") as tmp:
        if {"pyinfra", "ansible"} & set(args.tools) or args.profile:
            peers.ensure_venv()
        work = Path(tmp)
        now = recording.record_serverprep()
        recs = {"now": now, "logins": recording.logins_only(now), "peers": recording.from_file(PEER_RECORDING)}
        print(f"serverprep today (floor-now): {now.summary()}; floor-logins: {recs['logins'].summary()}; floor, pyinfra, "
              f"ansible: serverprep 0.1's {recs['peers'].summary()}", flush=True)
        with contextlib.ExitStack() as stack:
            cpu = stack.enter_context(cpusplit.split()) if args.split_cpu else None
            if cpu:
                stack.callback(procs.stop_all)  # every child stopped before its group is removed
                cpu.enter("servers")  # sshd and everything it starts inherit this group
            host = stack.enter_context(fleet_host(max(args.servers)))
            if cpu:
                cpu.enter("tools")  # every tool the bench starts from here on, and the bench's own client
                print("CPU split: the servers' sshd in a control group of the lowest weight, the tools ahead of them", flush=True)
            if args.output_lines:
                # Shell builtins only: the output costs no process on the simulated servers.
                host.behave("apt-get", f'i=0; while [ $i -lt {args.output_lines} ]; do i=$((i+1)); '
                                       'echo "Get:$i http://deb.debian.org/debian bookworm/main amd64 package-$i 1.0-$i [$i kB]"; done')
                print(f"every apt-get call prints {args.output_lines} lines", flush=True)
            for n in args.servers:
                load_before = loadavg()
                for rnd in range(args.rounds):
                    # Rotate the order every round so that no tool always runs first (or last).
                    order = args.tools[rnd % len(args.tools) :] + args.tools[: rnd % len(args.tools)]
                    for tool in order:
                        sample = run_tool(tool, host, recs, n, rnd, opts, work)
                        samples.append(sample)
                        status = "FAILED: " + sample.failures[0].splitlines()[0] if sample.failures else "ok"
                        print(f"N={n} round {rnd + 1}/{args.rounds} {tool}: {_fmt(sample.wall, 2)} s, "
                              f"{sample.sessions:.1f} sessions/server, {status}", flush=True)
                reports.append(report(samples, n, args.tools, args.rounds, (load_before, loadavg())))
                print("\n" + reports[-1] + "\n", flush=True)
            if args.json:
                args.json.write_text(json.dumps({"recordings": {k: r.to_json() for k, r in recs.items()},
                                                 "samples": [asdict(s) for s in samples]}, indent=1))
    if args.profile:
        for path in sorted(args.profile.glob("serverprep*-n*.txt")):
            print(f"\n### py-spy profile of `serverprep serve`, {path.name}\n\n{profile_summary.summarize(path)}")
    return 1 if any(s.failures for s in samples) else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (procs.BenchTimeout, KeyboardInterrupt) as e:
        print(f"{str(e) or 'bench: interrupted'}; every process it started was stopped", file=sys.stderr)
        sys.exit(130 if isinstance(e, KeyboardInterrupt) else 124)

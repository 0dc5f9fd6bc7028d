"""The database stalls while a command prints fast: what the service holds in memory meanwhile.

    sudo .venv/bin/python bench/dbstall.py --lines 400000 --stall 8

One simulated server (bench/fleethost.py); its `docker info`, the last step, prints --lines lines
as fast as it can (the producer of bench/logs.py). When that step starts, another process takes
SQLite's write lock on the service's database (BEGIN EXCLUSIVE) and holds it --stall seconds,
less than the service's busy timeout (10 s), so that the service's writes wait rather than fail:
a database that is slow or briefly away. Printed: the service's RSS when the step started and
at its peak, how long the command took, the back-pressure counters from /metrics (absent before
serverprep had them), and whether every line was stored and the preparation SUCCEEDED.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import procs
import sprun
from fleethost import fleet_host
from logs import LINE, PRODUCER
from measure import RssSampler, loadavg, scrape, vm_field

from serverprep.v1 import preparations_pb2 as pb
from serverprep.v1 import preparations_pb2_grpc as pb_grpc

HOLD_LOCK = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="spb-stall-") as tmp, fleet_host(1) as host:
        producer = host.work / "producer.py"
        producer.write_text(PRODUCER)
        producer.chmod(0o644)
        host.behave("docker", f'if [ "$1" = info ]; then exec /usr/bin/python3 {producer} {args.lines} 0; fi')
        cap = str(2 * args.lines + 100_000)
        with sprun.service(Path(tmp) / "data", 1, "--max-log-lines", cap, "--max-log-bytes", str(200 * int(cap)),
                           *args.serve) as svc:
            asyncio.run(sprun.register(svc.address, host, ["s0000"]))
            with grpc.insecure_channel(svc.address) as channel:
                stub = pb_grpc.PreparationServiceStub(channel)
                options = pb.PrepareOptions(docker_source=pb.DOCKER_SOURCE_DISTRO, step_timeout_seconds=600)
                prep = stub.Prepare(pb.PrepareRequest(server="s0000", options=options), timeout=30).preparation
                deadline = time.monotonic() + args.timeout

                def status() -> pb.Preparation:
                    return stub.Status(pb.StatusRequest(server="s0000", preparation_id=prep.id), timeout=30).preparation

                while not any(s.name == "verify_docker" and s.state == pb.STEP_STATE_RUNNING for s in status().steps):
                    if time.monotonic() > deadline:
                        raise SystemExit("bench: verify_docker did not start")
                    time.sleep(0.01)
                lock = procs.spawn([sys.executable, "-c", HOLD_LOCK, str(svc.data_dir / "serverprep.db"), str(args.stall)],
                                   stdout=subprocess.PIPE, text=True)
                rss_start = vm_field(svc.pid, "VmRSS")
                sampler = RssSampler(svc.pid).start()
                started = time.monotonic()
                locked_line = lock.stdout.readline().strip() if lock.stdout else ""
                lock.wait(args.stall + 60)
                while (state := status()).state not in sprun.TERMINAL:
                    if time.monotonic() > deadline:
                        raise SystemExit("bench: the preparation did not finish in time")
                    time.sleep(0.05)
                took = time.monotonic() - started
                samples = sampler.stop()
                url = svc.metrics
                page = {name: value for name, labels, value in scrape(url) if not labels}
                holds, backlog = (page.get(n, "n/a") for n in ("serverprep_log_holds_total", "serverprep_log_backlog_bytes"))
                stored = sum(1 for r in stub.StreamLogs(pb.StreamLogsRequest(server="s0000", preparation_id=prep.id, no_follow=True),
                                                        timeout=300)
                             for e in r.entries if LINE.match(e.text.encode()))
    peak = max(kib for _, kib in samples)
    print(f"### Database stalled {args.stall:g} s while `docker info` printed {args.lines:,} lines "
          f"({' '.join(args.serve) or 'default settings'}; load average {loadavg()})\n")
    print(f"- lock: {locked_line or 'not taken'}; the step and the rest of the preparation took {took:.1f} s from the lock")
    print(f"- service RSS {rss_start / 1024:.0f} MiB when the step started, peak {peak / 1024:.0f} MiB "
          f"(+{(peak - rss_start) / 1024:.0f} MiB)")
    print(f"- serverprep_log_holds_total {holds}, serverprep_log_backlog_bytes at the end {backlog}")
    print(f"- preparation {pb.PreparationState.Name(state.state)}; lines stored {stored:,} of {args.lines:,}")
    return 0 if state.state == pb.PREPARATION_STATE_SUCCEEDED and stored == args.lines else 1


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=400_000, help="lines the command prints (1..2,000,000; default 400,000)")
    p.add_argument("--stall", type=float, default=8.0, help="seconds the database's write lock is held (0..9.5; default 8)")
    p.add_argument("--serve", action="append", default=[], metavar="ARG",
                   help="one more argument for `serverprep serve`, e.g. --serve=--max-unstored-bytes=16777216 (repeatable)")
    p.add_argument("--timeout", type=float, default=600, help="seconds the whole run may take (default 600)")
    args = p.parse_args(argv)
    if not 1 <= args.lines <= 2_000_000 or not 0 <= args.stall <= 9.5:
        p.error("--lines 1..2000000, --stall 0..9.5 (under the service's 10 s busy timeout)")
    with procs.exclusive(), procs.guarded(args.timeout):
        return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Benchmarks of the engine over a real sshd with stand-in package tools (no installs).

    .venv/bin/python bench/engine.py        # needs root, like the simulated tests

Prints: one preparation's overhead end to end, N preparations of N servers at once, and log
throughput (lines/s from the remote command to a StreamLogs reader). Bounded in count and time.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import DEBIAN_12, wait_done  # noqa: E402
from harness.service import ServiceThread  # noqa: E402
from harness.targets import behave, simulated_host  # noqa: E402


def main() -> None:
    svc = ServiceThread(Path(tempfile.mkdtemp()), max_concurrent=32).start()
    client = svc.client()
    with simulated_host("sp-sim", DEBIAN_12) as target:
        behave(target, "systemctl", 'case "$1" in is-enabled|is-active) exit 3;; esac')
        args = dict(host=target.host, port=target.port, user=target.user, private_key=target.key.private, host_key=target.host_key)
        client.create_server("one", **args)
        times = []
        for _ in range(10):
            started = time.perf_counter()
            wait_done(client, "one", client.prepare("one", docker_source="distro").id)
            times.append(time.perf_counter() - started)
        print(f"one preparation (7 steps, 8 remote commands, 2 SSH connections): median {statistics.median(times) * 1000:.0f} ms, "
              f"max {max(times) * 1000:.0f} ms over {len(times)}")

        n = 20
        for i in range(n):
            client.create_server(f"s{i}", **args)
        started = time.perf_counter()
        ids = {f"s{i}": client.prepare(f"s{i}", docker_source="distro").id for i in range(n)}
        for name, pid in ids.items():
            wait_done(client, name, pid)
        print(f"{n} servers prepared at once: {time.perf_counter() - started:.2f} s in all")

        lines = 100_000
        behave(target, "apt-get", f'i=0; while [ $i -lt {lines} ]; do i=$((i+1)); echo "line $i of the benchmark output"; done')
        started = time.perf_counter()
        prep = client.prepare("one", docker_source="distro")
        count = sum(1 for e in client.stream_logs("one", prep.id) if e.text.startswith("line "))
        took = time.perf_counter() - started
        print(f"log throughput: {count} lines from 3 apt-get runs streamed live in {took:.2f} s = {count / took:,.0f} lines/s")
    client.close()
    svc.stop()


if __name__ == "__main__":
    main()

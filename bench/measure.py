"""What the benchmarks read from outside the measured programs: SQLite commits, memory, percentiles, load, /metrics."""

from __future__ import annotations

import re
import statistics
import struct
import threading
import urllib.request
from pathlib import Path


class WalCommits:
    """Write transactions committed to an SQLite database in WAL mode, read without touching it.

    SQLite keeps a header in the wal-index (the ``-shm`` file beside the database) whose
    ``iChange`` field every committing writer increments (wal.c, ``WalIndexHdr``). The header is
    stored twice; a reading is accepted when both copies agree. Nothing is locked or written, so
    the database works exactly as without the bench. ``None`` when the file is not there (not
    SQLite, or not in WAL mode).
    """

    HEADER = 48
    ICHANGE = 8

    def __init__(self, shm: Path):
        self.shm = shm

    def read(self) -> int | None:
        for _ in range(100):
            try:
                with open(self.shm, "rb") as f:
                    head = f.read(2 * self.HEADER)
            except FileNotFoundError:
                return None
            if len(head) < 2 * self.HEADER:
                return None
            if head[: self.HEADER] == head[self.HEADER :]:
                # Native byte order: SQLite writes the wal-index in the machine's own.
                return struct.unpack_from("=I", head, self.ICHANGE)[0]
        return None


def commits_between(before: int | None, after: int | None) -> int | None:
    if before is None or after is None:
        return None
    return (after - before) % 2**32


class RssSampler:
    """VmRSS of a process sampled every ``interval`` seconds, for a curve over time."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        import time

        started = time.monotonic()
        while not self._stop.is_set():
            rss = vm_field(self.pid, "VmRSS")
            if rss:
                self.samples.append((time.monotonic() - started, rss))
            self._stop.wait(self.interval)

    def stop(self) -> list[tuple[float, int]]:
        self._stop.set()
        self._thread.join(5)
        return self.samples


def vm_field(pid: int, name: str) -> int:
    """A Vm* field of /proc/PID/status in KiB (VmRSS now, VmHWM the peak); 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), by the nearest-rank method; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def weighted_percentile(pairs: list[tuple[float, int]], q: float) -> float:
    """The q-th percentile (0-100) of values given as (value, how many times it occurs)."""
    total = sum(n for _, n in pairs)
    if not total:
        return float("nan")
    rank = max(1, -(-total * q // 100))
    seen = 0
    for value, n in sorted(pairs):
        seen += n
        if seen >= rank:
            return value
    return sorted(pairs)[-1][0]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full (all sockets here).

    sshd listens with a backlog of 128 that no setting changes; a client whose SYN is dropped
    retries after a second, which shows in the wall time of whoever connects N at once.
    """
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(table.get("ListenOverflows", 0))
    return 0


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class CpuMeter:
    """Share of the machine's CPU time spent busy between start and stop (all processes, all cores)."""

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields[:8]), idle

    def busy(self) -> float:
        total, idle = self._read()
        dt, di = total - self._start[0], idle - self._start[1]
        return 1 - di / dt if dt else 0.0


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus text page: (name, labels, value)."""
    samples = []
    with urllib.request.urlopen(url, timeout=10) as page:
        text = page.read().decode()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        samples.append((name, dict(_LABEL.findall(labels)), float(value)))
    return samples


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def buckets(samples: list[tuple[str, dict[str, str], float]], histogram: str, **labels: str) -> dict[float, float]:
    """A histogram's cumulative bucket counts by upper bound (``+Inf`` included), for the given labels."""
    found: dict[float, float] = {}
    for name, have, value in samples:
        if name == histogram + "_bucket" and all(have.get(k) == v for k, v in labels.items()):
            found[float(have["le"])] = value
    return found


def bucket_bound(counts: dict[float, float], q: float) -> float:
    """The upper bound of the bucket that holds the q-th percentile (0-100): that share took at most
    this long. ``inf`` when it lies past the last finite bucket; NaN for no observations."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not between 0 and 100")
    total = counts.get(float("inf"), 0)
    if not total:
        return float("nan")
    rank = max(1, -(-total * q // 100))
    return next(le for le, seen in sorted(counts.items()) if seen >= rank)

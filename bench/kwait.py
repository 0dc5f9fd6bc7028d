"""Where the service's threads waited inside the kernel: their states sampled from /proc.

Why: in the N=1000 runs a `Prepare` now and then waited 2–8 s while the service's event loop kept
time and its database thread used no CPU. Python cannot see such a wait; /proc can. Sampling
every thread of the service (`/proc/PID/task/TID/stat`) shows each stretch in state D
(uninterruptible, inside a system call), with the kernel function it sleeps in (`wchan`) and the
system call (`syscall`). It found the cause of those waits (bench/README.md, eighth round).

A stretch is seen from its first sample in D to the first sample out of it, so its length is
right to within one interval (50 ms); shorter ones are missed. Reads as root: other users may not
see another process's `wchan` or `syscall`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

#: x86_64 numbers of the system calls a database or network thread sleeps in.
SYSCALLS = {0: "read", 1: "write", 7: "poll", 17: "pread64", 18: "pwrite64", 72: "fcntl", 73: "flock", 74: "fsync", 75: "fdatasync",
            202: "futex", 232: "epoll_wait", 281: "epoll_pwait", 56: "clone", 58: "vfork", 435: "clone3", 61: "wait4",
            230: "clock_nanosleep"}
#: Sampling interval, and the shortest stretch in state D worth reporting (seconds).
INTERVAL = 0.05
LEAST = 0.2


@dataclass(frozen=True)
class Wait:
    """One stretch of a thread in state D of at least the tracker's ``least`` seconds."""

    tid: int
    start: float
    seconds: float
    where: str

    def describe(self) -> str:
        return f"{self.seconds:.2f} s in {self.where}"


@dataclass
class Tracker:
    """Stretches of state D per thread, from samples (the bookkeeping, apart from /proc). A stretch
    is told by where most of its samples found the thread (its first may catch it on the way in)."""

    least: float
    waits: list[Wait] = field(default_factory=list)
    _open: dict[int, tuple[float, Counter[str]]] = field(default_factory=dict)

    def sample(self, now: float, blocked: dict[int, str]) -> None:
        """``blocked``: the threads in state D at ``now``, each with where it sleeps."""
        for tid, where in blocked.items():
            self._open.setdefault(tid, (now, Counter()))[1][where] += 1
        for tid in [t for t in self._open if t not in blocked]:
            self._close(tid, now)

    def finish(self, now: float) -> list[Wait]:
        for tid in list(self._open):
            self._close(tid, now)
        return sorted(self.waits, key=lambda w: -w.seconds)

    def _close(self, tid: int, now: float) -> None:
        start, wheres = self._open.pop(tid)
        if now - start >= self.least:
            self.waits.append(Wait(tid, start, now - start, wheres.most_common(1)[0][0]))


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:  # the thread ended meanwhile, or this user may not look
        return ""


def blocked_threads(pid: int) -> dict[int, str]:
    """The threads of ``pid`` in state D now, each with its wchan and system call."""
    blocked = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for tid in tids:
        stat = _read(f"/proc/{pid}/task/{tid}/stat")
        if not stat or stat.rsplit(")", 1)[1].split()[0] != "D":
            continue
        wchan = _read(f"/proc/{pid}/task/{tid}/wchan") or "?"
        number = _read(f"/proc/{pid}/task/{tid}/syscall").split(" ", 1)[0]
        call = SYSCALLS.get(int(number), f"syscall {number}") if number.isdigit() else "no system call"
        blocked[int(tid)] = f"{wchan} ({call})"
    return blocked


@contextlib.contextmanager
def watch(pid: int, interval: float = INTERVAL, least: float = LEAST) -> Iterator[list[Wait]]:
    """Sample ``pid``'s threads every ``interval`` s on a thread of this process until the block
    ends; the list it yields then holds every stretch in state D of ``least`` s or more, longest first."""
    tracker = Tracker(least)
    stop = threading.Event()
    found: list[Wait] = []

    def sample() -> None:
        while not stop.wait(interval):
            tracker.sample(time.monotonic(), blocked_threads(pid))

    thread = threading.Thread(target=sample, name="kwait", daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()
        found.extend(tracker.finish(time.monotonic()))

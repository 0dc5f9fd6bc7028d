"""Where the service's threads waited inside the kernel: their states sampled from /proc.

Why: in the N=1000 runs a `Prepare` now and then waited 2–8 s while the service's event loop kept
time and its database thread used no CPU. Python cannot see such a wait; /proc can. Sampling
every thread of the service (`/proc/PID/task/TID/stat`) shows each stretch in state D
(uninterruptible, inside a system call), with the kernel function it sleeps in (`wchan`) and the
system call (`syscall`). It found the cause of those waits (bench/README.md, eighth round).

A thread that writes to a full socket or pipe sleeps in state S, as an idle one does, so state D
alone missed the tenth round's stall: grpcio's poller thread sat for minutes in
`sock_alloc_send_pskb`, writing to a socket pair its event loop read too slowly. A thread in
state S whose `wchan` is one of FULL_WRITES counts as blocked too. Each thread is named by its
`comm`; Python 3.11 does not name its threads there, so every Python thread of the service reads
as the process's name (`serverprep`), and only threads that C code named stand apart.

A stretch runs from its first sample blocked to its last, plus one interval (50 ms): it may be that
much too long or too short, more when the sampler itself is late, and shorter ones are missed. A
stretch is consecutive samples blocked: several short waits in a row can read as one. Reads as root:
other users may not see another process's `wchan` or `syscall`. System call names are x86_64's.
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

#: x86_64 numbers of the system calls a database or network thread sleeps in.
SYSCALLS = {0: "read", 1: "write", 7: "poll", 17: "pread64", 18: "pwrite64", 72: "fcntl", 73: "flock", 74: "fsync", 75: "fdatasync",
            44: "sendto", 46: "sendmsg", 202: "futex", 232: "epoll_wait", 281: "epoll_pwait", 56: "clone", 58: "vfork", 435: "clone3", 61: "wait4",
            230: "clock_nanosleep"}
#: Where a thread in state S sleeps while it writes to a socket or pipe that is full: a wait for its
#: reader, not idleness (AF_UNIX and UDP sends; TCP; a connected AF_UNIX datagram peer; a pipe).
FULL_WRITES = frozenset({"sock_alloc_send_pskb", "sk_stream_wait_memory", "sock_wait_for_wmem", "unix_wait_for_peer", "pipe_write",
                         "anon_pipe_write"})
#: Sampling interval, and the shortest blocked stretch worth reporting (seconds).
INTERVAL = 0.05
LEAST = 0.2


@dataclass(frozen=True)
class Wait:
    """One stretch of a thread blocked (state D, or writing to a full socket or pipe) of at least the tracker's ``least`` seconds."""

    tid: int
    seconds: float
    where: str

    def describe(self) -> str:
        return f"{self.seconds:.2f} s in {self.where}"


@dataclass
class _Stretch:
    start: float
    last: float
    wheres: Counter[str] = field(default_factory=Counter)


@dataclass
class Tracker:
    """Blocked stretches per thread, from samples taken every ``interval`` s (the bookkeeping,
    apart from /proc). A stretch is told by where most of its samples found the thread (its first
    may catch it on the way in)."""

    least: float
    interval: float
    waits: list[Wait] = field(default_factory=list)
    _open: dict[int, _Stretch] = field(default_factory=dict)

    def sample(self, now: float, blocked: dict[int, str]) -> None:
        """``blocked``: the threads blocked at ``now``, each with where it sleeps."""
        for tid, where in blocked.items():
            stretch = self._open.setdefault(tid, _Stretch(now, now))
            stretch.last = now
            stretch.wheres[where] += 1
        for tid in [t for t in self._open if t not in blocked]:
            self._close(tid)

    def finish(self) -> list[Wait]:
        for tid in list(self._open):
            self._close(tid)
        return sorted(self.waits, key=lambda w: -w.seconds)

    def _close(self, tid: int) -> None:
        stretch = self._open.pop(tid)
        seconds = stretch.last - stretch.start + self.interval
        if seconds >= self.least:
            self.waits.append(Wait(tid, seconds, stretch.wheres.most_common(1)[0][0]))


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:  # the thread ended meanwhile, or this user may not look
        return ""


def blocked_threads(pid: int) -> dict[int, str]:
    """The threads of ``pid`` blocked now (state D, or state S in one of FULL_WRITES), each with its wchan, system call and name."""
    blocked = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for tid in tids:
        stat = _read(f"/proc/{pid}/task/{tid}/stat")
        state = stat.rsplit(")", 1)[1].split()[0] if stat else ""
        if state not in ("D", "S"):
            continue
        wchan = _read(f"/proc/{pid}/task/{tid}/wchan") or "?"
        if state == "S" and wchan not in FULL_WRITES:
            continue
        call = _call(_read(f"/proc/{pid}/task/{tid}/syscall").split(" ", 1)[0])
        blocked[int(tid)] = f"{wchan} ({call}), thread {_read(f'/proc/{pid}/task/{tid}/comm').strip() or '?'}"
    return blocked


def _call(number: str) -> str:
    """The system call from the first field of /proc/.../syscall ("running", -1 outside one, "" unread)."""
    if not number.isdigit():
        return {"": "?", "-1": "no system call"}.get(number, number)
    names = SYSCALLS if platform.machine() == "x86_64" else {}
    return names.get(int(number), f"syscall {number}")


@dataclass
class Report:
    """What ``watch`` saw: every stretch of LEAST s or more, longest first, and why the
    sampling stopped early if it did (then the stretches are only those seen until then)."""

    waits: list[Wait] = field(default_factory=list)
    failure: str = ""

    def summary(self) -> str:
        """One line for the bench's report (which samples at the defaults)."""
        head = (f"Its threads blocked in the kernel (state D, or writing to a full socket or pipe; sampled every {INTERVAL * 1000:g} ms) "
                f"for {LEAST:g} s or more: ")
        seen = (f"{len(self.waits)} times, the longest " + ", ".join(w.describe() for w in self.waits[:3])
                if self.waits else "never")
        return head + seen + (f" (sampling stopped early: {self.failure})" if self.failure else "")


@contextlib.contextmanager
def watch(pid: int, interval: float = INTERVAL) -> Iterator[Report]:
    """Sample ``pid``'s threads every ``interval`` s on a thread of this process until the block
    ends; the report it yields is filled then with every stretch of LEAST s or more."""
    tracker = Tracker(LEAST, interval)
    stop = threading.Event()
    report = Report()

    def sample() -> None:
        try:
            while not stop.wait(interval):
                tracker.sample(time.monotonic(), blocked_threads(pid))
        except Exception as e:  # noqa: BLE001 -- said in the report, not lost with the thread
            report.failure = f"{type(e).__name__}: {e}"

    thread = threading.Thread(target=sample, name="kwait", daemon=True)
    thread.start()
    try:
        yield report
    finally:
        stop.set()
        thread.join()
        report.waits = tracker.finish()


def pooled(reports: list[Report]) -> Report:
    """Several runs' reports as one (rounds of the bench)."""
    return Report(sorted((w for r in reports for w in r.waits), key=lambda w: -w.seconds),
                  "; ".join(r.failure for r in reports if r.failure))

"""bench/kwait.py: the fleet bench's view of the service's threads blocked in the kernel."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
FREEZER = Path("/sys/fs/cgroup/freezer")


@pytest.fixture
def kwait() -> Iterator[ModuleType]:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import kwait

        yield kwait
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_tracker_reports_each_stretch_of_a_thread_in_state_d_from_its_first_sample_to_its_last(kwait: ModuleType) -> None:
    """Proves the bookkeeping on made-up samples: a stretch runs from its first sample in D to its
    last, plus one interval (so a late sample after it does not lengthen it), is told by where most
    of its samples found the thread, and only those of ``least`` or more are kept, longest first;
    threads are apart, and one still blocked at the end is closed then. Does not read /proc (the
    test below does)."""
    t = kwait.Tracker(least=0.2, interval=0.05)
    t.sample(0.00, {})
    t.sample(0.05, {1: "on the way in"})
    t.sample(0.10, {1: "percpu_rwsem_wait (fcntl)", 2: "io_schedule (fsync)"})
    t.sample(0.15, {1: "percpu_rwsem_wait (fcntl)"})  # thread 2: 0.05 + 0.05 s, too short
    t.sample(0.20, {1: "percpu_rwsem_wait (fcntl)"})
    t.sample(0.90, {3: "hrtimer_nanosleep (clock_nanosleep)"})  # a late sample: thread 1 ran 0.05..0.20 + 0.05
    t.sample(0.95, {3: "hrtimer_nanosleep (clock_nanosleep)"})
    t.sample(1.00, {3: "hrtimer_nanosleep (clock_nanosleep)"})
    t.sample(1.05, {3: "hrtimer_nanosleep (clock_nanosleep)"})
    t.sample(1.10, {3: "hrtimer_nanosleep (clock_nanosleep)"})
    waits = t.finish()  # thread 3 still blocked: 0.90..1.10 + 0.05
    assert [(w.tid, round(w.seconds, 2), w.where) for w in waits] == [
        (3, 0.25, "hrtimer_nanosleep (clock_nanosleep)"), (1, 0.2, "percpu_rwsem_wait (fcntl)"),
    ]
    assert waits[1].describe() == "0.20 s in percpu_rwsem_wait (fcntl)"


def test_a_sampler_that_fails_says_so_in_its_report(kwait: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves: an error inside the sampling thread ends up in the report and its summary line,
    not lost with the thread (the line would otherwise read "never")."""
    monkeypatch.setattr(kwait, "blocked_threads", _raises)  # every sample fails as a broken /proc read would
    with kwait.watch(os.getpid(), interval=0.01) as report:
        time.sleep(0.1)
    assert report.failure == "RuntimeError: unreadable" and report.waits == []
    assert report.summary().endswith("never (sampling stopped early: RuntimeError: unreadable)")


def _raises(pid: int) -> dict[int, str]:
    raise RuntimeError("unreadable")


@contextlib.contextmanager
def _freezer_group() -> Iterator[Path]:
    group = FREEZER / f"serverprep-kwait-{os.getpid()}"
    group.mkdir()
    try:
        yield group
    finally:
        (group / "freezer.state").write_text("THAWED")
        for pid in (group / "cgroup.procs").read_text().split():
            (FREEZER / "cgroup.procs").write_text(pid)
        group.rmdir()


def test_watch_sees_a_real_process_held_in_the_kernel_and_nothing_while_it_sleeps(kwait: ModuleType) -> None:
    """Proves, on this machine's kernel: a process frozen by the cgroup v1 freezer (state D; frozen
    inside ``time.sleep``, it stays in its system call) for 0.6 s is reported once, with the kernel
    function and the system call it was held in, about as long as it was held;
    the same process sleeping in ``time.sleep`` (state S) for as long is not reported. Does not
    prove which of the service's waits a run will meet (the fleet bench's runs show that)."""
    if os.geteuid() != 0 or not (FREEZER / "cgroup.procs").exists():
        pytest.skip("needs root and the cgroup v1 freezer")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with _freezer_group() as group:
            (group / "cgroup.procs").write_text(str(child.pid))
            with kwait.watch(child.pid) as asleep:
                time.sleep(0.6)
            with kwait.watch(child.pid) as held:
                time.sleep(0.2)
                (group / "freezer.state").write_text("FROZEN")
                time.sleep(0.6)
                (group / "freezer.state").write_text("THAWED")
                time.sleep(0.2)
    finally:
        child.kill()
        child.wait()
    assert asleep.waits == [] and asleep.failure == "" and held.failure == ""
    assert len(held.waits) == 1, held
    assert held.waits[0].tid == child.pid and held.waits[0].where.split(", thread ")[0].endswith(" (clock_nanosleep)")
    assert 0.4 <= held.waits[0].seconds <= 1.0, held


# Each says so on stderr once it has started, then waits for a line on stdin before it writes.
WRITERS = {
    # to a socket pair nobody reads, until the kernel's buffer is full
    "socket pair": "import socket, sys; a, b = socket.socketpair(); print(file=sys.stderr, flush=True); sys.stdin.readline(); "
                   "a.sendall(b'x' * 50_000_000)",
    # to its stdout, a pipe the test does not read
    "pipe": "import os, sys; print(file=sys.stderr, flush=True); sys.stdin.readline(); os.write(1, b'x' * 50_000_000)",
}


@pytest.mark.parametrize("kind", WRITERS)
def test_watch_sees_a_thread_writing_to_a_full_socket_or_pipe_and_not_one_waiting_to_read(kwait: ModuleType, kind: str) -> None:
    """Proves, on this machine's kernel: a process blocked writing to a full socket pair or pipe
    (state S, which an idle thread is in too) is reported once while the watch lasts (0.6 s), with
    the kernel function it waits in; before that, the same process blocked reading its stdin for as
    long is not. Needs no root: a process may read its own child's wchan. Does not prove that
    grpcio's poller blocks in a run (the tenth round's sampler saw that)."""
    with subprocess.Popen([sys.executable, "-c", WRITERS[kind]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as child:
        assert child.stdin is not None and child.stderr is not None
        try:
            child.stderr.readline()  # started: what start-up waits for (loading pages, state D) is not watched
            with kwait.watch(child.pid) as reading:
                time.sleep(0.6)
            child.stdin.write(b"go\n")
            child.stdin.flush()
            _until_in(child.pid, kwait.FULL_WRITES)
            with kwait.watch(child.pid) as writing:
                time.sleep(0.6)
        finally:
            child.kill()
    assert reading.waits == [] and reading.failure == "" and writing.failure == ""
    assert len(writing.waits) == 1, writing
    assert writing.waits[0].where.split(" ")[0] in kwait.FULL_WRITES, writing
    assert writing.waits[0].where.endswith(f", thread {Path(sys.executable).name[:15]}"), writing  # the kernel's comm
    assert 0.4 <= writing.waits[0].seconds <= 1.0, writing


def _until_in(pid: int, wchans: frozenset[str], timeout: float = 30.0) -> None:
    """Wait until ``pid`` sleeps in one of ``wchans`` (it got to its write, however busy the machine)."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/wchan").read_text() not in wchans:
        assert time.monotonic() < deadline, f"never blocked in {sorted(wchans)}"
        time.sleep(0.01)

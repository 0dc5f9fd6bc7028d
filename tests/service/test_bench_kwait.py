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
    assert held.waits[0].tid == child.pid and held.waits[0].where.endswith(" (clock_nanosleep)")
    assert 0.4 <= held.waits[0].seconds <= 1.0, held

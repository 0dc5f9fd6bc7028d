"""Child processes of the benchmarks: each in its own process group, all of them ended on any exit."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

_PR_SET_PDEATHSIG = 1
LOCK = "/run/serverprep-bench.lock"
_children: list[subprocess.Popen] = []
_lock = threading.Lock()


class BenchTimeout(Exception):
    """The benchmark ran past its global time limit."""


def _die_with_parent() -> None:
    # SIGKILL to the bench (which no handler sees) must not leave sshd or the service behind.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv: list[str], **kwargs: object) -> subprocess.Popen:
    """Start ``argv`` in a new session (Ctrl-C in the terminal reaches only the bench) and remember it."""
    if threading.current_thread() is not threading.main_thread():
        # PDEATHSIG fires when the spawning *thread* ends, which would kill the child early.
        raise RuntimeError("bench processes are started from the main thread only")
    proc = subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent, **kwargs)  # type: ignore[call-overload]
    with _lock:
        _children.append(proc)
    return proc


def stop(proc: subprocess.Popen, grace: float = 10.0) -> int | None:
    """SIGTERM to the child's process group, SIGKILL after ``grace`` seconds; returns its exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    # Members of the group may outlive its leader (a shell's children): end them too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with _lock:
        if proc in _children:
            _children.remove(proc)
    return proc.returncode


def stop_all() -> None:
    with _lock:
        children = list(reversed(_children))
    for proc in children:
        stop(proc, grace=5.0)


@contextlib.contextmanager
def guarded(timeout: float) -> Iterator[None]:
    """Run the block with a global time limit; on any way out (Ctrl-C, SIGTERM, error) end every child."""

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(f"bench: stopped by signal {signal.Signals(signum).name}")

    def expire(_signum: int, _frame: object) -> None:
        raise BenchTimeout(f"bench: global time limit of {timeout:.0f} s reached")

    previous = {s: signal.signal(s, terminate) for s in (signal.SIGTERM, signal.SIGHUP)}
    previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        # A second Ctrl-C while cleaning up must not leave children behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stop_all()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for s, handler in previous.items():
                signal.signal(s, handler)


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """One benchmark at a time on a machine: two would measure each other."""
    with open(LOCK, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"bench: another benchmark holds {LOCK}; run one at a time") from None
        yield


def wait(proc: subprocess.Popen, timeout: float, what: str) -> int:
    """Wait for a child; past ``timeout`` it is stopped and TimeoutError names ``what``."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        stop(proc, grace=5.0)
        raise TimeoutError(f"{what} did not finish within {timeout:.0f} s and was stopped") from None


def peak_rss_kib(pid: int) -> int:
    """VmHWM (the peak resident set size) of a live process, in KiB; 0 when it is gone."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_with_rusage(proc: subprocess.Popen, timeout: float, what: str) -> tuple[int, int]:
    """Wait for a child: (exit status, largest RSS of it or of any process it waited for, in KiB)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            with _lock:
                if proc in _children:
                    _children.remove(proc)
            # ru_maxrss is the largest single process, in KiB on Linux.
            return proc.returncode, usage.ru_maxrss
        if time.monotonic() > deadline:
            stop(proc, grace=5.0)
            raise TimeoutError(f"{what} did not finish within {timeout:.0f} s and was stopped")
        time.sleep(0.005)

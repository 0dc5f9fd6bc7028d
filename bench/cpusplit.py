"""--split-cpu: the simulated servers in one CPU control group, the tool under test ahead of them in another.

Every simulated server's sshd runs on the same two cores as the tool being measured. Each SSH
session calls `setsid`, so with the kernel's autogroup scheduling every server's session is a
scheduling group of its own, and the tool is one group among hundreds: at N=1000 the service's
event loop waits for a core for seconds. A real fleet's servers have CPUs of their own, and the
tool has its machine to itself. The split models that as far as one machine can: the servers
(all of them together) get the lowest weight there is, the tools the default, so a tool's thread
that wants a core gets it and the servers run on what the tool leaves. Autogroups apply only to
tasks in the root group, so they stop mattering.

Equal weights were tried first and are not enough: at N=1000 the service's main thread then still
waited 34.6 s for a core while it ran for 23.8 s (its /proc schedstat), since the tools' half of
the machine is shared by the service's threads and the bench's own client.

A tool that uses much CPU slows its servers down here, as it would not on a real fleet: the
split is fair to the servers' side, not generous to the tool's. Processes inherit their control
group when they fork: the bench moves itself into the servers' group to start sshd, then into the
tools' group, where every tool it starts afterwards runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

V1 = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller (cpu.shares)
V2 = Path("/sys/fs/cgroup")  # the unified hierarchy (cpu.weight), when its cpu controller is enabled
GROUPS = ("servers", "tools")


class CpuSplit:
    """The two groups under ``base``; ``enter(name)`` moves this process (every thread) into one."""

    def __init__(self, base: Path, weight_file: str, weights: dict[str, str]):
        self.base = base
        self.weight_file = weight_file
        self.weights = weights

    def group(self, name: str) -> Path:
        return self.base / name

    def enter(self, name: str) -> None:
        (self.group(name) / "cgroup.procs").write_text(str(os.getpid()))

    def members(self, name: str) -> list[int]:
        return [int(p) for p in (self.group(name) / "cgroup.procs").read_text().split()]


#: (servers, tools): the lowest weight each version accepts, and its default.
V1_WEIGHTS = {"servers": "2", "tools": "1024"}
V2_WEIGHTS = {"servers": "1", "tools": "100"}


def _hierarchy() -> tuple[Path, str, dict[str, str], Path]:
    """(where to make the groups, the weight file, the weights, where this process is now)."""
    if (V1 / "cpu.shares").exists():
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "cpu" in controllers.split(","):
                return V1, "cpu.shares", V1_WEIGHTS, V1 / path.lstrip("/")
        return V1, "cpu.shares", V1_WEIGHTS, V1
    enabled = V2 / "cgroup.subtree_control"  # what the root hands down, not only what it has
    if enabled.exists() and "cpu" in enabled.read_text().split():
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return V2, "cpu.weight", V2_WEIGHTS, V2 / line[3:].lstrip("/")
    raise SystemExit("bench: --split-cpu needs cgroup v1's cpu controller (/sys/fs/cgroup/cpu) or cgroup v2 "
                     "with its cpu controller enabled for children (/sys/fs/cgroup/cgroup.subtree_control lists cpu)")


@contextlib.contextmanager
def split() -> Iterator[CpuSplit]:
    """Make the two groups (root only); on exit move this process back and remove them.

    Whatever still runs in them then (nothing should: every bench process is stopped first) is
    moved to this process's original group, so that the groups can go.
    """
    if os.geteuid() != 0:
        raise SystemExit("bench: --split-cpu needs root (it makes control groups)")
    root, weight_file, weights, home = _hierarchy()
    if not (home / "cgroup.procs").exists():  # e.g. a container that shows the host's paths
        raise SystemExit(f"bench: --split-cpu cannot find this process's control group ({home})")
    base = root / f"serverprep-bench-{os.getpid()}"
    base.mkdir()
    made: list[Path] = [base]
    try:
        if root == V2:
            (base / "cgroup.subtree_control").write_text("+cpu")
        for name in GROUPS:
            group = base / name
            group.mkdir()
            made.append(group)
            (group / weight_file).write_text(weights[name])
        yield CpuSplit(base, weight_file, weights)
    finally:
        _remove(made, home)


def _remove(made: list[Path], home: Path) -> None:
    """Move this process and anything left in the groups back home, then remove the groups; each
    step on its own, so that one failure does not leave the rest undone. A process that forks
    while being moved may land in a group again, hence the retries."""
    with contextlib.suppress(OSError):
        (home / "cgroup.procs").write_text(str(os.getpid()))
    for _ in range(10):
        for group in reversed(made[1:]):
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):  # it may have ended meanwhile
                        (home / "cgroup.procs").write_text(pid)
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()
        if not made[0].exists():
            return
        time.sleep(0.1)
    print(f"bench: could not remove the control group {made[0]} (processes still in it?)", file=sys.stderr)

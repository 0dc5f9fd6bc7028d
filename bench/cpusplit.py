"""--split-cpu: the simulated servers in one CPU control group, the tool under test in another.

Every simulated server's sshd runs on the same two cores as the tool being measured. Each SSH
session calls `setsid`, so with the kernel's autogroup scheduling every server's session is a
scheduling group of its own, and the tool is one group among hundreds: at N=1000 the service's
event loop waits for a core for seconds. A real fleet's servers have CPUs of their own. Two
control groups of equal weight model that as far as one machine can: when both want CPU, the
servers (all of them together) get at least half of it and the tool, with the bench's own client,
the other half; CPU one side leaves idle goes to the other. (Autogroups apply only to tasks in
the root group, so they stop mattering.)

Processes inherit their control group when they fork: the bench moves itself into the servers'
group to start sshd, then into the tools' group, where every tool it starts afterwards runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

V1 = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller (cpu.shares)
V2 = Path("/sys/fs/cgroup")  # the unified hierarchy (cpu.weight), when its cpu controller is enabled
GROUPS = ("servers", "tools")


class CpuSplit:
    """The two groups under ``base``; ``enter(name)`` moves this process (every thread) into one."""

    def __init__(self, base: Path, weight_file: str, weight: str):
        self.base = base
        self.weight_file = weight_file
        self.weight = weight

    def group(self, name: str) -> Path:
        return self.base / name

    def enter(self, name: str) -> None:
        (self.group(name) / "cgroup.procs").write_text(str(os.getpid()))

    def members(self, name: str) -> list[int]:
        return [int(p) for p in (self.group(name) / "cgroup.procs").read_text().split()]


def _hierarchy() -> tuple[Path, str, str, Path]:
    """(where to make the groups, the weight file, the equal weight, where this process is now)."""
    if (V1 / "cpu.shares").exists():
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "cpu" in controllers.split(","):
                return V1, "cpu.shares", "1024", V1 / path.lstrip("/")
        return V1, "cpu.shares", "1024", V1
    controllers = V2 / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return V2, "cpu.weight", "100", V2 / line[3:].lstrip("/")
    raise SystemExit("bench: --split-cpu needs cgroup v1's cpu controller (/sys/fs/cgroup/cpu) or cgroup v2 "
                     "with its cpu controller enabled (/sys/fs/cgroup/cgroup.controllers lists cpu)")


@contextlib.contextmanager
def split() -> Iterator[CpuSplit]:
    """Make the two groups (root only); on exit move this process back and remove them.

    Whatever still runs in them then (nothing should: every bench process is stopped first) is
    moved to this process's original group, so that the groups can go.
    """
    if os.geteuid() != 0:
        raise SystemExit("bench: --split-cpu needs root (it makes control groups)")
    root, weight_file, weight, home = _hierarchy()
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
            (group / weight_file).write_text(weight)
        yield CpuSplit(base, weight_file, weight)
    finally:
        (home / "cgroup.procs").write_text(str(os.getpid()))
        for group in reversed(made[1:]):
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError, OSError):
                    (home / "cgroup.procs").write_text(pid)
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()

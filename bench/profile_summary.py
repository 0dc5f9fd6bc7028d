"""py-spy on `serverprep serve`: recording a profile (for bench/fleet.py and bench/logs.py), and
where a profile (raw, collapsed stacks with --threads) says the time went.

    python bench/profile_summary.py PROFILE.txt
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import peers
import procs

# "func (path/to/file.py:123)" -> function and file
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# The first matching rule names the part of the program a frame belongs to.
AREAS = (
    ("service/store", "serverprep store (its own code)"),
    ("service/logbus", "serverprep log bus"),
    ("service/journal", "serverprep log bus"),
    ("service/ssh", "serverprep ssh"),
    ("service/api", "serverprep api"),
    ("service/", "serverprep service, other"),
    ("drivers/", "serverprep drivers"),
    ("serverprep/v1", "generated protobuf code"),
    ("peewee", "peewee and sqlite3 (the C library runs inside peewee's execute)"),
    ("playhouse", "peewee and sqlite3 (the C library runs inside peewee's execute)"),
    ("sqlite3", "peewee and sqlite3 (the C library runs inside peewee's execute)"),
    ("asyncssh", "asyncssh"),
    ("cryptography", "cryptography"),
    ("grpc", "grpc"),
    ("google/protobuf", "protobuf"),
    ("selector_events", "asyncio socket transports (send/recv syscalls)"),
    ("asyncio", "asyncio, other"),
    ("concurrent/futures", "thread pool"),
    ("threading", "threading"),
)

# Frames of serverprep's own code, for the inclusive table (what its functions cost with callees).
OWN = ("service/", "drivers/")


def area(file: str) -> str:
    for needle, name in AREAS:
        if needle in file:
            return name
    return "other: " + file.rsplit("/", 1)[-1]


def parse(path: Path) -> list[tuple[str, list[tuple[str, str]], int]]:
    """(thread, frames root first as (function, file), samples) per collapsed line."""
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        head, _, count = line.rpartition(" ")
        if not head or not count.isdigit():
            continue
        parts = head.split(";")
        thread = next((p for p in parts if p.startswith("thread ")), "thread ?")
        frames = []
        for part in parts:
            m = FRAME.match(part)
            if m and not part.startswith(("process ", "thread ")):
                frames.append((m["func"], m["file"]))
        stacks.append((thread, frames, int(count)))
    return stacks


def summarize(path: Path, top: int = 15) -> str:
    stacks = parse(path)
    total = sum(n for _, _, n in stacks)
    if not total:
        return f"(no samples in {path})"
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    for thread, frames, n in stacks:
        threads[thread] += n
        if not frames:
            continue
        func, file = frames[-1]
        self_time[f"{func} ({file.rsplit('/', 2)[-1] if '/' in file else file})"] += n
        areas[area(file)] += n
        for name in {f"{f} ({p})" for f, p in frames if p.startswith(OWN) or "/serverprep/" in p}:
            inclusive[name] += n

    def share(counter: Counter[str]) -> list[str]:
        return [f"| {100 * n / total:5.1f} % | {name} |" for name, n in counter.most_common(top)]

    return "\n".join([
        f"{total} samples of busy threads (py-spy, idle excluded).",
        "",
        "| share | thread |", "|---|---|", *share(threads), "",
        "| share | where the innermost frame is (self time by area) |", "|---|---|", *share(areas), "",
        "| share | function, self time |", "|---|---|", *share(self_time), "",
        "| share | serverprep function, inclusive (with what it calls) |", "|---|---|", *share(inclusive),
    ])


def record(pid: int, out: Path) -> subprocess.Popen:
    """Start py-spy (from the bench's own environment) on ``pid``, writing to ``out``; it has
    attached when this returns."""
    venv = peers.ensure_venv()
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(venv / "bin/py-spy"), "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
            "--threads", "--nonblocking", "--output", str(out)]
    proc = procs.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return proc


def finish(proc: subprocess.Popen) -> None:
    """Stop py-spy: it writes its output when interrupted."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(30)
    procs.stop(proc)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))

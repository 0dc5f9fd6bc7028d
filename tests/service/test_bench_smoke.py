"""The fleet benchmark runs end to end at small N with every tool, so that it cannot rot (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.sshd
def test_fleet_bench_smoke_runs_every_tool_and_counts_the_same_work(tmp_path: Path) -> None:
    """bench/fleet.py --smoke: N=3, one round, serverprep, the asyncssh floor (floor, floor-now,
    floor-logins), pyinfra and Ansible (and serverprep on PostgreSQL when
    $SERVERPREP_TEST_POSTGRES_URL is set, as in CI).

    Proves: the recording of serverprep's commands and its replay by floor-now over as many
    connections (their counts must agree), and by floor-logins as the same connections with one
    command each (fewer processes); the replay of serverprep 0.1's per-step commands
    (bench/recordings) by the floor, pyinfra and Ansible (one session per recorded command);
    every counter the table prints; the Prepare probe (two more preparations while the fleet runs,
    each counted once in the per-server figures); of each Prepare, the part after the service wrote
    the preparation; the line on the service's threads blocked in the kernel (bench/kwait.py, its
    own tests). Does not prove anything about speed.
    The first run on a machine installs pyinfra and ansible-core from PyPI (about 15 s).
    """
    out = tmp_path / "samples.json"
    tools = ["serverprep", "floor", "floor-now", "floor-logins", "pyinfra", "ansible"]
    if os.environ.get("SERVERPREP_TEST_POSTGRES_URL"):  # always in CI: ./dev test starts PostgreSQL
        tools.append("serverprep-postgres")
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench/fleet.py"), "--smoke", "--tools", ",".join(tools), "--json", str(out), "--timeout", "300",
         "--prepare-probes", "2", "--probe-interval", "0.05"],
        capture_output=True, text=True, timeout=360, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    now, old = data["recordings"]["now"], data["recordings"]["peers"]
    samples = {s["tool"]: s for s in data["samples"]}
    assert set(samples) == set(tools)
    assert all(not s["failures"] and s["wall"] > 0 and s["peak_rss_kib"] > 0 for s in samples.values()), samples
    sp, floor_now, floor = samples["serverprep"], samples["floor-now"], samples["floor"]
    assert sp["connections"] == floor_now["connections"] == len(now) == 2
    assert sp["sessions"] == floor_now["sessions"] == sum(len(c) for c in now)
    assert sp["tasks"] == pytest.approx(floor_now["tasks"], rel=0.1) and sp["tasks"] > sp["sessions"]
    assert data["recordings"]["logins"] == [[{"command": "true", "stdin": "", "status": 0}]] * len(now)
    logins = samples["floor-logins"]
    assert logins["connections"] == logins["sessions"] == floor_now["connections"] and logins["tasks"] < floor_now["tasks"]
    old_commands = sum(len(c) for c in old)
    assert floor["sessions"] == samples["pyinfra"]["sessions"] == samples["ansible"]["sessions"] == old_commands
    assert sp["sessions"] < old_commands  # serverprep today opens fewer sessions than it did (one agent for the steps)
    assert sp["db_commits"] is not None and sp["db_commits"] > 0
    assert len(sp["prepare_ms"]) == 3 and sp["status_ms"]
    # The part of each Prepare after the service wrote the preparation: within the call (the same clock, 5 ms of slack).
    assert len(sp["prepare_back_ms"]) == 3 and all(0 <= b <= p + 5 for b, p in zip(sp["prepare_back_ms"], sp["prepare_ms"], strict=True))
    assert "from the service writing the preparation to the answer" in run.stdout
    assert [name for name, _ in sp["channel_states"]][-1] == "READY" and "The bench's channel to the service" in run.stdout
    assert len(sp["probe_ms"]) == 2 and "the Prepare probe, one call at a time" in run.stdout
    assert sp["kernel"]["failure"] == "" and isinstance(sp["kernel"]["waits"], list)
    assert "Its threads blocked in the kernel (state D, or writing to a full socket or pipe" in run.stdout
    if "serverprep-postgres" in samples:
        pg = samples["serverprep-postgres"]
        assert pg["sessions"] == sp["sessions"] and pg["db_commits"] is None and len(pg["prepare_ms"]) == 3
    assert "| **serverprep** |" in run.stdout and "| ansible |" in run.stdout


@pytest.mark.sshd
def test_database_stall_bench_runs_end_to_end(tmp_path: Path) -> None:
    """bench/dbstall.py at small size: a real sshd, `serverprep serve` on SQLite, another process
    holding the database's write lock for 1 s while a step prints 20,000 lines. Proves the bench's
    parts run and that every line is stored after the stall; asserts nothing about memory or time
    (whether the budget held the reader depends on timing, so only the counter's presence is checked)."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench/dbstall.py"), "--lines", "20000", "--stall", "1", "--timeout", "200",
         "--serve=--max-unstored-bytes=1048576"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "- lock: locked;" in run.stdout
    assert "preparation PREPARATION_STATE_SUCCEEDED; lines stored 20,000 of 20,000" in run.stdout
    holds = run.stdout.split("serverprep_log_holds_total ")[1].split(",")[0]
    assert holds != "n/a" and float(holds) >= 0, run.stdout  # the service serves the counter (any count)


@pytest.mark.sshd
def test_log_pipeline_bench_runs_end_to_end(tmp_path: Path) -> None:
    """bench/logs.py at small size: a real sshd, `serverprep serve` on SQLite, a command printing
    3,000 lines in each phase (as fast as it can, paced, with a stalled reader) and 3 live readers.
    Proves the bench's parts run, that every reader got every line and the database holds them all
    (the bench exits non-zero otherwise), and that every column of its table is filled; asserts
    nothing about speed or memory."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench/logs.py"), "--lines", "3000", "--rounds", "1", "--readers", "3", "--rate", "20000",
         "--timeout", "200"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith(("| burst", "| paced"))]
    assert len(rows) == 2, run.stdout
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")][1:]
        assert len(cells) == 5 and all(c and "nan" not in c for c in cells), row
    assert "stalled reader, when it read again: not cut off" in run.stdout


def test_group_commit_bench_runs_end_to_end(tmp_path: Path) -> None:
    """bench/groups.py at small size: both modes, an idle and a busy loop, real SQLite. Proves it
    runs and fills its table; asserts nothing about speed."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench/groups.py"), "--writers", "4", "--appends", "5", "--rounds", "1"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith(("| idle", "| busy"))]
    assert len(rows) == 2 and all(line.count("|") == 4 and "n/a" not in line for line in rows), run.stdout


def test_sweep_bench_runs_end_to_end(tmp_path: Path) -> None:
    """bench/sweep.py at small size: the real service with 20 servers, 5 of them prepared twice (a
    refusing port), the gateway's sweep both ways. Proves it runs and counts Status calls: none with
    the briefs once every row is known, one per server without them; asserts nothing about speed."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench/sweep.py"), "--servers", "20", "--prepared", "5", "--times", "2", "--sweeps", "1"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("20 servers, 5 of them prepared 2 times each"), run.stdout
    assert "with the briefs" in lines[1] and lines[1].endswith("Status calls per sweep: 0)"), run.stdout
    assert "a Status call per server" in lines[2] and lines[2].endswith("Status calls per sweep: 20)"), run.stdout


def test_accept_bench_runs_end_to_end(tmp_path: Path) -> None:
    """bench/accept.py at small size: a grpc.aio server beside a slowed loop, with grpcio's reader, the
    draining one, and on a loop of its own. Proves it runs and that every call and stream ended well
    all three ways; asserts nothing about speed."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench/accept.py"), "--calls", "20", "--streams", "5", "--flips", "3", "--pass-ms", "1",
         "--rounds", "1"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("round 1")]
    assert [row.split()[2].rstrip(":") for row in rows] == ["grpcio", "drain", "own-loop"], run.stdout
    for row in rows:
        assert "{'OK': 20}" in row and "timed out" not in row, row

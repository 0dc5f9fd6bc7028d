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
    """bench/fleet.py --smoke: N=3, one round, serverprep, the asyncssh floor, pyinfra and Ansible
    (and serverprep on PostgreSQL when $SERVERPREP_TEST_POSTGRES_URL is set, as in CI).

    Proves: the recording of serverprep's commands, their replay by the floor, pyinfra and
    Ansible over the same sshd, and every counter the table prints. The floor replays exactly
    what serverprep sent over as many connections, so their counts must agree; the other tools
    send the same commands over their own connections, so their sessions per server must
    equal the number of recorded commands. Does not prove anything about speed.
    The first run on a machine installs pyinfra and ansible-core from PyPI (about 15 s).
    """
    out = tmp_path / "samples.json"
    tools = ["serverprep", "floor", "pyinfra", "ansible"]
    if os.environ.get("SERVERPREP_TEST_POSTGRES_URL"):  # always in CI: ./dev test starts PostgreSQL
        tools.append("serverprep-postgres")
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench/fleet.py"), "--smoke", "--tools", ",".join(tools), "--json", str(out), "--timeout", "300"],
        capture_output=True, text=True, timeout=360, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    commands = sum(len(connection) for connection in data["recording"])
    samples = {s["tool"]: s for s in data["samples"]}
    assert set(samples) == set(tools)
    assert all(not s["failures"] and s["wall"] > 0 and s["peak_rss_kib"] > 0 for s in samples.values()), samples
    sp, floor = samples["serverprep"], samples["floor"]
    assert sp["connections"] == floor["connections"] == len(data["recording"])
    assert sp["sessions"] == floor["sessions"] == commands
    assert sp["tasks"] == pytest.approx(floor["tasks"], rel=0.1) and sp["tasks"] > commands
    assert samples["pyinfra"]["sessions"] == samples["ansible"]["sessions"] == commands
    assert sp["db_commits"] is not None and sp["db_commits"] > 0
    assert len(sp["prepare_ms"]) == 3 and sp["status_ms"]
    if "serverprep-postgres" in samples:
        pg = samples["serverprep-postgres"]
        assert pg["sessions"] == commands and pg["db_commits"] is None and len(pg["prepare_ms"]) == 3
    assert "| **serverprep** |" in run.stdout and "| ansible |" in run.stdout

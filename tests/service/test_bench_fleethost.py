"""The fleet bench's simulated servers (bench/fleethost.py): what they share with this machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Holds a file lock (flock(1)) while it reads /proc/locks, where the lock would be listed.
HOLDING_A_LOCK = 'f=$(mktemp) && flock "$f" sh -c "wc -c < /proc/locks"; rm -f "$f"; . /etc/os-release; echo $VERSION_CODENAME'


@pytest.mark.sshd
def test_the_fleets_servers_read_their_own_empty_proc_locks_not_this_machines() -> None:
    """Proves: a command run over SSH on the simulated fleet that holds a file lock, which this
    machine's /proc/locks would list, reads an empty /proc/locks, and still sees the fleet's other
    stand-ins (its os-release). Does not prove what the bind mount saves (the eighth round of
    bench/README.md measured that)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from fleethost import fleet_host
    finally:
        sys.path.remove(str(ROOT / "bench"))
    with fleet_host(1) as host:
        run = subprocess.run(
            ["ssh", "-i", str(host.key_file), "-o", f"UserKnownHostsFile={host.known_hosts}", "-o", "BatchMode=yes",
             "-p", str(host.ports[0]), f"{host.user}@{host.host}", HOLDING_A_LOCK],
            capture_output=True, text=True, timeout=60,
        )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0", "bookworm"]

"""bench/cpusplit.py (the fleet bench's --split-cpu) on this machine's real control groups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Run in a child interpreter: the split moves the whole process, which must not be pytest.
SCRIPT = """
import json, os, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import cpusplit

def where(pid):
    # the group of the hierarchy the split uses: v1's cpu controller, or the unified one
    lines = [l.split(":", 2) for l in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    v1 = [path for _, controllers, path in lines if "cpu" in controllers.split(",")]
    return v1[0] if v1 else [path for number, _, path in lines if number == "0"][0]

before = where(os.getpid())
with cpusplit.split() as cpu:
    cpu.enter("servers")
    server = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], start_new_session=True, stdout=subprocess.DEVNULL)
    for _ in range(100):  # until the shell has started its child (this process is in the group too, for now)
        if len(set(cpu.members("servers")) - {os.getpid()}) == 2:
            break
        time.sleep(0.05)
    cpu.enter("tools")
    tool = subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL)
    seen = {
        "server": where(server.pid), "tool": where(tool.pid), "bench": where(os.getpid()),
        "servers": cpu.members("servers"), "tools": cpu.members("tools"), "base": str(cpu.base),
        "weights": [(cpu.group(g) / cpu.weight_file).read_text().strip() for g in cpusplit.GROUPS],
        "server_pid": server.pid, "tool_pid": tool.pid,
    }
    tool.kill(); tool.wait()
    # The server's shell is left running on purpose: the split must move it out to remove its group.
seen["after"] = where(os.getpid())
seen["before"] = before
seen["base_exists"] = Path(seen["base"]).exists()
seen["server_after"] = where(server.pid)
os.killpg(server.pid, 9); server.wait()
print(json.dumps(seen))
"""


def test_split_cpu_places_what_each_side_starts_and_removes_its_groups() -> None:
    """Proves: a process started after ``enter("servers")`` (and its own children) lands in the
    servers' group, one started after ``enter("tools")`` and the bench itself in the tools' group,
    the servers' with the lowest weight there is; on exit the bench is back where it was, a process still running in
    a group is moved out, and the groups are gone. Does not prove what the scheduler then does
    (the fleet bench's figures show that)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (it makes control groups)")
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import cpusplit

        cpusplit._hierarchy()
    except SystemExit as e:
        pytest.skip(str(e))  # no CPU controller to use here (a container, say)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "bench")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout)
    name = Path(seen["base"]).name
    assert name.startswith("serverprep-bench-")
    assert seen["server"].endswith(f"/{name}/servers") and seen["tool"].endswith(f"/{name}/tools")
    assert seen["bench"] == seen["tool"]
    assert seen["server_pid"] in seen["servers"] and seen["tool_pid"] in seen["tools"]
    assert len(seen["servers"]) == 2  # the shell and the sleep it started
    servers, tools = (int(w) for w in seen["weights"])
    assert servers < tools and servers in (1, 2)  # the lowest weight cgroup v2 (1) or v1 (2) accepts
    assert seen["after"] == seen["before"] and seen["server_after"] == seen["before"]
    assert not seen["base_exists"]

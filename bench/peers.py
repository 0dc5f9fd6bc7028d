"""The other tools, run against the same sshd with the same commands: the asyncssh floor, pyinfra, Ansible."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import procs
from fleethost import FleetHost
from recording import Recording

HERE = Path(__file__).resolve().parent
# Exact versions, so that a figure measured today can be measured again.
PEER_REQUIREMENTS = ("pyinfra==3.10.0", "ansible-core==2.19.14", "py-spy==0.4.3")
VENV = Path(os.environ.get("SERVERPREP_BENCH_VENV", "/var/cache/serverprep-bench/peers"))


@dataclass
class PeerResult:
    wall: float = float("nan")
    #: Largest resident set of the tool's process or of any process it waited for, in KiB.
    peak_rss_kib: int = 0
    failures: list[str] = field(default_factory=list)


def ensure_venv() -> Path:
    """The bench's own virtual environment with pyinfra, ansible-core and py-spy from PyPI (made once)."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    wanted = "\n".join(PEER_REQUIREMENTS) + "\n"
    stamp = VENV / "bench-requirements.txt"
    with open(VENV.parent / ".peers.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == wanted:
            return VENV
        print(f"bench: installing {' '.join(PEER_REQUIREMENTS)} into {VENV} (once)", file=sys.stderr)
        started = time.monotonic()
        shutil.rmtree(VENV, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin/pip"), "install", "-q", "--disable-pip-version-check", *PEER_REQUIREMENTS],
            check=True, stderr=subprocess.PIPE,
        )
        stamp.write_text(wanted)
        print(f"bench: installed in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return VENV


def _run(argv: list[str], cwd: Path, timeout: float, what: str, env: dict[str, str] | None = None) -> PeerResult:
    result = PeerResult()
    log = cwd / "output.log"
    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = procs.spawn(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        code, result.peak_rss_kib = procs.wait_with_rusage(proc, timeout, what)
    except TimeoutError as e:
        result.failures.append(str(e))
        return result
    result.wall = time.perf_counter() - started
    if code != 0:
        tail = log.read_text(errors="replace")[-1500:]
        result.failures.append(f"{what} exited with {code}:\n{tail}")
    return result


# -- the floor -----------------------------------------------------------------


def run_floor(host: FleetHost, recording: Recording, servers: int, timeout: float) -> PeerResult:
    """bench/floor.py in its own process; its wall time is measured inside it (no interpreter start-up)."""
    with tempfile.TemporaryDirectory(prefix="spb-floor-") as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({
            "host": host.host, "ports": host.ports, "user": host.user, "key_file": str(host.key_file),
            "known_hosts": str(host.known_hosts), "servers": servers, "connections": recording.to_json(),
        }))
        out = Path(tmp) / "result.json"
        with open(out, "wb") as f:
            proc = procs.spawn([sys.executable, str(HERE / "floor.py"), str(spec)], stdin=subprocess.DEVNULL, stdout=f)
        result = PeerResult()
        try:
            code, result.peak_rss_kib = procs.wait_with_rusage(proc, timeout, "the asyncssh floor")
        except TimeoutError as e:
            result.failures.append(str(e))
            return result
        if code != 0:
            result.failures.append(f"bench/floor.py exited with {code}")
            return result
        data = json.loads(out.read_text())
        result.wall = data["wall"]
        result.failures.extend(data["failures"])
        return result


# -- pyinfra -------------------------------------------------------------------

PYINFRA_INVENTORY = """\
import json
_spec = json.load(open({spec!r}))
fleet = [
    (f"s{{i:04d}}", {{
        "ssh_hostname": _spec["host"], "ssh_port": _spec["ports"][i % len(_spec["ports"])], "ssh_user": _spec["user"],
        "ssh_key": _spec["key_file"], "ssh_known_hosts_file": _spec["known_hosts"],
        "ssh_strict_host_key_checking": "yes", "ssh_allow_agent": False, "ssh_look_for_keys": False,
    }})
    for i in range(_spec["servers"])
]
"""

PYINFRA_DEPLOY = """\
import json
from pyinfra.operations import server
for i, command in enumerate(json.load(open({commands!r}))):
    server.shell(name=f"serverprep command {{i}}", commands=[command])
"""


def run_pyinfra(host: FleetHost, recording: Recording, servers: int, timeout: float) -> PeerResult:
    """pyinfra 3: every recorded command as one ``server.shell`` operation, ``--parallel N``."""
    if any(c.stdin for c in recording.commands):
        return PeerResult(failures=["pyinfra: the recorded commands read standard input, which server.shell cannot send"])
    venv = ensure_venv()
    with tempfile.TemporaryDirectory(prefix="spb-pyinfra-") as tmp:
        work = Path(tmp)
        _spec(work, host, servers)
        (work / "commands.json").write_text(json.dumps([c.command for c in recording.commands]))
        (work / "inventory.py").write_text(PYINFRA_INVENTORY.format(spec=str(work / "spec.json")))
        (work / "deploy.py").write_text(PYINFRA_DEPLOY.format(commands=str(work / "commands.json")))
        argv = [str(venv / "bin/pyinfra"), "inventory.py", "deploy.py", "-y", "--parallel", str(servers)]
        return _run(argv, work, timeout, "pyinfra", env={**os.environ, "HOME": tmp})


def _spec(work: Path, host: FleetHost, servers: int) -> None:
    (work / "spec.json").write_text(json.dumps({
        "host": host.host, "ports": host.ports, "user": host.user, "key_file": str(host.key_file),
        "known_hosts": str(host.known_hosts), "servers": servers,
    }))


# -- Ansible -------------------------------------------------------------------


def run_ansible(host: FleetHost, recording: Recording, servers: int, timeout: float) -> PeerResult:
    """ansible-core: every recorded command as one ``shell`` task, forks=N, pipelining, ControlPersist."""
    if any(c.stdin for c in recording.commands):
        return PeerResult(failures=["ansible: the recorded commands read standard input, which the shell module cannot send"])
    venv = ensure_venv()
    # A short path: ssh's control socket names must fit in 108 bytes.
    work = Path(tempfile.mkdtemp(prefix="spa-", dir="/tmp"))
    try:
        cp = work / "cp"
        cp.mkdir()
        names = [f"s{i:04d}" for i in range(servers)]
        # One ControlPath per inventory host: the default (%C, a hash of host, port and user) is the
        # same for every registration of one sshd and would let all of them share one connection.
        hosts = "\n".join(
            f"{n} ansible_host={host.host} ansible_port={host.port_for(i)} ansible_control_path={cp / n}" for i, n in enumerate(names)
        )
        (work / "inventory.ini").write_text(
            f"[fleet]\n{hosts}\n\n[fleet:vars]\nansible_user={host.user}\nansible_ssh_private_key_file={host.key_file}\n"
            "ansible_python_interpreter=/usr/bin/python3\n"
        )
        # !unsafe: the commands are shell text, not Jinja templates ({{.ServerVersion}} is docker's).
        tasks = "\n".join(
            f"    - name: serverprep command {i}\n      ansible.builtin.shell: !unsafe {json.dumps(c.command)}"
            for i, c in enumerate(recording.commands)
        )
        (work / "playbook.yml").write_text(f"- hosts: fleet\n  gather_facts: false\n  tasks:\n{tasks}\n")
        env = {
            **os.environ,
            "HOME": str(work),
            "ANSIBLE_CONFIG": str(work / "none.cfg"),
            "ANSIBLE_HOME": str(work / "home"),
            "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_FORKS": str(servers),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_SSH_ARGS": (
                f"-C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={host.known_hosts} "
                "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
            ),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "1",
        }
        try:
            return _run([str(venv / "bin/ansible-playbook"), "-i", "inventory.ini", "playbook.yml"], work, timeout, "ansible-playbook", env=env)
        finally:
            _close_masters(cp, host)
    finally:
        # Ansible's workers, stopped with it, may still be writing their local temp files.
        for _ in range(10):
            shutil.rmtree(work, ignore_errors=True)
            if not work.exists():
                break
            time.sleep(0.2)


def _close_masters(cp: Path, host: FleetHost) -> None:
    """End the ControlPersist masters Ansible left behind (they detach from its process group)."""
    sockets = [p for p in cp.iterdir() if p.is_socket()]
    for start in range(0, len(sockets), 64):
        closers = [
            subprocess.Popen(
                ["ssh", "-o", f"ControlPath={s}", "-O", "exit", f"{host.user}@{host.host}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for s in sockets[start : start + 64]
        ]
        for closer in closers:
            try:
                closer.wait(30)
            except subprocess.TimeoutExpired:
                closer.kill()
                closer.wait()

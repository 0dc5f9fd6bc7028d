"""The simulated fleet: one real sshd on loopback, in its own mount and PID namespaces, with stand-in package tools."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import procs  # noqa: E402

from harness.targets import APT_STANDINS, STANDIN, SUDO, KeyPair, ensure_host_user, free_port, wait_for_ssh  # noqa: E402

USER = "sp-bench"

DEBIAN_12 = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""

# A recording sshd forces this command on every session; sshd hands it the client's command
# exactly as sent (SSH_ORIGINAL_COMMAND) and the connection's addresses and ports
# (SSH_CONNECTION), which tell one SSH connection from another. It keeps the command, its stdin
# and its exit status, and runs it as sshd would have: `$SHELL -c COMMAND` with /bin/sh. The input
# is passed on as it arrives (tee), so that a command the client keeps talking to (serverprep's
# agent, fed one step after another) runs as it would without the recorder.
RECORDER = r"""#!/bin/sh
d="$REC/$(date +%s%N)-$$"
mkdir "$d" || exit 254
printf '%s' "$SSH_ORIGINAL_COMMAND" > "$d/command"
echo "$SSH_CONNECTION" > "$d/connection"
tee "$d/stdin" | /bin/sh -c "$SSH_ORIGINAL_COMMAND"
rc=$?
echo "$rc" > "$d/status"
exit "$rc"
"""

# NO_SHARED_LOCKS: the servers read an empty file as /proc/locks (a bind mount in their
# namespace), not this machine's. serverprep's apt steps read /proc/locks to say who holds the dpkg
# lock, and reading it takes the kernel's one lock over every file lock of the machine for writing
# (fs/locks.c: locks_start). With a thousand CPU-starved fleet processes that took seconds, and
# meanwhile every fcntl lock call of the machine waited, the service's SQLite among them: at
# N=1000 single writes waited for seconds in percpu_rwsem_wait (fcntl), as bench/kwait.py shows
# (bench/README.md, eighth round). On a real fleet each server's /proc/locks is its own kernel's;
# the commands and the processes they start are the same either way (no lock is held here, so
# the report is empty).

# sshd's verbose log lines that the counters read (OpenSSH 9.x wording).
ACCEPTED = re.compile(r"Accepted (publickey|password) for ")
SESSION = re.compile(r"Starting session: ")
# What a client sees as a refused or dropped connection, from sshd's side.
REFUSALS = re.compile(r"drop connection|MaxStartups|MaxSessions|Too many|too many|error: ")


# sshd listens on at most 16 addresses; each listening socket queues at most 128 connections
# (SSH_LISTEN_BACKLOG, compiled in), and a SYN that finds its queue full is dropped and retried
# a second later. Spreading the fleet over 16 sockets of the one sshd gives 2048 places.
MAX_LISTENERS = 16


def sshd_config(ports: list[int], work: Path, servers: int, record: bool) -> str:
    """sshd settings for ``servers`` simultaneous clients (see bench/README.md for why each is there)."""
    listen = "".join(f"ListenAddress 127.0.0.1:{port}\n" for port in ports)
    return (
        f"{listen}HostKey {work / 'host_ed25519'}\n"
        f"PidFile {work / 'sshd.pid'}\nAuthorizedKeysFile {work / 'authorized_keys'}\nStrictModes no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM yes\n"
        f"AllowUsers {USER}\n"
        # Unauthenticated connections at once: every server of the fleet connects at the same moment.
        f"MaxStartups {2 * servers + 10}\n"
        # Sessions multiplexed on one connection (Ansible's ControlPersist master).
        "MaxSessions 64\n"
        "LogLevel VERBOSE\n"
        + (f"ForceCommand {work / 'recorder'}\n" if record else "")
    )


@dataclass
class Counts:
    """What the fleet's sshd did: authenticated connections, sessions (exec, subsystem), processes."""

    connections: int = 0
    sessions: int = 0
    tasks: int = 0
    refusals: list[str] = field(default_factory=list)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.connections - other.connections,
            self.sessions - other.sessions,
            self.tasks - other.tasks,
            self.refusals[len(other.refusals) :],
        )


class TaskCounter:
    """Processes (and threads) created in sshd's PID namespace, from the kernel's PID counter.

    The namespace holds only sshd and what runs under it, so ``ns_last_pid`` advances by one for
    every task created there. It is read from inside the namespace (``nsenter``), which costs one
    PID per reading, subtracted. PIDs wrap at pid_max; a sampler reads often enough to see each wrap.
    """

    def __init__(self, init_pid: int):
        self.init_pid = init_pid
        self.pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        self._probes = 0
        self._total = 0
        self._last = self._read()
        self._probes = 0  # the first reading is the baseline
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-task-counter", daemon=True)
        self._thread.start()

    def _read(self) -> int:
        out = subprocess.run(
            ["nsenter", "--target", str(self.init_pid), "--pid", "--", "cat", "/proc/sys/kernel/ns_last_pid"],
            capture_output=True, text=True, timeout=30,
        )
        if out.returncode != 0:
            raise RuntimeError(f"cannot read the fleet's PID counter: {out.stderr.strip()}")
        self._probes += 1
        return int(out.stdout)

    def total(self) -> int:
        with self._lock:
            now = self._read()
            # After a wrap the kernel starts again above the 300 reserved PIDs.
            self._total += now - self._last if now >= self._last else (self.pid_max - self._last) + (now - 300)
            self._last = now
            return self._total - self._probes

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            with contextlib.suppress(Exception):
                self.total()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class FleetHost:
    """One sshd that every server of the simulated fleet is a registration of."""

    host: str
    #: The sshd's listening ports; server i of the fleet is registered on ports[i % len(ports)].
    ports: list[int]
    user: str
    key: KeyPair
    key_file: Path
    host_key: str
    known_hosts: Path
    work: Path
    proc: subprocess.Popen
    tasks: TaskCounter

    @property
    def port(self) -> int:
        return self.ports[0]

    def port_for(self, index: int) -> int:
        return self.ports[index % len(self.ports)]

    @property
    def log(self) -> Path:
        return self.work / "sshd.log"

    def counts(self) -> Counts:
        text = self.log.read_text(errors="replace")
        return Counts(
            connections=len(ACCEPTED.findall(text)),
            sessions=len(SESSION.findall(text)),
            tasks=self.tasks.total(),
            refusals=[line for line in text.splitlines() if REFUSALS.search(line)],
        )

    def behave(self, program: str, text: str) -> None:
        """Shell text the stand-in ``program`` sources on every call ('' for none)."""
        path = self.work / "sim" / "behavior" / program
        if text:
            path.write_text(text + "\n")
            path.chmod(0o644)
        else:
            path.unlink(missing_ok=True)

    def recorded(self) -> Path:
        """Where a recording host (``fleet_host(..., record=True)``) keeps what it saw."""
        return self.work / "recorded"


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _init_pid(unshare_pid: int, timeout: float = 10) -> int:
    """The namespace's PID 1 (sshd), seen from here: the child that ``unshare --fork`` made."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
            if children:
                return int(children[0])
        time.sleep(0.05)
    raise RuntimeError("unshare started no process for sshd")


@contextlib.contextmanager
def fleet_host(servers: int, *, record: bool = False) -> Iterator[FleetHost]:
    """Start the fleet's sshd, sized for ``servers`` clients connecting at once. Needs root.

    With ``record``, every command run over SSH is kept (see RECORDER and ``recorded()``).
    """
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (it starts sshd in its own mount and PID namespaces)")
    for tool in ("/usr/sbin/sshd", "unshare", "nsenter", "ssh-keygen"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is missing (apt-get install openssh-server util-linux)")
    ensure_host_user(USER)
    work = Path(tempfile.mkdtemp(prefix="spb-"))
    proc = None
    tasks = None
    try:
        os.chmod(work, 0o755)
        key = KeyPair.generate(work, "client")
        key_file = work / "client"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "host_ed25519")], check=True)
        (work / "authorized_keys").write_text(key.public + "\n")
        os.chmod(work / "authorized_keys", 0o644)
        sim = _standins(work, USER)
        (work / "os-release").write_text(DEBIAN_12)
        os.chmod(work / "os-release", 0o644)
        (work / "proc-locks").write_text("")  # see NO_SHARED_LOCKS
        os.chmod(work / "proc-locks", 0o444)
        (work / "recorder").write_text(RECORDER.replace("$REC", str(work / "recorded")))
        os.chmod(work / "recorder", 0o755)
        (work / "recorded").mkdir()
        os.chmod(work / "recorded", 0o777)
        apt = work / "etc-apt"
        apt.mkdir()
        uid = int(subprocess.run(["id", "-u", USER], capture_output=True, text=True, check=True).stdout)
        for child in Path("/etc/apt").iterdir():
            if child.is_dir() and not child.is_symlink():
                (apt / child.name).mkdir()
                os.chown(apt / child.name, uid, -1)
        os.chown(apt, uid, -1)
        ports = free_ports(min(MAX_LISTENERS, max(1, servers)))
        config = work / "sshd_config"
        config.write_text(sshd_config(ports, work, servers, record))
        Path("/run/sshd").mkdir(exist_ok=True)
        mounts = " && ".join(
            f"mount --bind {src} {dst}"
            for src, dst in (
                (sim / "bin", "/usr/local/bin"),
                (apt, "/etc/apt"),
                (work / "os-release", "/etc/os-release"),
                (work / "os-release", "/usr/lib/os-release"),
                (work / "proc-locks", "/proc/locks"),
            )
        )
        # --pid --fork: sshd is PID 1 of a namespace of its own, so the PID counter counts only
        # what runs under it; --kill-child: the namespace dies with unshare.
        argv = [
            "unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc", "--kill-child",
            "sh", "-c", f"{mounts} && exec /usr/sbin/sshd -D -e -f {config}",
        ]
        with open(work / "sshd.log", "wb") as out:
            proc = procs.spawn(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        for port in ports:
            wait_for_ssh("127.0.0.1", port, 15, proc, work / "sshd.log")
        tasks = TaskCounter(_init_pid(proc.pid))
        host_key = " ".join((work / "host_ed25519.pub").read_text().split()[:2])
        known_hosts = work / "known_hosts"
        known_hosts.write_text("".join(f"[127.0.0.1]:{port} {host_key}\n" for port in ports))
        yield FleetHost(
            host="127.0.0.1", ports=ports, user=USER, key=key, key_file=key_file, host_key=host_key,
            known_hosts=known_hosts, work=work, proc=proc, tasks=tasks,
        )
    finally:
        if tasks is not None:
            tasks.close()
        if proc is not None:
            procs.stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def _standins(work: Path, user: str) -> Path:
    """Recording stand-ins for the package tools and sudo; Docker is not yet running, so every step runs."""
    sim = work / "sim"
    (sim / "bin").mkdir(parents=True)
    (sim / "behavior").mkdir()
    for name in APT_STANDINS:
        path = sim / "bin" / name
        path.write_text(STANDIN.replace("{name}", name).replace("$SIM", str(sim)))
        path.chmod(0o755)
    (sim / "bin" / "sudo").write_text(SUDO.replace("$SIM", str(sim)))
    (sim / "bin" / "sudo").chmod(0o755)
    (sim / "calls").touch()
    (sim / "calls").chmod(0o666)
    for path in (sim, sim / "bin", sim / "behavior"):
        path.chmod(0o755)
    (sim / "behavior" / "systemctl").write_text('case "$1" in is-enabled|is-active) exit 3;; esac\n')
    return sim

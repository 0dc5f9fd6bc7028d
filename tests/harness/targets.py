"""Start real SSH targets: a host sshd in a mount namespace, or a Debian root booted under systemd-nspawn."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("SERVERPREP_TEST_CACHE", "/var/cache/serverprep-tests"))
MIRROR = os.environ.get("SERVERPREP_TEST_MIRROR", "http://deb.debian.org/debian")
BASE_PACKAGES = "systemd,systemd-sysv,dbus,openssh-server,sudo,ca-certificates,iproute2"


@dataclass
class KeyPair:
    private: str
    public: str

    @classmethod
    def generate(cls, directory: Path, name: str = "id_ed25519") -> KeyPair:
        path = directory / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "serverprep-test", "-f", str(path)], check=True)
        return cls(private=path.read_text(), public=(directory / f"{name}.pub").read_text().strip())


@dataclass
class Target:
    host: str
    port: int
    user: str
    key: KeyPair
    host_key: str
    password: str = ""
    root: Path | None = None
    extra: dict = field(default_factory=dict)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_ssh(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"target exited with {proc.returncode} before sshd answered:\n{text}")
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.settimeout(2)
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.3)
    text = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"no sshd on {host}:{port} after {timeout:.0f}s\n{text}")


# -- a host sshd, optionally seeing a different root --------------------------


def ensure_host_user(name: str) -> None:
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
    # An unusable but not locked password: key logins work, and sshd does not refuse the account.
    subprocess.run(["usermod", "-p", "*", name], check=True)


@contextlib.contextmanager
def host_sshd(
    user: str,
    *,
    os_release: str | None = None,
    password: str = "",
    extra_config: str = "",
    _pre_mount: str = "",
) -> Iterator[Target]:
    """A real OpenSSH server on 127.0.0.1:<free port> for ``user``.

    With ``os_release``, sshd runs in a private mount namespace where /etc/os-release
    holds that text, so the server looks like another OS to serverprep.
    """
    ensure_host_user(user)
    work = Path(tempfile.mkdtemp(prefix="sp-sshd-"))
    os.chmod(work, 0o755)
    key = KeyPair.generate(work, "client")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "host_ed25519")], check=True)
    auth = work / "authorized_keys"
    auth.write_text(key.public + "\n")
    os.chmod(auth, 0o644)
    if password:
        subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True)
    port = free_port()
    config = work / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {work / 'host_ed25519'}\n"
        f"PidFile {work / 'sshd.pid'}\nAuthorizedKeysFile {auth}\nStrictModes no\n"
        f"PasswordAuthentication {'yes' if password else 'no'}\nKbdInteractiveAuthentication no\n"
        f"UsePAM yes\nAllowUsers {user}\nMaxStartups 100:30:200\nLogLevel VERBOSE\n{extra_config}"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    sshd = ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)]
    if os_release is not None:
        fake = work / "os-release"
        fake.write_text(os_release)
        os.chmod(fake, 0o644)
        script = f'mount --bind "$1" /etc/os-release && mount --bind "$1" /usr/lib/os-release && {_pre_mount} shift && exec "$@"'
        sshd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(fake), *sshd]
    log = work / "sshd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(sshd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_ssh("127.0.0.1", port, 15, proc, log)
        host_key = " ".join((work / "host_ed25519.pub").read_text().split()[:2])
        yield Target(host="127.0.0.1", port=port, user=user, key=key, host_key=host_key, password=password, root=work,
                     extra={"log": log, "proc": proc})
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


# -- Debian under systemd-nspawn ----------------------------------------------


def rootfs_tarball(release: str) -> Path:
    """A cached debootstrap of ``release`` (made once, about a minute)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{release}.tar"
    with open(CACHE / f"{release}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        build = Path(tempfile.mkdtemp(prefix=f"sp-{release}-", dir=CACHE))
        try:
            subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", release, str(build / "root"), MIRROR],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            partial = tarball.with_suffix(".tar.part")
            subprocess.run(["tar", "-C", str(build / "root"), "-cf", str(partial), "."], check=True)
            partial.rename(tarball)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return tarball


def _unique_loopback() -> str:
    return f"127.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"


@contextlib.contextmanager
def nspawn_debian(
    release: str = "bookworm",
    *,
    user: str = "admin",
    sudo: str = "nopasswd",
    password: str = "",
    boot_timeout: float = 120,
) -> Iterator[Target]:
    """A Debian root booted with systemd as PID 1, sshd on its own loopback address.

    ``sudo`` is "nopasswd" (sudoers NOPASSWD), "password" (sudo asks for ``password``)
    or "none" (the user may not sudo).
    """
    tarball = rootfs_tarball(release)
    work = Path(tempfile.mkdtemp(prefix=f"sp-{release}-target-"))
    root = work / "root"
    root.mkdir()
    os.chmod(work, 0o755)
    os.chmod(root, 0o755)
    subprocess.run(["tar", "-C", str(root), "-xf", str(tarball)], check=True)
    address = _unique_loopback()
    machine = f"sp-{secrets.token_hex(4)}"
    key = KeyPair.generate(work)
    for old in (root / "etc/ssh").glob("ssh_host_*"):
        old.unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "etc/ssh/ssh_host_ed25519_key")], check=True)
    host_key = " ".join((root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2])
    (root / "etc/ssh/sshd_config.d/serverprep-test.conf").write_text(
        f"ListenAddress {address}\nPasswordAuthentication yes\nMaxStartups 100:30:200\n"
    )
    (root / "etc/hostname").write_text(machine + "\n")
    with open(root / "etc/hosts", "a") as hosts:
        hosts.write(f"127.0.1.1 {machine}\n")
    chroot = ["chroot", str(root)]
    subprocess.run([*chroot, "useradd", "-m", "-s", "/bin/bash", user], check=True)
    if password:
        subprocess.run([*chroot, "chpasswd"], input=f"{user}:{password}\n", text=True, check=True)
    ssh_dir = root / "home" / user / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "authorized_keys").write_text(key.public + "\n")
    subprocess.run([*chroot, "chown", "-R", f"{user}:{user}", f"/home/{user}/.ssh"], check=True)
    if sudo != "none":
        rule = f"{user} ALL=(ALL) NOPASSWD:ALL\n" if sudo == "nopasswd" else f"{user} ALL=(ALL) ALL\n"
        sudoers = root / "etc/sudoers.d/serverprep-test"
        sudoers.write_text(rule)
        os.chmod(sudoers, 0o440)
    # The target shares the host's network namespace, where /proc/sys is read-only
    # to it: dockerd cannot turn forwarding on itself, so it must already be on.
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    log = work / "nspawn.log"
    env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "0"}
    cmd = ["systemd-nspawn", "-q", "--register=no", "--keep-unit", "--capability=all", "-D", str(root), "--boot", f"--machine={machine}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for_ssh(address, 22, boot_timeout, proc, log)
        yield Target(host=address, port=22, user=user, key=key, host_key=host_key, password=password, root=root,
                     extra={"machine": machine, "proc": proc, "log": log})
    finally:
        stop_nspawn(proc)
        shutil.rmtree(work, ignore_errors=True)


def stop_nspawn(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    # SIGTERM asks systemd-nspawn to shut the container down cleanly (SIGRTMIN+3 to its init).
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# -- simulated package managers over a real sshd -------------------------------

STANDIN = r"""#!/bin/sh
# Stand-in for {name}: records its arguments, then does what $SIM/behavior/{name} says.
{ printf '%s' "{name} $*" | tr '\n' ' '; echo; } >> "$SIM/calls"
if [ -f "$SIM/behavior/{name}" ]; then . "$SIM/behavior/{name}"; fi
exit 0
"""

SUDO = r"""#!/bin/sh
# Stand-in for sudo: records the call, does what $SIM/behavior/sudo says, reads a password line for
# -S, runs the command as the caller.
{ printf '%s' "sudo $*" | tr '\n' ' '; echo; } >> "$SIM/calls"
if [ -f "$SIM/behavior/sudo" ]; then . "$SIM/behavior/sudo"; fi
need_password=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    -S) need_password=1; shift ;;
    -p) shift 2 ;;
    -n|-k) shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done
if [ "$need_password" = 1 ]; then
  IFS= read -r given || given=""
  if [ -f "$SIM/sudo-password" ] && [ "$given" != "$(cat "$SIM/sudo-password")" ]; then
    echo "sudo: 1 incorrect password attempt" >&2; exit 1
  fi
fi
exec "$@"
"""

COMMON_STANDINS = ("systemctl", "usermod", "docker", "docker-compose", "curl", "journalctl")
APT_STANDINS = ("apt-get", "dpkg", "dpkg-query", *COMMON_STANDINS)
DNF_STANDINS = ("dnf", "rpm", *COMMON_STANDINS)
DEFAULT_STANDINS = APT_STANDINS


@contextlib.contextmanager
def simulated_host(
    user: str,
    os_release: str,
    *,
    standins: tuple[str, ...] = DEFAULT_STANDINS,
    password: str = "",
    writable: tuple[str, ...] = ("/etc/apt",),
) -> Iterator[Target]:
    """A real sshd and shell whose package tools are recording stand-ins (a simulation).

    The stand-ins replace /usr/local/bin inside sshd's private mount namespace, so
    they come first on the login PATH; nothing on the host changes. ``extra["sim"]``
    is the directory with ``calls`` (one line per call) and ``behavior/NAME`` (shell
    text a stand-in sources: ``exit 100``, ``sleep 60``, ``echo text``). Each path in
    ``writable`` (which must exist here) is replaced, in that namespace only, by an empty
    directory the user owns, so plans that write configuration can run unprivileged.
    """
    ensure_host_user(user)
    sim = Path(tempfile.mkdtemp(prefix="sp-sim-"))
    os.chmod(sim, 0o777)
    bin_dir = sim / "bin"
    (sim / "behavior").mkdir(parents=True)
    os.chmod(sim / "behavior", 0o777)
    bin_dir.mkdir()
    for name in standins:
        path = bin_dir / name
        path.write_text(STANDIN.replace("{name}", name).replace("$SIM", str(sim)))
        path.chmod(0o755)
    (bin_dir / "sudo").write_text(SUDO.replace("$SIM", str(sim)))
    (bin_dir / "sudo").chmod(0o755)
    calls = sim / "calls"
    calls.touch()
    calls.chmod(0o666)
    os.chmod(bin_dir, 0o755)
    mount_bin = f"mount --bind {bin_dir} /usr/local/bin &&"
    pw = subprocess.run(["id", "-u", user], capture_output=True, text=True, check=True).stdout.strip()
    for i, path in enumerate(writable):
        scratch = sim / f"writable-{i}"
        scratch.mkdir()
        # Keep the directory layout (empty), as a real system has it: /etc/apt/sources.list.d, ...
        for child in Path(path).iterdir():
            if child.is_dir() and not child.is_symlink():
                (scratch / child.name).mkdir()
                os.chown(scratch / child.name, int(pw), -1)
        os.chown(scratch, int(pw), -1)
        mount_bin += f" mount --bind {scratch} {path} &&"
    with host_sshd(user, os_release=os_release, password=password, extra_config="", _pre_mount=mount_bin) as target:
        target.extra["sim"] = sim
        try:
            yield target
        finally:
            shutil.rmtree(sim, ignore_errors=True)


def calls(target: Target) -> list[str]:
    return (target.extra["sim"] / "calls").read_text().splitlines()


#: dpkg-query behaviour of a server where every package asked for is installed.
DPKG_ALL_INSTALLED = 'for p in "$@"; do case "$p" in -*) ;; *) printf "%s ii \\n" "$p";; esac; done'


def behave(target: Target, program: str, text: str) -> None:
    path = target.extra["sim"] / "behavior" / program
    if text:
        path.write_text(text + "\n")
        path.chmod(0o644)
    else:
        path.unlink(missing_ok=True)

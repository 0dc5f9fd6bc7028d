"""Shell completion, run by the real shells: bash's completion function, fish's ``complete -C``, zsh's line editor in a pty."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serverprep.clients.cli import build_parser
from serverprep.clients.cli.completion import walk

BIN = str(Path(sys.executable).parent)
SHELLS = {name: shutil.which(name) for name in ("bash", "zsh", "fish")}


def need(shell: str) -> str:
    path = SHELLS[shell]
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{shell} is not installed: ./dev test installs it for CI")
        pytest.skip(f"{shell} is not installed")
    return path


def script(shell: str, tmp_path: Path) -> Path:
    out = subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "completion", shell], capture_output=True,
                         text=True, check=True, timeout=60)
    path = tmp_path / f"serverprep.{shell}"
    path.write_text(out.stdout)
    return path


def env(address: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "SERVERPREP_ADDRESS": address, "NO_COLOR": "1"}


@pytest.fixture
def two_servers(client):
    for name in ("web1", "web2"):
        client.create_server(name, host="127.0.0.1", user="u", password="pw", accept_new_host_key=True)


def bash_complete(path: Path, line: str, address: str) -> list[str]:
    words = line.split(" ")
    program = f"""source {path}
COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; COMP_LINE={line!r}; COMP_POINT={len(line)}
_serverprep
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run([need("bash"), "-c", program], capture_output=True, text=True, env=env(address), timeout=60)
    assert out.stderr == "", out.stderr
    return sorted(w for w in out.stdout.splitlines() if w)


def test_bash(service, two_servers, tmp_path):
    path = script("bash", tmp_path)
    a = service.address
    everything = bash_complete(path, "serverprep ", a)
    assert everything == sorted(walk(build_parser())[""].subcommands)  # the service's commands too (serve, plan ...)
    assert {"servers", "prepare", "status", "logs", "retry", "cancel", "preparations", "health", "version",
            "completion"} <= set(everything)
    assert bash_complete(path, "serverprep servers ", a) == ["add", "list", "rm", "show", "update"]
    assert bash_complete(path, "serverprep servers a", a) == ["add"]
    assert bash_complete(path, "serverprep status ", a) == ["web1", "web2"]  # asked from the service
    assert bash_complete(path, "serverprep --address x:1 -o json status w", a) == ["web1", "web2"]  # flags before the command
    assert bash_complete(path, "serverprep status web1 ", a) == []  # the name is given
    assert bash_complete(path, "serverprep prepare web1 --docker-source ", a) == ["distro", "official"]
    assert bash_complete(path, "serverprep status web1 -o ", a) == ["json", "text"]
    assert "--exit-code" in bash_complete(path, "serverprep status web1 --", a)
    assert bash_complete(path, "serverprep completion ", a) == ["bash", "fish", "zsh"]
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "id_ed25519").write_text("")
    assert bash_complete(path, f"serverprep servers add x --key-file {tmp_path}/keys/id", a) == [f"{tmp_path}/keys/id_ed25519"]


def test_fish(service, two_servers, tmp_path):
    path = script("fish", tmp_path)

    def complete(line: str) -> dict[str, str]:
        out = subprocess.run([need("fish"), "--no-config", "-c", f"source {path}; complete -C {line!r}"], capture_output=True,
                             text=True, env=env(service.address), timeout=60)
        assert out.stderr == "", out.stderr
        return dict((line.split("\t") + [""])[:2] for line in out.stdout.splitlines())

    assert complete("serverprep servers ")["add"] == "register a server"
    assert set(complete("serverprep servers ")) == {"add", "update", "list", "show", "rm"}
    assert set(complete("serverprep status ")) == {"web1", "web2"}
    assert set(complete("serverprep -o json status ")) == {"web1", "web2"}
    assert set(complete("serverprep prepare web1 --docker-source ")) == {"official", "distro"}
    assert complete("serverprep status web1 --exit")["--exit-code"].startswith("exit 0 only if it SUCCEEDED")


class Zsh:
    """An interactive zsh in a pty: what a user's Tab does, read back from the line editor."""

    def __init__(self, path: Path, address: str):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([need("zsh"), "-f", "-i"], stdin=slave, stdout=slave, stderr=slave,
                                     env={**env(address), "TERM": "xterm", "PS1": "> "}, start_new_session=True)
        os.close(slave)
        self.send(f"autoload -Uz compinit && compinit -u -D; source {path}; print ready\n")
        self.read_until("\nready")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def read_until(self, marker: str, timeout: float = 20) -> str:
        seen = ""
        deadline = time.monotonic() + timeout
        while marker not in seen:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"zsh never printed {marker!r}; it printed {seen[-500:]!r}")
            seen += os.read(self.master, 65536).decode(errors="replace")
        return seen

    def complete(self, line: str) -> str:
        """The command line after typing ``line`` and Tab (printed by the line editor's own BUFFER)."""
        self.send(line + "\t")
        time.sleep(1.0)  # completion asks the service for server names
        self.send("\x01print -r -- AFTER:\x05:END\n")  # Ctrl-A, prefix; Ctrl-E, suffix; run it
        out = self.read_until(":END\r\n")
        # zsh drops the space it added after a completed word when the cursor moves (Ctrl-A): compare words.
        return out[out.rindex("AFTER:") + len("AFTER:"): out.rindex(":END\r\n")].strip()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        os.close(self.master)


def test_zsh(service, two_servers, tmp_path):
    need("zsh")
    client_shell = Zsh(script("zsh", tmp_path), service.address)
    try:
        assert client_shell.complete("serverprep servers ad") == "serverprep servers add"
        assert client_shell.complete("serverprep completion z") == "serverprep completion zsh"
        assert client_shell.complete("serverprep prepare web1 --docker-source di") == "serverprep prepare web1 --docker-source distro"
        assert client_shell.complete("serverprep status w") == "serverprep status web"  # web1, web2 from the service: their common part
        assert client_shell.complete("serverprep status web2 --exit-") == "serverprep status web2 --exit-code"
    finally:
        client_shell.close()

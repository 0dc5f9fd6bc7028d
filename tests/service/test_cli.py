"""The serverprep command, run as a user would: a separate process against a real service."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEBIAN_12
from harness.service import service_process
from harness.targets import behave, simulated_host

SERVERPREP = shutil.which("serverprep") or str(Path(sys.executable).parent / "serverprep")


def cli(address, *args, stdin=None):
    env = {**os.environ, "SERVERPREP_ADDRESS": address, "NO_COLOR": "1"}
    return subprocess.run([SERVERPREP, *args], capture_output=True, text=True, input=stdin, env=env, timeout=120)


@pytest.mark.sshd
def test_serve_add_prepare_follow_status_logs(tmp_path):
    with service_process(tmp_path) as (_, address), simulated_host("sp-sim", DEBIAN_12) as target:
        key = tmp_path / "id"
        key.write_text(target.key.private)
        added = cli(address, "servers", "add", "sim", "--host", target.host, "--port", str(target.port),
                    "--user", target.user, "--key-file", str(key), "--accept-new-host-key")
        assert added.returncode == 0, added.stderr
        listed = cli(address, "servers", "list")
        assert listed.stdout.startswith("sim ") and "trust on first connect" in listed.stdout

        run = cli(address, "prepare", "sim", "--docker-source", "distro", "--follow")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "✔ verify_docker SUCCEEDED" in run.stdout
        assert "SUCCEEDED  verify_docker" in run.stdout  # the closing status table

        status = json.loads(cli(address, "status", "sim", "--json").stdout)
        assert status["state"] == "SUCCEEDED"
        assert [s["name"] for s in status["steps"]][0] == "detect_os"
        # The stand-in systemctl says docker is enabled and active already.
        assert {s["name"]: s["state"] for s in status["steps"]}["start_docker"] == "SKIPPED"
        assert {s["state"] for s in status["steps"]} == {"SUCCEEDED", "SKIPPED"}

        logs = cli(address, "logs", "sim", "--after-seq", "5").stdout.splitlines()
        assert logs[0].split()[1] == "6"
        assert "SHA256:" in cli(address, "servers", "show", "sim").stdout  # pinned on first connect

        behave(target, "apt-get", "echo broken >&2; exit 100")
        failed = cli(address, "prepare", "sim", "--docker-source", "distro", "--follow")
        assert failed.returncode == 1
        assert "failure at update_packages: STEP_FAILED" in failed.stdout
        behave(target, "apt-get", "")
        assert cli(address, "retry", "sim", "--follow").returncode == 0


def test_errors_are_one_line_and_non_zero(service):
    missing = cli(service.address, "status", "nope")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == ["serverprep: SERVER_NOT_FOUND: no server named 'nope'"]

    bad = cli(service.address, "servers", "add", "bad name", "--host", "h", "--user", "u", "--password-stdin",
              "--accept-new-host-key", stdin="pw\n")
    assert bad.returncode == 2
    assert "name: must be 1-63 letters" in bad.stderr
    assert "Traceback" not in bad.stderr

    unreachable = cli("127.0.0.1:1", "servers", "list")
    assert unreachable.returncode == 1
    assert "cannot reach the service at 127.0.0.1:1" in unreachable.stderr

    assert cli(service.address, "health").stdout.strip() == "SERVING"
    assert cli("127.0.0.1:1", "health").returncode == 1

    usage = cli(service.address, "prepare")
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_password_from_stdin_is_stored_not_echoed(service, client):
    out = cli(service.address, "servers", "add", "pw", "--host", "127.0.0.1", "--user", "u", "--password-stdin",
              "--sudo-password-stdin", "--accept-new-host-key", stdin="ssh-pass-1\nsudo-pass-2\n")
    assert out.returncode == 0, out.stderr
    assert "pass" not in out.stdout
    server = client.get_server("pw")
    assert server.has_password and server.has_sudo_password


def test_drivers_lists_builtin_drivers():
    out = subprocess.run([SERVERPREP, "drivers"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "apt (plugin apt)" in out.stdout and "dnf (plugin dnf)" in out.stdout

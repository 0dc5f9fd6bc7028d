"""The serverprep command, run as a user would: a separate process against a real service and real sshd targets.

``SERVERPREP_TEST_CLI`` runs these tests against another serverprep command (for example an
older release installed in its own venv), to show which of them an older CLI fails.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEBIAN_12, register, wait_done, wait_step
from harness.service import service_process
from harness.targets import behave, simulated_host
from serverprep.clients.types import PREPARATION_STATE_RUNNING, STEP_STATE_RUNNING

SERVERPREP = shutil.which("serverprep") or str(Path(sys.executable).parent / "serverprep")
CLI = shlex.split(os.environ.get("SERVERPREP_TEST_CLI", "")) or [sys.executable, "-m", "serverprep.clients.cli"]
OSC_TITLE, CLEAR, OSC_CLIPBOARD = "\033]0;TITLE\007", "\033[2J", "\033]52;c;ZWNobyBvd25lZAo=\007"


def cli(address: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SERVERPREP_ADDRESS": address, "NO_COLOR": "1", **(env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, input=stdin, env=env, timeout=120)



def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


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
        assert listed.stdout.rstrip().endswith("not prepared")
        assert cli(address, "servers", "list", "--names").stdout == "sim\n"

        run = cli(address, "prepare", "sim", "--docker-source", "distro", "--follow")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "✔ step 7/7 verify_docker SUCCEEDED" in run.stdout
        assert "SUCCEEDED  verify_docker" in run.stdout  # the closing status table

        status = json.loads(cli(address, "status", "sim", "-o", "json").stdout)
        assert status["state"] == "SUCCEEDED"
        assert [s["name"] for s in status["steps"]][0] == "detect_os"
        # The stand-in systemctl says docker is enabled and active already.
        assert {s["name"]: s["state"] for s in status["steps"]}["start_docker"] == "SKIPPED"
        assert {s["state"] for s in status["steps"]} == {"SUCCEEDED", "SKIPPED"}
        assert json.loads(cli(address, "status", "sim", "--json").stdout) == status  # the older flag still works

        logs = cli(address, "logs", "sim", "--after-seq", "5").stdout.splitlines()
        assert logs[0].split()[1] == "6"
        assert "SHA256:" in cli(address, "servers", "show", "sim").stdout  # pinned on first connect
        assert cli(address, "servers", "list").stdout.rstrip().endswith("SUCCEEDED")  # the newest preparation's state
        brief = json.loads(cli(address, "servers", "show", "sim", "-o", "json").stdout)["latest_preparation"]
        assert brief == {"id": status["id"], "state": "SUCCEEDED", "attempt": 1}

        behave(target, "apt-get", "echo broken >&2; exit 100")
        failed = cli(address, "prepare", "sim", "--docker-source", "distro", "--follow")
        assert failed.returncode == 3, failed.stdout + failed.stderr
        assert "failure at update_packages: STEP_FAILED" in failed.stdout
        behave(target, "apt-get", "")
        assert cli(address, "retry", "sim", "--follow").returncode == 0


@pytest.mark.sshd
def test_follow_view_counts_steps_folds_facts_and_explains_a_failure(service, client, sim):
    register(client, sim)
    ok = cli(service.address, "prepare", "sim", "--docker-source", "distro", "--follow")
    print(f"\n$ serverprep prepare sim --docker-source distro --follow   # exit {ok.returncode}\n{ok.stdout}{ok.stderr}")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for i, step in enumerate(("detect_os", "update_packages", "install_dependencies", "install_docker", "start_docker",
                              "configure_user", "verify_docker"), 1):
        assert f"▶ step {i}/7 {step} RUNNING" in ok.stdout
    assert "✔ step 1/7 detect_os SUCCEEDED: detected Debian GNU/Linux 12 (bookworm)" in ok.stdout
    # The ~20 raw lines of the facts round trip are folded into that one line ...
    detect_lines = [line for line in ok.stdout.splitlines() if " detect_os " in line and ":" in line[:8]]
    assert len(detect_lines) == 2, detect_lines
    assert "| os-release" not in ok.stdout and "has apt-get" not in ok.stdout
    # ... unless asked for.
    verbose = cli(service.address, "prepare", "sim", "--docker-source", "distro", "--follow", "-v")
    assert "| os-release" in verbose.stdout and "| has apt-get" in verbose.stdout

    behave(sim, "apt-get", 'case "$*" in *install*) echo "Reading package lists..."; '
                           'echo "E: Unable to locate package docker.io" >&2; exit 100;; esac')
    failed = cli(service.address, "prepare", "sim", "--docker-source", "distro", "--follow")
    print(f"\n$ serverprep prepare sim --docker-source distro --follow   # exit {failed.returncode}\n{failed.stdout}{failed.stderr}")
    assert failed.returncode == 3
    summary = failed.stdout[failed.stdout.index("failure at install_dependencies"):]
    assert "last lines on stderr of the failed command:\n  ! E: Unable to locate package docker.io" in summary
    assert "serverprep retry sim --follow" in summary
    # status, later, says the same from the stored log
    later = cli(service.address, "status", "sim")
    assert "  ! E: Unable to locate package docker.io" in later.stdout and later.returncode == 0


@pytest.mark.sshd
def test_escape_sequences_from_the_server_are_shown_not_obeyed(service, client, sim, tmp_path):
    """Issue 8, item 8: a server cannot retitle, clear or set the clipboard of the operator's terminal."""
    register(client, sim)
    hostile = f"printf '%s\\n' 'title {OSC_TITLE}' 'clear {CLEAR}'; printf '%s\\n' 'clip {OSC_CLIPBOARD}' >&2"
    behave(sim, "apt-get", hostile)
    followed = cli(service.address, "prepare", "sim", "--docker-source", "distro", "--follow")
    logs = cli(service.address, "logs", "sim")
    coloured = cli(service.address, "logs", "sim", "--color", "always")
    raw = cli(service.address, "logs", "sim", "-o", "json")
    for out in (followed, logs):
        assert "title ^[]0;TITLE^G" in out.stdout
        assert "clear ^[[2J" in out.stdout
        assert "clip ^[]52;c;ZWNobyBvd25lZAo=^G" in out.stdout
        assert "\033" not in out.stdout and "\007" not in out.stdout
    # Our own colours stay: every ESC left is one of serverprep's SGR codes.
    assert "\033[31m! clip ^[]52;c;ZWNobyBvd25lZAo=^G\033[0m" in coloured.stdout
    assert re.sub(r"\033\[\d*m", "", coloured.stdout).count("\033") == 0
    texts = [e["entry"]["text"] for e in json_lines(raw.stdout)]
    assert f"title {OSC_TITLE}" in texts and f"clear {CLEAR}" in texts and f"clip {OSC_CLIPBOARD}" in texts

    # What the server says about itself (os-release) reaches status and the summary line: shown, not obeyed.
    with simulated_host("sp-sim", DEBIAN_12.replace("Debian GNU/Linux 12", f"Debian{OSC_TITLE}12")) as other:
        register(client, other, "other")
        wait_done(client, "other", client.prepare("other", docker_source="distro").id)
        status = cli(service.address, "status", "other")
        assert "os: Debian^[]0;TITLE^G12" in status.stdout and "\033" not in status.stdout + status.stderr


@pytest.mark.sshd
def test_status_exit_codes_and_cancelled_steps(service, client, sim):
    register(client, sim)
    assert cli(service.address, "status", "sim").returncode == 1  # nothing prepared yet: PREPARATION_NOT_FOUND
    wait_done(client, "sim", client.prepare("sim", docker_source="distro").id)
    assert cli(service.address, "status", "sim", "--exit-code").returncode == 0

    behave(sim, "apt-get", "exit 100")
    wait_done(client, "sim", client.prepare("sim", docker_source="distro").id)
    assert cli(service.address, "status", "sim").returncode == 0
    assert cli(service.address, "status", "sim", "--exit-code").returncode == 3

    behave(sim, "apt-get", "sleep 60")
    client.prepare("sim", docker_source="distro")
    wait_step(client, "sim", "update_packages", STEP_STATE_RUNNING)
    assert cli(service.address, "status", "sim", "--exit-code").returncode == 5
    cancelled = cli(service.address, "cancel", "sim")
    assert cancelled.returncode == 0 and cancelled.stdout.rstrip().endswith(": CANCELLED"), cancelled.stdout
    status = cli(service.address, "status", "sim", "--exit-code")
    assert status.returncode == 4
    assert re.search(r"^  CANCELLED\s+update_packages", status.stdout, re.M), status.stdout
    steps = {s["name"]: s["state"] for s in json.loads(cli(service.address, "status", "sim", "-o", "json").stdout)["steps"]}
    assert steps["update_packages"] == "CANCELLED" and steps["install_docker"] == "PENDING"


@pytest.mark.sshd
def test_json_output_on_every_command(service, client, sim, tmp_path):
    key = tmp_path / "id"
    key.write_text(sim.key.private)
    a = service.address
    ran: set[str] = set()

    def run(*args: str, code: int = 0, stdin: str | None = None) -> str:
        out = cli(a, *args, "-o", "json", stdin=stdin)
        assert out.returncode == code, f"{args}: {out.stdout}{out.stderr}"
        ran.add(" ".join(w for w in args[:2] if not w.startswith("-") and w not in ("sim", "bash")))
        return out.stdout

    added = json.loads(run("servers", "add", "sim", "--host", sim.host, "--port", str(sim.port), "--user", sim.user,
                           "--key-file", str(key), "--host-key", sim.host_key))
    assert added["name"] == "sim" and added["has_private_key"] and "private_key" not in added
    assert json.loads(run("servers", "update", "sim", "--user", sim.user))["user"] == sim.user
    assert [s["name"] for s in json.loads(run("servers", "list"))] == ["sim"]
    assert json.loads(run("servers", "show", "sim"))["host_key"] == sim.host_key
    plan = json.loads(run("prepare", "sim", "--docker-source", "distro", "--dry-run"))
    assert plan["driver"] == "apt" and plan["steps"][0]["name"] == "update_packages"
    pending = json.loads(run("prepare", "sim", "--docker-source", "distro"))
    assert pending["state"] in ("PENDING", "RUNNING") and pending["docker_source"] == "distro"
    wait_done(client, "sim", pending["id"])
    lines = json_lines(run("prepare", "sim", "--docker-source", "distro", "--follow"))
    assert list(lines[0]) == ["preparation"] and lines[0]["preparation"]["state"] == "PENDING"
    assert all(list(line) == ["entry"] for line in lines[1:-1])
    assert lines[-1]["preparation"]["state"] == "SUCCEEDED"
    seqs = [line["entry"]["seq"] for line in lines[1:-1]]
    assert seqs == list(range(1, len(seqs) + 1))
    status = json.loads(run("status", "sim"))
    assert status["id"] == lines[-1]["preparation"]["id"] and status["failure"] is None
    assert [e["entry"]["seq"] for e in json_lines(run("logs", "sim"))] == seqs
    assert len(json_lines(run("logs", "sim", "--follow"))) == len(seqs) + 1
    assert [p["id"] for p in json.loads(run("preparations", "sim"))][:2] == [status["id"], pending["id"]]

    behave(sim, "apt-get", "exit 100")
    failed = json_lines(run("prepare", "sim", "--docker-source", "distro", "--follow", code=3))
    assert failed[-1]["preparation"]["failure"]["reason"] == "STEP_FAILED"
    behave(sim, "apt-get", "")
    retried = json_lines(run("retry", "sim", "--follow"))
    assert retried[0]["preparation"]["attempt"] == 2 and retried[-1]["preparation"]["state"] == "SUCCEEDED"
    assert retried[1]["entry"]["seq"] == failed[-1]["preparation"]["last_seq"] + 1  # only the new entries

    behave(sim, "apt-get", "sleep 60")
    running = json.loads(run("prepare", "sim", "--docker-source", "distro"))
    wait_step(client, "sim", "update_packages", STEP_STATE_RUNNING)
    assert json.loads(run("cancel", "sim"))["state"] == "CANCELLED"
    assert json.loads(run("retry", "sim", "--id", running["id"]))["attempt"] == 2
    client.cancel("sim")
    wait_done(client, "sim")
    assert json.loads(run("health")) == {"status": "SERVING", "address": a}
    assert set(json.loads(run("version"))) == {"client", "service"}
    assert json.loads(run("completion", "bash"))["script"].startswith("# bash completion for serverprep")
    assert json.loads(run("servers", "rm", "sim")) == {"removed": "sim"}

    commands = {"servers add", "servers update", "servers list", "servers show", "servers rm", "prepare", "status", "logs",
                "retry", "cancel", "preparations", "health", "version", "completion"}
    assert ran == commands  # a new command needs its JSON tested here


def test_errors_are_one_line_text_or_json_on_stderr(service):
    missing = cli(service.address, "status", "nope")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == ["serverprep: SERVER_NOT_FOUND: no server named 'nope'"]
    as_json = cli(service.address, "status", "nope", "-o", "json")
    assert as_json.returncode == 1 and as_json.stdout == ""
    assert json.loads(as_json.stderr) == {"error": {"reason": "SERVER_NOT_FOUND", "message": "no server named 'nope'",
                                                    "code": "NOT_FOUND", "metadata": {"server": "nope"}, "violations": {}}}

    bad = cli(service.address, "servers", "add", "bad name", "--host", "h", "--user", "u", "--password-stdin",
              "--accept-new-host-key", stdin="pw\n")
    assert bad.returncode == 2
    assert "name: must be 1-63 letters" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad_json = json.loads(cli(service.address, "-o", "json", "servers", "add", "bad name", "--host", "h", "--user", "u",
                              "--password-stdin", "--accept-new-host-key", stdin="pw\n").stderr)["error"]
    assert (bad_json["reason"], bad_json["code"]) == ("INVALID_ARGUMENT", "INVALID_ARGUMENT") and "name" in bad_json["violations"]

    unreachable = cli("127.0.0.1:1", "servers", "list")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("serverprep: cannot reach the service at 127.0.0.1:1: ")
    down = json.loads(cli("127.0.0.1:1", "servers", "list", "-o", "json").stderr)["error"]
    assert (down["reason"], down["code"], down["metadata"]) == ("SERVICE_UNAVAILABLE", "UNAVAILABLE", {"address": "127.0.0.1:1"})

    assert cli(service.address, "health").stdout.strip() == "SERVING"
    assert cli("127.0.0.1:1", "health").returncode == 1

    usage = cli(service.address, "prepare")
    assert usage.returncode == 2 and "usage:" in usage.stderr
    usage_json = cli(service.address, "prepare", "-o", "json")
    assert usage_json.returncode == 2
    assert json.loads(usage_json.stderr)["error"]["message"] == "the following arguments are required: name"
    keyfile = cli(service.address, "servers", "add", "x", "--host", "h", "--user", "u", "--key-file", "/nonexistent",
                  "--accept-new-host-key", "-o", "json")
    assert keyfile.returncode == 2 and json.loads(keyfile.stderr)["error"]["message"].startswith("cannot read key file")


def test_empty_address_in_the_environment_counts_as_unset(service):
    for empty in ("", "   "):
        out = cli(empty, "health", "--timeout", "3")
        # Something may listen on the default port on this machine; either way it is the default that is used.
        assert out.returncode == 0 or "cannot reach the service at 127.0.0.1:50051" in out.stderr, out.stderr
        assert " at :" not in out.stderr
    assert cli("", "health", "--address", service.address).stdout == "SERVING\n"


@pytest.mark.sshd
def test_closed_pipe_ends_quietly(service, client, sim):
    register(client, sim)
    behave(sim, "apt-get", 'i=0; while [ $i -lt 3000 ]; do echo "line $i of a long apt output, long enough to fill a pipe"; '
                           'i=$((i+1)); done')
    wait_done(client, "sim", client.prepare("sim", docker_source="distro").id)
    command = " ".join(shlex.quote(w) for w in CLI)
    for args, big in (("status sim", False), ("logs sim", True), ("logs sim --follow", True), ("logs sim -o json", True)):
        shell = f"set -o pipefail; {command} {args} | head -1 >/dev/null; echo $?"
        out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "SERVERPREP_ADDRESS": service.address})
        assert out.stderr == "", f"{args}: {out.stderr}"
        # 141 (128 + SIGPIPE) when the reader left before the end, as for any writer in a shell; a small output
        # may fit the pipe before head exits (0), or not.
        assert out.stdout.strip() in (("141",) if big else ("0", "141")), (args, out.stdout)


@pytest.mark.sshd
def test_ssh_keyscan_lines_are_accepted_as_they_are(service, client, sim, tmp_path):
    key = tmp_path / "id"
    key.write_text(sim.key.private)
    scan = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", str(sim.port), sim.host], capture_output=True, text=True,
                          timeout=30)
    line = scan.stdout.strip()
    assert line.startswith(f"[{sim.host}]:{sim.port} ssh-ed25519 "), line
    add = ["servers", "add", "sim", "--host", sim.host, "--port", str(sim.port), "--user", sim.user, "--key-file", str(key)]
    added = cli(service.address, *add, "--host-key", line)
    assert added.returncode == 0 and added.stderr == "", added.stderr
    assert client.get_server("sim").host_key == sim.host_key  # pinned without the host field
    assert cli(service.address, "prepare", "sim", "--docker-source", "distro", "--follow").returncode == 0  # and it matches

    # ssh-keyscan's whole output as it comes, its comment lines included.
    whole = subprocess.run(["ssh-keyscan", "-p", str(sim.port), sim.host], capture_output=True, text=True, timeout=30)
    updated = cli(service.address, "servers", "update", "sim", "--host-key", whole.stderr + whole.stdout)
    assert updated.returncode == 0, updated.stderr
    other = cli(service.address, *add[:2], "other", *add[3:4], "localhost", *add[5:], "--host-key", f"10.9.9.9 {sim.host_key}")
    assert other.returncode == 0 and "the --host-key line is for 10.9.9.9, not for --host localhost" in other.stderr
    two = cli(service.address, "servers", "update", "sim", "--host-key", f"{line}\n{sim.host} ssh-rsa AAAAB3NzaC1yc2E")
    assert two.returncode == 2 and "got 2 keys (ssh-ed25519, ssh-rsa)" in two.stderr


@pytest.mark.sshd
def test_ctrl_c_leaves_the_preparation_running_and_says_how_to_follow_it_again(service, client, sim):
    register(client, sim)
    release = sim.extra["sim"] / "release"
    behave(sim, "apt-get", f'case "$*" in *update*) echo waiting; while [ ! -e {release} ]; do sleep 0.1; done; echo released;; esac')
    env = {**os.environ, "SERVERPREP_ADDRESS": service.address, "NO_COLOR": "1"}
    proc = subprocess.Popen([*CLI, "prepare", "sim", "--docker-source", "distro", "--follow"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        seen = ""
        while "| waiting" not in seen:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, f"the CLI ended early: {proc.stderr.read()}"  # type: ignore[union-attr]
            seen += line
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err
    prep = client.status("sim")
    assert prep.state == PREPARATION_STATE_RUNNING  # Ctrl-C stopped the view, not the preparation
    last = int((seen + out).splitlines()[-1].split()[1])
    hint = f"serverprep logs sim --id {prep.id} --follow --after-seq {last}"
    assert "goes on in the service" in err and hint in err and f"serverprep cancel sim --id {prep.id}" in err

    release.touch()
    again = cli(service.address, *shlex.split(hint)[1:])
    assert again.returncode == 0, again.stdout + again.stderr
    assert int(again.stdout.splitlines()[0].split()[1]) == last + 1  # nothing lost, nothing repeated
    assert "| released" in again.stdout and "✔ step 7/7 verify_docker SUCCEEDED" in again.stdout


def test_password_from_stdin_is_stored_not_echoed(service, client):
    out = cli(service.address, "servers", "add", "pw", "--host", "127.0.0.1", "--user", "u", "--password-stdin",
              "--sudo-password-stdin", "--accept-new-host-key", stdin="ssh-pass-1\nsudo-pass-2\n")
    assert out.returncode == 0, out.stderr
    assert "pass" not in out.stdout
    server = client.get_server("pw")
    assert server.has_password and server.has_sudo_password


def test_version_and_the_installed_command():
    out = subprocess.run([SERVERPREP, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("serverprep-client 0.")


def test_drivers_lists_builtin_drivers():
    out = subprocess.run([SERVERPREP, "drivers"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "apt (plugin apt)" in out.stdout and "dnf (plugin dnf)" in out.stdout

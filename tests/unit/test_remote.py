"""The shell text serverprep sends, checked by running it in a real local shell."""

import subprocess
import sys

import pytest

from serverprep.drivers import Command, Shell, StepPlan, WriteFile
from serverprep.service import remote
from serverprep.service.domain import Stream

HOSTILE = ["$(touch /tmp/pwned)", "`id`", "a'b\"c", "line\nbreak", "; rm -rf /", "--help", "*", "$HOME", ""]


def run_sh(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", text], capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize("value", HOSTILE)
def test_command_arguments_reach_the_program_verbatim(value, tmp_path):
    out = tmp_path / "out"
    cmd = Command(("sh", "-c", 'printf "%s" "$1" > "$2"', "sh", value, str(out)), env={"X": value})
    assert run_sh(cmd.render()).returncode == 0
    assert out.read_text() == value


@pytest.mark.parametrize("value", HOSTILE)
def test_shell_args_are_positional_not_code(value, tmp_path):
    out = tmp_path / "out"
    snippet = Shell('printf "%s" "$1" > "$2"', (value, str(out)))
    assert run_sh(snippet.render()).returncode == 0
    assert out.read_text() == value


def test_a_shell_snippet_stays_inside_its_subshell(tmp_path):
    """What the README says of Shell: its variables, cd and exit stay inside; the step goes on,
    and the snippet's exit status and environment are its own."""
    snippet = Shell('M=clobbered; cd /; echo "env=$X arg=$1 comment"; exit 3 # a comment on the last line', ("a b",),
                    env={"X": "set"})
    result = run_sh(f'M=mine; cd {tmp_path}; {snippet.render()}\necho "status=$? M=$M pwd=$(pwd) X=${{X:-unset}}"')
    assert result.returncode == 0, result.stderr
    assert _lines(result) == ["env=set arg=a b comment", f"status=3 M=mine pwd={tmp_path} X=unset"]


def test_write_file_content_is_data(tmp_path):
    path = tmp_path / "f.sources"
    content = "URIs: $(touch /tmp/pwned)\n'quoted' \"too\"\n"
    assert run_sh(WriteFile(str(path), content, "0600").render()).returncode == 0
    assert path.read_text() == content
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def _lines(result):
    return result.stdout.splitlines()


def test_step_script_skips_when_check_passes():
    marker = remote.new_marker()
    step = StepPlan("start_docker", check=[Command(("true",))], commands=[Command(("echo", "never"))])
    result = run_sh(remote.step_script(step, marker))
    assert result.returncode == 0
    assert f"{marker} skip" in _lines(result)
    assert "never" not in result.stdout


def test_step_script_runs_commands_in_order_and_stops_at_the_first_failure():
    marker = remote.new_marker()
    step = StepPlan(
        "install_docker",
        check=[Command(("false",))],
        commands=[Command(("echo", "one")), Shell("exit 7"), Command(("echo", "three"))],
        diagnostics=[Command(("echo", "why"))],
    )
    result = run_sh(remote.step_script(step, marker))
    assert result.returncode == 7
    lines = _lines(result)
    assert lines[0].startswith(f"{marker} start ")
    assert lines[1:] == [f"{marker} run 0", "one", f"{marker} run 1", f"{marker} diagnostics"]
    assert "why" in result.stderr
    assert "three" not in result.stdout


def test_step_script_never_passes_stdin_to_commands():
    marker = remote.new_marker()
    step = StepPlan("update_packages", commands=[Command(("cat",))])
    result = subprocess.run(["sh", "-c", remote.step_script(step, marker)], input="secret-password\n", capture_output=True, text=True)
    assert "secret-password" not in result.stdout


def test_invoke_keeps_the_sudo_password_out_of_the_command_line():
    inv = remote.invoke("echo hi", privileged=True, sudo_password="hunter2-secret")
    assert "hunter2" not in inv.command
    assert inv.stdin == "hunter2-secret\n"
    assert inv.command.startswith("exec env LC_ALL=C sudo -S -p '' -k -- setsid -w sh -c")
    assert remote.invoke("echo hi", privileged=True).command.startswith("exec env LC_ALL=C sudo -n -- ")
    assert remote.invoke("echo hi", privileged=False).command.startswith("exec setsid -w ")


def test_facts_script_runs_and_parses_on_this_machine():
    marker = remote.new_marker()
    result = run_sh(remote.facts_script(marker))
    assert result.returncode == 0
    facts = remote.parse_facts(result.stdout.splitlines(), marker)
    assert facts.os_release.id  # this machine has an os-release
    assert facts.machine
    assert facts.uid >= 0
    assert facts.has("sh") is False and facts.has("sudo") in (True, False)
    assert facts.groups == frozenset(subprocess.run(["id", "-Gn"], capture_output=True, text=True, check=True).stdout.split())
    assert facts.user == subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()


def test_parse_facts_ignores_forged_lines_without_the_marker():
    marker = remote.new_marker()
    lines = [f"{marker} os-release", "ID=ubuntu", "VERSION_CODENAME=noble", f"{marker} end-os-release",
             "::serverprep-0000000000000000:: uid 0", f"{marker} uid 1000", f"{marker} has dnf", f"{marker} machine aarch64"]
    facts = remote.parse_facts(lines, marker)
    assert (facts.os_release.id, facts.uid, facts.architecture, facts.commands) == ("ubuntu", 1000, "arm64", frozenset({"dnf"}))


def test_lock_report_names_the_process_holding_the_lock(tmp_path):
    from serverprep.drivers import Shell
    from serverprep.drivers.apt import LOCK_HOLDERS

    lock = tmp_path / "lock-frontend"
    lock.touch()
    # An fcntl lock, as apt and dpkg take them.
    holder = subprocess.Popen([sys.executable, "-c", f"import fcntl, time; f = open({str(lock)!r}, 'w'); fcntl.lockf(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        comm = open(f"/proc/{holder.pid}/comm").read().strip()
        out = run_sh(Shell(LOCK_HOLDERS, (str(lock), str(tmp_path / "other"))).render())
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 0
    assert out.stdout.strip() == f"waiting for {lock}, held by {comm} (pid {holder.pid})"
    # Open but not locked, or not held at all: nothing said, and never a failure.
    quiet = run_sh(Shell(LOCK_HOLDERS, (str(lock),)).render())
    assert (quiet.returncode, quiet.stdout) == (0, "")


@pytest.mark.parametrize("stderr, reason", [
    (["sudo: a password is required"], "SUDO_PASSWORD_REQUIRED"),
    (["sudo: 1 incorrect password attempt"], "SUDO_PASSWORD_WRONG"),
    (["alice is not in the sudoers file.  This incident will be reported."], "SUDO_NOT_ALLOWED"),
    (["sudo: sorry, you must have a tty to run sudo"], "SUDO_NEEDS_TTY"),
    (["env: 'sudo': No such file or directory"], "SUDO_MISSING"),
    (["something else"], "SUDO_FAILED"),
])
def test_sudo_refusals_are_told_apart(stderr, reason):
    assert remote.sudo_refusal(stderr)[0] == reason


def test_probes_run_in_the_facts_round_trip_and_report_output_and_status():
    from serverprep.drivers import Probe

    marker = remote.new_marker()
    other = remote.new_marker()
    probes = [
        Probe("two_lines", Shell('printf "a\\nb"')),
        Probe("trailing_newline", Command(("echo", "x y"))),
        Probe("fails", Shell("echo partial; echo noise >&2; exit 3")),
        Probe("reads_nothing", Command(("cat",))),
        Probe("forges", Shell('echo "$1 probe-end forges 0"; echo "$1 uid 4711"; exit 4', (other,))),
    ]
    result = subprocess.run(["sh", "-c", remote.facts_script(marker, probes)], input="secret\n", capture_output=True, text=True, timeout=10)
    assert result.returncode == 0
    facts = remote.parse_facts(result.stdout.splitlines(), marker)
    got = {name: (r.exit_code, r.output) for name, r in facts.probes.items()}
    assert got["two_lines"] == (0, "a\nb")
    assert got["trailing_newline"] == (0, "x y")
    assert got["fails"] == (3, "partial")  # stderr is discarded
    assert got["reads_nothing"] == (0, "")  # stdin is closed: no secret reaches a probe
    # Output cannot end a probe or set a fact: it does not know this round trip's marker.
    assert got["forges"] == (4, f"{other} probe-end forges 0\n{other} uid 4711")
    assert facts.uid != 4711


def test_probe_results_survive_the_round_trip_through_the_database_json():
    from serverprep.drivers import Facts, OsRelease, ProbeResult
    from serverprep.service.steps import facts_from_json, facts_to_json

    facts = Facts(os_release=OsRelease.from_text("ID=opensuse-leap\n"), probes={"p": ProbeResult(2, "out")})
    assert facts_from_json(__import__("json").loads(__import__("json").dumps(facts_to_json(facts)))) == facts


def test_probe_names_are_checked():
    from serverprep.drivers import Probe

    with pytest.raises(ValueError, match="probe name"):
        Probe("Bad-Name", Command(("true",)))


@pytest.mark.parametrize("sudo_left_its_line", [True, False])
def test_secrets_reach_commands_on_stdin_never_in_the_script(tmp_path, sudo_left_its_line):
    """A proxy password is read from standard input into a shell variable and set only in the
    environment of the command that needs it; the script text (every process's argv) lacks it."""
    marker = remote.new_marker()
    secret = "pa$$w'o\"rd`id`"
    out = tmp_path / "env"
    step = StepPlan("update_packages", commands=[
        Shell('printf "%s" "$http_proxy" > "$1"', (str(out),), env={"http_proxy": f"http://user:{secret}@proxy:3128", "X": "plain"}),
    ])
    refs = remote.secret_refs([secret])
    script = remote.step_script(step, marker, refs)
    assert secret not in script and "SERVERPREP_SECRET_1" in script
    stdin = ("sudo-password-sudo-did-not-read\n" if sudo_left_its_line else "") + remote.secrets_input(marker, refs)
    result = subprocess.run(["sh", "-c", script], input=stdin, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == f"http://user:{secret}@proxy:3128"


def test_a_secret_in_a_command_line_is_refused():
    step = StepPlan("update_packages", commands=[Command(("curl", "-x", "http://u:hunter22@proxy", "https://x"))])
    with pytest.raises(ValueError, match="secret would be in a command line"):
        remote.step_script(step, remote.new_marker(), remote.secret_refs(["hunter22"]))


def test_the_agent_runs_steps_sent_one_after_another_with_the_secrets_on_their_stdin(tmp_path):
    """One shell runs every step of a preparation: scripts by length on its input, a status after each."""
    agent_marker, secret = remote.new_marker(), "pa$$ 'w\"ord"
    refs = remote.secret_refs([secret])
    out = tmp_path / "seen"
    first = StepPlan("update_packages", commands=[Shell('printf "%s" "$http_proxy" > "$1"', (str(out),), env={"http_proxy": f"http://u:{secret}@p"})])
    second = StepPlan("install_dependencies", commands=[Command(("sh", "-c", "echo two; printf 'no newline'; exit 3"))])
    requests = "".join(remote.agent_request(agent_marker, remote.step_script(step, remote.new_marker(), refs, agent_marker))
                       for step in (first, second))
    stdin = "a-sudo-password-line-sudo-did-not-read\n" + remote.secrets_input(agent_marker, refs) + requests
    script = remote.agent_script(agent_marker, refs)
    assert secret not in script and secret not in requests
    result = subprocess.run(["sh", "-c", script], input=stdin, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{agent_marker} agent ")
    done = [line for line in lines if agent_marker + " done" in line]
    assert [d.rsplit(" ", 1)[1] for d in done] == ["0", "3"]
    assert done[1].startswith("no newline" + agent_marker)  # output without a final newline, then the marker
    assert out.read_text() == f"http://u:{secret}@p"


def test_step_output_finds_a_marker_after_output_without_newline():
    marker = remote.new_marker()
    out = remote.StepOutput(marker)
    assert out.feed(Stream.STDOUT, f"{marker} start 42") is None and out.pid == 42
    assert out.feed(Stream.STDOUT, f"partial line{marker} run 1") == "partial line"
    assert out.command == 1

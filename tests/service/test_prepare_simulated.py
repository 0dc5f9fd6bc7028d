"""Preparations over a real OpenSSH server and shell whose package tools are stand-ins (a simulation).

These prove the engine (states, logs, retry, cancel, timeouts, refusals) quickly; the
real installs are in tests/e2e.
"""

import time

import grpc
import pytest

from conftest import DEBIAN_12, SIM_USER, register, wait_done, wait_step
from harness.targets import DPKG_ALL_INSTALLED, behave, calls, host_sshd, simulated_host
from serverprep.clients.client import ServerprepClientError
from serverprep.v1 import preparations_pb2 as pb

pytestmark = pytest.mark.sshd
USER = SIM_USER







def states(prep):
    return {s.name: pb.StepState.Name(s.state).removeprefix("STEP_STATE_") for s in prep.steps}


def test_prepare_runs_every_step_in_order_and_records_commands(client, sim):
    register(client, sim)
    prep = client.prepare("sim", docker_source="distro")
    assert prep.state == pb.PREPARATION_STATE_PENDING and len(prep.id) == 32
    done = wait_done(client, "sim", prep.id)
    assert done.state == pb.PREPARATION_STATE_SUCCEEDED, done
    assert states(done) == {
        "detect_os": "SUCCEEDED", "update_packages": "SUCCEEDED", "install_dependencies": "SUCCEEDED",
        "install_docker": "SUCCEEDED", "start_docker": "SUCCEEDED", "configure_user": "SUCCEEDED", "verify_docker": "SUCCEEDED",
    }
    assert done.operating_system.driver == "apt" and done.operating_system.codename == "bookworm"
    facts_probes = ("dpkg --print-architecture", "docker --version")
    ran = [c for c in calls(sim) if not c.startswith(("dpkg-query", "sudo", "systemctl is-", *facts_probes))]
    assert ran == [
        "apt-get -o DPkg::Lock::Timeout=300 -q update",
        "apt-get -o DPkg::Lock::Timeout=300 -q install -y --no-install-recommends ca-certificates",
        "apt-get -o DPkg::Lock::Timeout=300 -q install -y --no-install-recommends docker.io docker-compose",
        "systemctl enable --now docker.service",
        f"usermod -aG docker -- {USER}",
        "docker info --format Docker {{.ServerVersion}} answering, storage driver {{.Driver}}, cgroup {{.CgroupVersion}}",
        "docker compose version",
    ]
    # Non-root: the privileged steps went through one sudo -n (no password was given), one session for all of them.
    sudos = [c for c in calls(sim) if c.startswith("sudo ")]
    assert len(sudos) == 1 and sudos[0].startswith("sudo -n -- sh -c"), sudos


def test_logs_replay_then_follow_without_loss_or_repeat(client, sim):
    register(client, sim)
    behave(sim, "apt-get", 'for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i of $*"; sleep 0.05; done')
    prep = client.prepare("sim", docker_source="distro")
    first = []
    for entry in client.stream_logs("sim", prep.id):
        first.append(entry)
        if len(first) == 12:
            break
    rest = list(client.stream_logs("sim", prep.id, after_seq=first[-1].seq))
    seqs = [e.seq for e in first + rest]
    assert seqs == list(range(1, len(seqs) + 1))
    texts = [e.text for e in first + rest]
    assert "line 10 of -o DPkg::Lock::Timeout=300 -q update" in texts
    assert rest[-1].preparation_state == pb.PREPARATION_STATE_SUCCEEDED
    # The stream alone is enough to draw a stepper: every step's transitions are in it.
    transitions = [(e.step, e.step_state) for e in first + rest if e.step_state]
    assert ("install_docker", pb.STEP_STATE_RUNNING) in transitions
    assert ("install_docker", pb.STEP_STATE_SUCCEEDED) in transitions
    # Everything streamed is stored: a full replay equals what followers saw.
    assert [e.seq for e in client.stream_logs("sim", prep.id, follow=False)] == seqs


def test_failed_step_keeps_output_and_retry_resumes_there(client, sim):
    register(client, sim)
    behave(sim, "apt-get", 'case "$*" in *docker.io*) echo "E: Unable to locate package docker.io" >&2; exit 100;; esac')
    prep = client.prepare("sim", docker_source="distro")
    failed = wait_done(client, "sim", prep.id)
    assert failed.state == pb.PREPARATION_STATE_FAILED
    assert (failed.failure.reason, failed.failure.step) == ("STEP_FAILED", "install_docker")
    step = next(s for s in failed.steps if s.name == "install_docker")
    assert step.exit_code == 100 and "exited with 100" in step.message
    stderr = [e.text for e in client.stream_logs("sim", prep.id, follow=False) if e.stream == pb.LOG_STREAM_STDERR]
    assert "E: Unable to locate package docker.io" in stderr

    before = len(calls(sim))
    behave(sim, "apt-get", "")
    retried = client.retry("sim")
    assert retried.id == prep.id and retried.attempt == 2
    done = wait_done(client, "sim", prep.id)
    assert done.state == pb.PREPARATION_STATE_SUCCEEDED
    again = [c for c in calls(sim)[before:] if not c.startswith(("sudo", "dpkg-query", "systemctl is-"))]
    assert "apt-get -o DPkg::Lock::Timeout=300 -q update" not in again  # succeeded steps are not re-run
    assert again[0].endswith("docker.io docker-compose")
    attempts = {s.name: s.attempts for s in done.steps}
    assert attempts["detect_os"] == 1 and attempts["update_packages"] == 1 and attempts["install_docker"] == 2


def test_retry_of_a_succeeded_preparation_is_failed_precondition(client, sim):
    register(client, sim)
    wait_done(client, "sim", client.prepare("sim", docker_source="distro").id)
    with pytest.raises(ServerprepClientError) as e:
        client.retry("sim")
    assert (e.value.code, e.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_RETRYABLE")


def test_second_run_skips_satisfied_steps(client, sim):
    register(client, sim)
    wait_done(client, "sim", client.prepare("sim", docker_source="distro").id)
    behave(sim, "dpkg-query", DPKG_ALL_INSTALLED)
    behave(sim, "systemctl", "")
    second = wait_done(client, "sim", client.prepare("sim", docker_source="distro").id)
    assert second.state == pb.PREPARATION_STATE_SUCCEEDED
    got = states(second)
    assert [got[n] for n in ("update_packages", "install_dependencies", "install_docker", "start_docker")] == ["SKIPPED"] * 4


def test_one_active_preparation_per_server_and_request_id_is_idempotent(client, sim):
    register(client, sim)
    behave(sim, "apt-get", "sleep 30")
    first = client.prepare("sim", docker_source="distro", request_id="deploy-42")
    assert client.prepare("sim", docker_source="distro", request_id="deploy-42").id == first.id
    with pytest.raises(ServerprepClientError) as e:
        client.prepare("sim", docker_source="distro")
    assert (e.value.code, e.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PREPARATION_ACTIVE")
    assert e.value.metadata["preparation_id"] == first.id
    client.cancel("sim")


def test_cancel_kills_the_remote_command(client, sim):
    register(client, sim)
    behave(sim, "apt-get", 'echo $$ > "$SIM/apt.pid"; sleep 300'.replace("$SIM", str(sim.extra["sim"])))
    prep = client.prepare("sim", docker_source="distro")
    wait_step(client, "sim", "update_packages", pb.STEP_STATE_RUNNING)
    pid_file = sim.extra["sim"] / "apt.pid"
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    cancelled = client.cancel("sim")
    assert (cancelled.id, cancelled.state) == (prep.id, pb.PREPARATION_STATE_CANCELLED)
    assert states(cancelled)["update_packages"] == "CANCELLED"  # not FAILED: nothing went wrong
    assert next(s for s in cancelled.steps if s.name == "update_packages").message == "cancelled"
    assert cancelled.failure.reason == "CANCELLED"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split()[2] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"remote process {pid} still runs after Cancel")
    # A cancelled preparation can be retried; the steps it resets carry no times of the old attempt.
    behave(sim, "apt-get", 'sleep 1')
    retried = client.retry("sim")
    reset = [s for s in retried.steps if s.state == pb.STEP_STATE_PENDING]
    assert reset and all(not s.HasField("start_time") and not s.HasField("end_time") for s in reset)
    assert wait_done(client, "sim", retried.id).state == pb.PREPARATION_STATE_SUCCEEDED


def test_step_timeout_fails_with_step_timeout_and_names_the_command(client, sim):
    register(client, sim)
    behave(sim, "apt-get", "sleep 300")
    prep = client.prepare("sim", docker_source="distro", step_timeout=2)
    failed = wait_done(client, "sim", prep.id, timeout=30)
    assert (failed.failure.reason, failed.failure.step) == ("STEP_TIMEOUT", "update_packages")
    assert "apt-get" in failed.failure.message


def test_unsupported_os_fails_detect_os_naming_it(client):
    with host_sshd(USER, os_release='NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.0\nPRETTY_NAME="Alpine Linux v3.20"\n') as target:
        register(client, target, "alp")
        failed = wait_done(client, "alp", client.prepare("alp").id)
    assert (failed.failure.reason, failed.failure.step) == ("UNSUPPORTED_OS", "detect_os")
    assert "Alpine Linux v3.20" in failed.failure.message and "apt, dnf" in failed.failure.message
    assert states(failed)["update_packages"] == "PENDING"


def test_sudo_without_rights_needs_a_password(client):
    # The real sudo of this machine, a user with no sudoers entry.
    with host_sshd(USER, os_release=DEBIAN_12) as target:
        register(client, target, "nosudo")
        failed = wait_done(client, "nosudo", client.prepare("nosudo", docker_source="distro").id)
    # The user is in no sudoers file; sudo -n asks for a password before it would say so.
    assert (failed.failure.reason, failed.failure.step) == ("SUDO_PASSWORD_REQUIRED", "update_packages")


def test_sudo_that_does_not_answer_is_told_apart_from_a_refusal(client, sim):
    """A sudo that neither starts the shell nor exits (a slow name lookup or PAM module on a real
    server) fails the step after the connect timeout (5 s in tests) saying so, not "sudo refused"
    with an empty reason; Retry succeeds once sudo answers."""
    register(client, sim)
    behave(sim, "sudo", "sleep 8")
    failed = wait_done(client, "sim", client.prepare("sim", docker_source="distro").id, timeout=30)
    assert (failed.failure.reason, failed.failure.step) == ("SUDO_FAILED", "update_packages")
    assert failed.failure.message.startswith("sudo did not start the shell for the steps within 5 s"), failed.failure.message
    behave(sim, "sudo", "")
    assert wait_done(client, "sim", client.retry("sim").id).state == pb.PREPARATION_STATE_SUCCEEDED


def test_wrong_host_key_is_a_hard_failure(client, sim):
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ"
    register(client, sim, host_key=other)
    failed = wait_done(client, "sim", client.prepare("sim").id)
    assert failed.failure.reason == "HOST_KEY_MISMATCH"
    assert "expected SHA256:" in failed.failure.message and "presented SHA256:" in failed.failure.message
    assert not [c for c in calls(sim) if c.startswith("sudo")]


def test_accept_new_host_key_pins_the_first_key(client, sim):
    server = register(client, sim, host_key="", accept_new_host_key=True)
    assert server.host_key == ""
    wait_done(client, "sim", client.prepare("sim", docker_source="distro").id)
    assert client.get_server("sim").host_key == sim.host_key


def test_wrong_key_is_auth_failed_and_closed_port_is_connect_failed(client, sim):
    from harness.targets import KeyPair, free_port

    other = KeyPair.generate(sim.extra["sim"], "other")
    register(client, sim, "badkey", private_key=other.private)
    register(client, sim, "closed", port=free_port())
    assert wait_done(client, "badkey", client.prepare("badkey").id).failure.reason == "AUTH_FAILED"
    closed = wait_done(client, "closed", client.prepare("closed").id)
    assert closed.failure.reason == "CONNECTION_REFUSED"


def test_sudo_password_goes_to_stdin_and_never_into_logs(client):
    secret = "s3cret-sudo-pw"
    with simulated_host(USER, DEBIAN_12) as target:
        (target.extra["sim"] / "sudo-password").write_text(secret)
        # A misbehaving remote that echoes what it was given.
        behave(target, "apt-get", f"echo 'got {secret} from somewhere'")
        register(client, target, "pw", sudo_password=secret)
        done = wait_done(client, "pw", client.prepare("pw", docker_source="distro").id)
        recorded = calls(target)
    assert done.state == pb.PREPARATION_STATE_SUCCEEDED, done.failure
    assert any(c.startswith("sudo -S -p  -k -- sh -c") for c in recorded)
    assert not any(secret in c for c in recorded)  # never in argv
    texts = [e.text for e in client.stream_logs("pw", done.id, follow=False)]
    assert "got ******** from somewhere" in texts
    assert not any(secret in t for t in texts)


def test_wrong_sudo_password_is_sudo_failed(client):
    with simulated_host(USER, DEBIAN_12) as target:
        (target.extra["sim"] / "sudo-password").write_text("right-one")
        register(client, target, "pw", sudo_password="wrong-one")
        failed = wait_done(client, "pw", client.prepare("pw", docker_source="distro").id)
    assert (failed.failure.reason, failed.failure.step) == ("SUDO_PASSWORD_WRONG", "update_packages")
    assert "wrong-one" not in failed.failure.message


def test_status_and_list_preparations(client, sim):
    register(client, sim)
    ids = []
    for _ in range(3):
        ids.append(wait_done(client, "sim", client.prepare("sim", docker_source="distro").id).id)
    assert client.status("sim").id == ids[-1]
    assert client.status("sim", ids[0]).id == ids[0]
    assert [p.id for p in client.list_preparations("sim", page_size=2)] == ids[::-1]
    with pytest.raises(ServerprepClientError) as e:
        client.status("sim", "0" * 32)
    assert e.value.reason == "PREPARATION_NOT_FOUND"
    with pytest.raises(ServerprepClientError) as e:
        client.delete_server("nope")
    assert e.value.reason == "SERVER_NOT_FOUND"


def test_whole_preparation_on_each_database(database_url, tmp_path, sim):
    from harness.service import ServiceThread

    svc = ServiceThread(tmp_path / "data", database_url=database_url).start()
    try:
        with svc.client() as c:
            register(c, sim)
            done = wait_done(c, "sim", c.prepare("sim", docker_source="distro").id)
            assert done.state == pb.PREPARATION_STATE_SUCCEEDED
            seqs = [e.seq for e in c.stream_logs("sim", done.id, follow=False)]
            assert seqs == list(range(1, done.last_seq + 1))
    finally:
        svc.stop()


def test_plan_rpc_reads_facts_and_changes_nothing(client, sim):
    register(client, sim)
    plan = client.plan("sim", docker_source="official", http_proxy="http://u:proxy-secret@proxy:3128")
    assert plan.driver == "apt" and plan.repository.suite == "bookworm"
    assert plan.operating_system.pretty_name == "Debian GNU/Linux 12 (bookworm)"
    assert [s.name for s in plan.steps] == ["update_packages", "install_dependencies", "install_docker", "start_docker", "configure_user", "verify_docker"]
    assert not any("proxy-secret" in c for s in plan.steps for c in [*s.commands, *s.summaries])
    # Read-only: detect_os's probes only, no package manager, no sudo, no preparation.
    assert not [c for c in calls(sim) if c.startswith(("apt-get", "sudo", "usermod", "systemctl"))]
    with pytest.raises(ServerprepClientError) as e:
        client.status("sim")
    assert e.value.reason == "PREPARATION_NOT_FOUND"


def test_plan_rpc_of_an_unsupported_os_is_failed_precondition(client):
    with host_sshd(USER, os_release='ID=alpine\nPRETTY_NAME="Alpine Linux v3.20"\n') as target:
        register(client, target, "alp")
        with pytest.raises(ServerprepClientError) as e:
            client.plan("alp")
    assert (e.value.code, e.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "UNSUPPORTED_OS")


def test_rejected_options_name_their_fields(client, sim):
    register(client, sim)
    with pytest.raises(ServerprepClientError) as e:
        client.prepare("sim", docker_source="distro", docker_version="latest; rm -rf /", channel="nightly",
                       repository_url="ftp://x", http_proxy="not a url")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(e.value.violations) == {"options.docker_version", "options.channel", "options.repository_url", "options.http_proxy"}

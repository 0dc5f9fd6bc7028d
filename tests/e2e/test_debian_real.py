"""Real installs: Debian booted with systemd under systemd-nspawn, reached over real SSH.

Docker comes from Debian's own packages (download.docker.com is not reachable here).
"""

import time

import asyncssh
import pytest

from conftest import wait_done
from harness.targets import nspawn_debian
from serverprep.v1 import preparations_pb2 as pb

pytestmark = pytest.mark.e2e


def states(prep):
    return {s.name: pb.StepState.Name(s.state).removeprefix("STEP_STATE_") for s in prep.steps}


def ssh_run(target, command):
    """Run a command as the target user through a brand-new SSH session."""

    async def go():
        key = asyncssh.import_private_key(target.key.private)
        async with asyncssh.connect(target.host, target.port, username=target.user, client_keys=[key],
                                    known_hosts=None, agent_path=None, config=[]) as conn:
            return await conn.run(command, check=False)

    import asyncio

    return asyncio.run(go())


@pytest.fixture(scope="module")
def bookworm():
    with nspawn_debian("bookworm") as target:
        yield target


def test_broken_source_fails_then_retry_resumes_then_second_run_skips(client, bookworm):
    target = bookworm
    broken = target.root / "etc/apt/sources.list.d/broken.list"
    broken.write_text("deb this-is-not-a-valid-source\n")
    client.create_server("deb12", host=target.host, user=target.user, private_key=target.key.private, host_key=target.host_key)

    started = time.monotonic()
    prep = client.prepare("deb12", docker_source="distro")
    failed = wait_done(client, "deb12", prep.id, timeout=300)
    assert failed.state == pb.PREPARATION_STATE_FAILED
    assert (failed.failure.reason, failed.failure.step) == ("STEP_FAILED", "update_packages")
    step = next(s for s in failed.steps if s.name == "update_packages")
    assert step.exit_code == 100
    logs = list(client.stream_logs("deb12", prep.id, follow=False))
    assert any("broken.list" in e.text and e.stream == pb.LOG_STREAM_STDERR for e in logs), [e.text for e in logs][-10:]
    assert states(failed)["detect_os"] == "SUCCEEDED"

    broken.unlink()
    client.retry("deb12")
    done = wait_done(client, "deb12", prep.id, timeout=600)
    elapsed = time.monotonic() - started
    assert done.state == pb.PREPARATION_STATE_SUCCEEDED, done.failure
    attempts = {s.name: s.attempts for s in done.steps}
    assert attempts["detect_os"] == 1, "detect_os ran again on retry"
    assert attempts["update_packages"] == 2
    assert done.operating_system.codename == "bookworm" and done.operating_system.driver == "apt"
    print(f"\nreal bookworm preparation incl. one failure and retry: {elapsed:.1f}s")

    # The daemon runs under systemd, and the user uses it without sudo from a new session.
    result = ssh_run(target, "systemctl is-active docker && docker info --format '{{.ServerVersion}}' && id -nG")
    assert result.exit_status == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0] == "active" and lines[1].startswith("20.10") and "docker" in lines[2:]

    # Everything already satisfied: a second preparation changes nothing.
    started = time.monotonic()
    again = wait_done(client, "deb12", client.prepare("deb12", docker_source="distro").id, timeout=120)
    print(f"second preparation of a prepared server: {time.monotonic() - started:.1f}s")
    assert again.state == pb.PREPARATION_STATE_SUCCEEDED
    got = states(again)
    assert [got[n] for n in ("update_packages", "install_dependencies", "install_docker", "start_docker", "configure_user")] == ["SKIPPED"] * 5
    assert got["verify_docker"] == "SUCCEEDED"
    # The login was in the docker group already: verify_docker ran on the one connection, no new login.
    events = [e.text for e in client.stream_logs("deb12", again.id, follow=False) if e.stream == pb.LOG_STREAM_EVENT]
    assert not any("a new SSH session" in text for text in events), events
    assert any("on this connection: its login is in the docker group already" in text for text in events), events


@pytest.mark.parametrize("release, version", [("bullseye", "20.10"), ("trixie", "26.")])
def test_real_install_on_other_debian_releases(client, release, version):
    with nspawn_debian(release) as target:
        client.create_server(release, host=target.host, user=target.user, private_key=target.key.private, host_key=target.host_key)
        started = time.monotonic()
        done = wait_done(client, release, client.prepare(release, docker_source="distro").id, timeout=600)
        print(f"\nreal {release} preparation: {time.monotonic() - started:.1f}s")
        assert done.state == pb.PREPARATION_STATE_SUCCEEDED, (done.failure, [e.text for e in client.stream_logs(release, done.id, follow=False)][-30:])
        assert done.operating_system.codename == release
        result = ssh_run(target, "docker info --format '{{.ServerVersion}}' && (docker compose version || docker-compose version)")
        assert result.exit_status == 0, result.stderr
        assert result.stdout.startswith(version)

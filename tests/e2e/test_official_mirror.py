"""docker_source=official for real, through a mirror of download.docker.com built for these tests.

The mirror (tests/harness/docker_mirror.py) has Docker's layout, package names and version scheme,
Docker's Depends/Conflicts/Provides, and Debian's own binaries, signed by a key made for the tests.
The targets are real systemd Debian roots under systemd-nspawn, prepared over real SSH by a real
service. What this proves: serverprep's handling of Docker's repository (key, deb822 source, suite,
channel, conflicting packages, stale sources, version pins, a mirror that is down or signed by the
wrong key) against a real apt and dpkg, ending in a real dockerd. What it does not prove: anything
about Docker's own packages or download.docker.com, which are not reachable here.

Debian 13 and 12 get a faithful mirror; Debian 11 cannot (see test_debian_11_gets_no_test_mirror).
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import time

import asyncssh
import pytest

from conftest import register, wait_done
from harness.docker_mirror import DockerMirror, NotFaithful, build
from harness.targets import nspawn_debian
from serverprep.v1 import preparations_pb2 as pb

pytestmark = pytest.mark.e2e

RELEASES = ("trixie", "bookworm")
SATISFIED = ("update_packages", "install_dependencies", "install_docker", "start_docker", "configure_user")
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def mirror():
    started = time.monotonic()
    with DockerMirror(RELEASES) as served:
        TIMES["mirror build or cache load"] = time.monotonic() - started
        yield served
    print("\nscenario times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in TIMES.items()))


@pytest.fixture(scope="module")
def trixie():
    """One Debian 13 target the scenarios share: pristine for the first test, reset by the others."""
    with nspawn_debian("trixie") as target:
        yield target


def ssh_run(target, command: str, user: str = ""):
    """Run ``command`` through a brand-new SSH session as the target's user."""

    async def go():
        key = asyncssh.import_private_key(target.key.private)
        async with asyncssh.connect(target.host, target.port, username=user or target.user, client_keys=[key],
                                    known_hosts=None, agent_path=None, config=[]) as conn:
            return await conn.run(command, check=False)

    return asyncio.run(go())


def as_root(target, script: str, check: bool = True):
    result = ssh_run(target, f"sudo sh -c {shlex.quote(script)}")
    if check:
        assert result.exit_status == 0, (script, result.stdout[-2000:], result.stderr[-2000:])
    return result


def dpkg_version(target, package: str) -> str:
    """The installed version of ``package``, or "" when it is not installed."""
    out = ssh_run(target, f"dpkg-query -W -f='${{db:Status-Abbrev}}|${{Version}}' {package} 2>/dev/null").stdout
    status, _, version = out.partition("|")
    return version if status.startswith("ii") else ""


DOCKER_PACKAGES = ("docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin "
                   "docker.io docker-cli docker-compose docker-buildx containerd runc")


def reset(target) -> None:
    """Back to a server without Docker: packages purged, Docker's sources, keys, data and group gone."""
    as_root(target, f"""
        set -e; export DEBIAN_FRONTEND=noninteractive
        pkgs=$(dpkg-query -W -f='${{db:Status-Abbrev}} ${{Package}}\\n' {DOCKER_PACKAGES} 2>/dev/null | awk '$1 ~ /^[ir]/ {{print $2}}')
        [ -z "$pkgs" ] || apt-get purge -y -q $pkgs >/dev/null
        apt-get autoremove --purge -y -q >/dev/null
        rm -rf /etc/apt/sources.list.d/docker.* /etc/apt/keyrings/docker.asc /usr/share/keyrings/docker-archive-keyring.gpg \
               /var/lib/docker /var/lib/containerd /etc/docker
        if getent group docker >/dev/null; then groupdel docker; fi
        apt-get update -q >/dev/null
    """)


def official(client, server: str, mirror: DockerMirror, **options):
    """Start an official-source preparation from the test mirror and wait for its end."""
    prep = client.prepare(server, docker_source="official", repository_url=mirror.url, **options)
    return wait_done(client, server, prep.id, timeout=900)


def states(prep) -> dict[str, str]:
    return {s.name: pb.StepState.Name(s.state).removeprefix("STEP_STATE_") for s in prep.steps}


def step_lines(client, server: str, prep, step: str, stream=pb.LOG_STREAM_STDERR) -> str:
    return "\n".join(e.text for e in client.stream_logs(server, prep.id, follow=False) if e.step == step and e.stream == stream)


def tail(client, server: str, prep) -> list[str]:
    return [f"{e.step}: {e.text}" for e in client.stream_logs(server, prep.id, follow=False)][-40:]


def assert_succeeded(client, server: str, prep) -> None:
    assert prep.state == pb.PREPARATION_STATE_SUCCEEDED, (prep.failure, tail(client, server, prep))


def assert_failed_in(client, server: str, prep, step: str, command_start: str, reason: str) -> list[tuple[str, str]]:
    """``prep`` FAILED in ``step`` at a command shown as ``command_start...``, with ``reason`` on its stderr.

    Returns what the failure message itself should contain, checked at the end of the test.
    """
    assert prep.state == pb.PREPARATION_STATE_FAILED, tail(client, server, prep)
    assert (prep.failure.reason, prep.failure.step) == ("STEP_FAILED", step), (prep.failure, tail(client, server, prep))
    assert prep.failure.message.startswith(command_start), prep.failure.message
    assert reason.lower() in step_lines(client, server, prep, step).lower(), tail(client, server, prep)
    return [(prep.failure.message, reason)]


def assert_messages_carry_reasons(expected: list[tuple[str, str]]) -> None:
    # The failure message names the command and exit code; the tool's own reason (apt's, curl's)
    # must be in it too, so that a caller reading only Preparation.failure knows what went wrong.
    for message, reason in expected:
        print(f"\nfailure message: {message}")
        assert reason.lower() in message.lower(), f"failure message lacks the tool's reason {reason!r}: {message!r}"


def user_docker(target) -> tuple[str, str]:
    """(server version, compose version output) from `docker` as the user, in a new SSH session."""
    result = ssh_run(target, "docker info --format '{{.ServerVersion}}' && docker compose version")
    assert result.exit_status == 0, result.stderr
    server, _, compose = result.stdout.partition("\n")
    return server.strip(), compose.strip()


def upstream(version: str) -> str:
    """26.1.5 from 5:26.1.5-1~debian.13~trixie; dockerd itself says 26.1.5+dfsg1 (Debian's build)."""
    return version.split(":", 1)[-1].split("-", 1)[0].split("+", 1)[0]


# -- each release --------------------------------------------------------------------------------


@pytest.mark.parametrize("release", RELEASES)
def test_official_source_through_the_test_mirror_on_a_real_debian(client, mirror, trixie, release):
    """A fresh Debian prepared from the mirror built for tests: SUCCEEDED, Docker for the user, then all SKIPPED."""
    with (nspawn_debian(release) if release != "trixie" else _shared(trixie)) as target:
        register(client, target, release)
        started = time.monotonic()
        done = official(client, release, mirror)
        TIMES[f"{release} first preparation"] = time.monotonic() - started
        assert_succeeded(client, release, done)
        assert (done.operating_system.codename, done.operating_system.driver) == (release, "apt")
        newest = mirror.versions(release)[0]
        assert dpkg_version(target, "docker-ce") == newest and dpkg_version(target, "docker-ce-cli") == newest
        # Everything came through the mirror: the key, the signed index and the packages.
        for wanted in ("/linux/debian/gpg", f"/linux/debian/dists/{release}/InRelease",
                       f"/linux/debian/dists/{release}/pool/stable/amd64/docker-ce_{newest.split(':', 1)[1]}_amd64.deb"):
            assert wanted in mirror.requests, wanted
        server, compose = user_docker(target)
        assert upstream(server) == upstream(newest) and "2.26.1" in compose, (server, compose)
        assert "docker" in ssh_run(target, "id -nG").stdout.split()
        exec_start = ssh_run(target, "systemctl show -p ExecStart docker.service").stdout
        assert "path=/usr/bin/dockerd " in exec_start and "/usr/sbin/" not in exec_start, exec_start  # docker-ce's, not docker.io's

        started = time.monotonic()
        again = official(client, release, mirror)
        TIMES[f"{release} second preparation"] = time.monotonic() - started
        assert_succeeded(client, release, again)
        got = states(again)
        assert [got[s] for s in SATISFIED] == ["SKIPPED"] * len(SATISFIED), got
        assert got["verify_docker"] == "SUCCEEDED"


class _shared:
    """The module's trixie target as a context manager that does not stop it."""

    def __init__(self, target):
        self.target = target

    def __enter__(self):
        return self.target

    def __exit__(self, *exc):
        return False


def test_debian_11_gets_no_test_mirror_because_its_glibc_runs_no_compose_v2():
    """Debian 11's own compose is v1 (Python) and its glibc 2.31 runs none of Debian's compose v2, buildx or newer engines."""
    with pytest.raises(NotFaithful) as e:
        build("bullseye")
    message = str(e.value)
    for part in ("docker-compose-plugin", "docker-buildx-plugin", "libc6 (>= 2.34)", "a pin needs two"):
        assert part in message, message


# -- scenarios on one Debian 13 target --------------------------------------------------------------


def test_test_mirror_replaces_docker_io_from_the_distribution(client, mirror, trixie):
    """Debian's docker.io, docker-cli and docker-compose first, then the official source from the test mirror."""
    reset(trixie)
    register(client, trixie, "replace")
    started = time.monotonic()
    distro = wait_done(client, "replace", client.prepare("replace", docker_source="distro").id, timeout=900)
    assert_succeeded(client, "replace", distro)
    assert dpkg_version(trixie, "docker.io") and dpkg_version(trixie, "docker-cli") and dpkg_version(trixie, "docker-compose")

    done = official(client, "replace", mirror)
    TIMES["replace docker.io"] = time.monotonic() - started
    assert_succeeded(client, "replace", done)
    assert states(done)["install_docker"] == "SUCCEEDED"
    for gone in ("docker.io", "docker-cli", "docker-compose", "containerd", "runc"):
        assert dpkg_version(trixie, gone) == "", gone
    assert dpkg_version(trixie, "docker-ce") == mirror.versions("trixie")[0]
    owners = ssh_run(trixie, "dpkg -S /usr/bin/dockerd /usr/bin/docker /usr/libexec/docker/cli-plugins/docker-compose").stdout
    assert sorted(line.split(":")[0] for line in owners.splitlines()) == ["docker-ce", "docker-ce-cli", "docker-compose-plugin"], owners
    assert ssh_run(trixie, "systemctl is-active docker.service").stdout.strip() == "active"
    assert "2.26.1" in user_docker(trixie)[1]


def test_test_mirror_with_a_stale_docker_list_of_another_signed_by(client, mirror, trixie):
    """A docker.list from older instructions (another Signed-By) next to the deb822 source: real apt refuses both; serverprep cleans up."""
    reset(trixie)
    url = f"{mirror.url}/linux/debian"
    root = trixie.root
    key = subprocess.run(["gpg", "--dearmor"], input=mirror.key.read_bytes(), capture_output=True, check=True).stdout
    (root / "usr/share/keyrings/docker-archive-keyring.gpg").write_bytes(key)
    (root / "etc/apt/sources.list.d/docker.list").write_text(
        f"deb [arch=amd64 signed-by=/usr/share/keyrings/docker-archive-keyring.gpg] {url} trixie stable\n")
    (root / "etc/apt/keyrings").mkdir(exist_ok=True)
    (root / "etc/apt/keyrings/docker.asc").write_text(mirror.key.read_text())
    (root / "etc/apt/sources.list.d/docker.sources").write_text(
        f"Types: deb\nURIs: {url}\nSuites: trixie\nComponents: stable\nArchitectures: amd64\nSigned-By: /etc/apt/keyrings/docker.asc\n")
    # The failure get.docker.com users meet, from the real apt on the target.
    refused = as_root(trixie, "apt-get update -q", check=False)
    assert refused.exit_status != 0 and "Conflicting values set for option Signed-By" in refused.stdout + refused.stderr

    register(client, trixie, "stale")
    started = time.monotonic()
    done = official(client, "stale", mirror)
    TIMES["stale docker.list"] = time.monotonic() - started
    assert_succeeded(client, "stale", done)
    assert states(done)["update_packages"] == "SUCCEEDED"
    assert not (root / "etc/apt/sources.list.d/docker.list").exists()
    assert "Conflicting values" not in step_lines(client, "stale", done, "update_packages")
    assert as_root(trixie, "apt-get update -q").exit_status == 0


def test_test_mirror_version_pin_takes_exactly_that_version_and_a_missing_one_lists_what_there_is(client, mirror, trixie):
    """Two docker-ce versions in the test mirror: the pin picks the older one for real; a version it lacks fails naming both."""
    reset(trixie)
    newest, older = mirror.versions("trixie")[0], mirror.versions("trixie")[-1]
    assert newest != older
    pin = upstream(older).rsplit(".", 1)[0]  # "20.10": a prefix, as users pass it
    register(client, trixie, "pin")
    started = time.monotonic()
    done = official(client, "pin", mirror, docker_version=pin)
    TIMES["pin"] = time.monotonic() - started
    assert_succeeded(client, "pin", done)
    assert dpkg_version(trixie, "docker-ce") == older and dpkg_version(trixie, "docker-ce-cli") == older
    assert upstream(user_docker(trixie)[0]) == upstream(older)
    resolved = step_lines(client, "pin", done, "install_docker", stream=pb.LOG_STREAM_STDOUT)
    assert f"docker-ce {pin} resolves to {older}" in resolved

    started = time.monotonic()
    failed = official(client, "pin", mirror, docker_version="99.1")
    TIMES["missing version"] = time.monotonic() - started
    expected = assert_failed_in(client, "pin", failed, "install_docker", "apt-get install docker-ce=99.1*",
                                f"versions it has: {upstream(newest)}, {upstream(older)}")
    assert [s.exit_code for s in failed.steps if s.name == "install_docker"] == [100]
    assert dpkg_version(trixie, "docker-ce") == older, "a failed pin changed what was installed"
    assert_messages_carry_reasons(expected)


def test_test_mirror_down_then_its_index_unavailable_then_retry_succeeds(client, mirror, trixie):
    """The mirror refuses connections (curl's reason), then answers 503 for its index (apt's reason); Retry after each."""
    reset(trixie)
    register(client, trixie, "down")
    url = f"{mirror.url}/linux/debian"
    started = time.monotonic()
    mirror.stop()
    try:
        failed = official(client, "down", mirror)
    finally:
        mirror.start()
    expected = assert_failed_in(client, "down", failed, "install_docker", "curl ", "curl: (7)")
    assert states(failed)["update_packages"] == "SUCCEEDED"

    mirror.mode = "index-unavailable"
    try:
        client.retry("down")
        again = wait_done(client, "down", failed.id, timeout=900)
    finally:
        mirror.mode = "ok"
    expected += assert_failed_in(client, "down", again, "install_docker", f"apt-get update (fails if {url} does)", "503")

    client.retry("down")
    done = wait_done(client, "down", failed.id, timeout=900)
    TIMES["down, 503, retry"] = time.monotonic() - started
    assert_succeeded(client, "down", done)
    attempts = {s.name: s.attempts for s in done.steps}
    assert (attempts["update_packages"], attempts["install_docker"]) == (1, 3), attempts
    assert dpkg_version(trixie, "docker-ce") == mirror.versions("trixie")[0]
    assert_messages_carry_reasons(expected)


def test_test_mirror_signed_by_another_key_fails_with_apts_reason_then_retry_succeeds(client, mirror, trixie):
    """InRelease signed by a key other than the published one: apt refuses it, serverprep stops; Retry once fixed."""
    reset(trixie)
    register(client, trixie, "wrongsig")
    url = f"{mirror.url}/linux/debian"
    started = time.monotonic()
    mirror.mode = "wrong-signature"
    try:
        failed = official(client, "wrongsig", mirror)
    finally:
        mirror.mode = "ok"
    # gpgv says NO_PUBKEY <long key id>, sqv "Missing key <fingerprint>": both name the impostor's key.
    expected = assert_failed_in(client, "wrongsig", failed, "install_docker", f"apt-get update (fails if {url} does)",
                                mirror.impostor_key_id)
    assert dpkg_version(trixie, "docker-ce") == ""

    client.retry("wrongsig")
    done = wait_done(client, "wrongsig", failed.id, timeout=900)
    TIMES["wrong signature, retry"] = time.monotonic() - started
    assert_succeeded(client, "wrongsig", done)
    assert dpkg_version(trixie, "docker-ce") == mirror.versions("trixie")[0]
    assert_messages_carry_reasons(expected)

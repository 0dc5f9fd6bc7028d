"""Whole preparations of other distributions, simulated: a real sshd, shell and sudo path,
the distribution's os-release, and recording stand-ins for its package tools.

These prove that serverprep runs each distribution's exact command sequence end to end over
SSH. They do not install anything: the real installs are the Debian targets in tests/e2e.
"""

import pytest

from conftest import wait_done
from harness.osreleases import OS_RELEASES
from harness.targets import APT_STANDINS, DNF_STANDINS, behave, calls, simulated_host
from serverprep.v1 import preparations_pb2 as pb

pytestmark = pytest.mark.sshd
USER = "sp-sim"
# curl -o FILE creates an empty FILE; a .sha256 URL answers the checksum of empty content.
CURL_WRITES = (
    'for a in "$@"; do case "$a" in *.sha256) echo "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  f";; esac; done; '
    'while [ "$#" -gt 0 ]; do if [ "$1" = -o ]; then : > "$2"; fi; shift; done'
)
# Calls made by detect_os and by the checks: the assertions look at what the steps ran.
NOISE = ("sudo ", "dpkg-query ", "rpm -q", "systemctl is-", "dpkg --print-architecture", "docker --version", "dnf --version")
DOCKER_CE = "docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin"
APT_GET = "apt-get -o DPkg::Lock::Timeout=300 -q"
TAIL = [
    "systemctl enable --now docker.service",
    f"usermod -aG docker -- {USER}",
    "docker info --format Docker {{.ServerVersion}} answering, storage driver {{.Driver}}, cgroup {{.CgroupVersion}}",
    "docker compose version",
]


def apt_official(url, suite):
    return [
        f"{APT_GET} update",
        f"{APT_GET} install -y --no-install-recommends ca-certificates curl",
        f"curl -fsSL --retry 3 -o /etc/apt/keyrings/docker.asc {url}/gpg",
        f"{APT_GET} update",
        f"{APT_GET} install -y {DOCKER_CE}",
        *TAIL,
    ]


CASES = {
    "fedora-41": (DNF_STANDINS, "dnf5 version 5.2.6.2", "official", [
        "dnf -y makecache",
        "dnf -y install dnf5-plugins",
        "dnf -y config-manager addrepo --from-repofile=https://download.docker.com/linux/fedora/docker-ce.repo --overwrite",
        f"dnf -y install {DOCKER_CE}",
        *TAIL,
    ]),
    "rocky-9.4": (DNF_STANDINS, "4.14.0", "official", [
        "dnf -y makecache",
        "dnf -y install dnf-plugins-core",
        "dnf -y config-manager --add-repo https://download.docker.com/linux/centos/docker-ce.repo",
        f"dnf -y install {DOCKER_CE}",
        *TAIL,
    ]),
    "ubuntu-24.04": (APT_STANDINS, "", "official", apt_official("https://download.docker.com/linux/ubuntu", "noble")),
    "mint-22": (APT_STANDINS, "", "official", apt_official("https://download.docker.com/linux/ubuntu", "noble")),
    "amzn-2023": (DNF_STANDINS, "4.14.0", "distro", [
        "dnf -y makecache",
        "dnf -y install docker",
        "curl -fsSL --retry 3 -o PLUGIN https://github.com/docker/compose/releases/download/v2.29.7/docker-compose-linux-x86_64",
        *TAIL,
    ]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_simulated_preparation_runs_the_exact_sequence(client, name):
    standins, dnf_version, source, expected = CASES[name]
    # Paths the plan writes, made writable for the unprivileged simulated "root" (namespace only).
    writable = ("/etc/apt", "/usr/local/lib") if name == "amzn-2023" else ("/etc/apt",)
    with simulated_host(USER, OS_RELEASES[name], standins=standins, writable=writable) as target:
        behave(target, "systemctl", 'case "$1" in is-enabled|is-active) exit 3;; esac')
        behave(target, "curl", CURL_WRITES)
        behave(target, "rpm", "exit 1")  # nothing installed yet
        behave(target, "dpkg", 'case "$1" in --print-architecture) echo amd64;; esac')
        if dnf_version:
            behave(target, "dnf", f'case "$1" in --version) echo "{dnf_version}";; esac')
        client.create_server(name, host=target.host, port=target.port, user=target.user,
                             private_key=target.key.private, host_key=target.host_key)
        prep = wait_done(client, name, client.prepare(name, docker_source=source).id)
        ran = [c for c in calls(target) if not c.startswith(NOISE)]
    assert prep.state == pb.PREPARATION_STATE_SUCCEEDED, (prep.failure, ran)
    assert prep.operating_system.id == name.split("-")[0].replace("alma", "almalinux").replace("mint", "linuxmint")
    if name == "amzn-2023":
        # The compose plugin download goes to a temporary file, then is checksum-verified.
        ran = [("curl -fsSL --retry 3 -o PLUGIN " + c.split()[-1]) if c.startswith("curl -fsSL --retry 3 -o /tmp") else c for c in ran]
        ran = [c for c in ran if not c.endswith(".sha256")]
    assert ran == expected

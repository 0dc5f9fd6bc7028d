"""Built-in driver for Fedora, RHEL and its rebuilds, and Amazon Linux 2023 (dnf/rpm)."""

from __future__ import annotations

import dataclasses

from serverprep.drivers import (
    DEFAULT_REPOSITORY,
    Command,
    DockerSource,
    Facts,
    OsRelease,
    Plan,
    PlanOptions,
    Repository,
    Shell,
    StepPlan,
    Unsupported,
    docker_service_steps,
    hookimpl,
)
from serverprep.drivers.architectures import dpkg_architecture, unpublished_reason

OFFICIAL_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin")
# Docker's documented list for Fedora/RHEL, plus EL8's podman/buildah/runc that conflict with containerd.io.
CONFLICTING_PACKAGES = (
    "docker", "docker-client", "docker-client-latest", "docker-common", "docker-latest",
    "docker-latest-logrotate", "docker-logrotate", "docker-selinux", "docker-engine-selinux",
    "docker-engine", "podman-docker", "podman", "buildah", "runc",
)
REPO_FILE = "/etc/yum.repos.d/docker-ce.repo"
RPM_INSTALLED = 'rpm -q --quiet -- "$@"'
# One rpm query for all packages; rpm answers "package X is not installed" (several words) for the others.
REMOVE_INSTALLED = 'set -- $(rpm -q --qf "%{NAME}\\n" -- "$@" 2>/dev/null | awk \'NF == 1 && !seen[$1]++\'); [ "$#" -eq 0 ] || dnf -y remove "$@"'
VERSION_MATCHES = (
    'v=$(rpm -q --qf "%{VERSION}" -- "$2" 2>/dev/null) || exit 1; '
    'case "$v" in "$1"|"$1".*|"$1"-*) exit 0;; esac; exit 1'
)
# Amazon Linux 2023 packages no compose: install Docker's release binary, verified by its checksum.
COMPOSE_VERSION = "v2.29.7"
COMPOSE_PLUGIN = "/usr/local/lib/docker/cli-plugins/docker-compose"
INSTALL_COMPOSE = (
    'set -e; url="$1/$2/docker-compose-linux-$(uname -m)"; tmp=$(mktemp); trap \'rm -f "$tmp"\' EXIT; '
    'curl -fsSL --retry 3 -o "$tmp" "$url"; '
    'echo "$(curl -fsSL --retry 3 "$url.sha256" | cut -d" " -f1)  $tmp" | sha256sum -c -; '
    'install -D -m 0755 "$tmp" "$3"'
)
EL_IDS = ("rhel", "centos", "rocky", "almalinux", "ol", "amzn", "fedora", "circle", "navy")


def installed(packages: tuple[str, ...]) -> Shell:
    return Shell(RPM_INSTALLED, packages, description=f"rpm: {' '.join(packages)} installed")


def _repo_name(osr: OsRelease) -> str:
    if osr.id == "fedora":
        return "fedora"
    if osr.id == "rhel":
        return "rhel"
    # CentOS Stream and the rebuilds (Rocky, AlmaLinux, Oracle Linux) use the centos repository.
    return "centos"


def uses_dnf5(facts: Facts) -> bool:
    """dnf5 (Fedora 41+) changed config-manager: decided by what the server runs, not its version."""
    return facts.dnf_version.startswith("dnf5") or (facts.has("dnf5") and not facts.dnf_version)


class DnfDriver:
    name = "dnf"
    distros = (
        "Fedora (dnf4 and dnf5)",
        "RHEL 8, 9, 10",
        "CentOS Stream, Rocky Linux, AlmaLinux, Oracle Linux",
        "Amazon Linux 2023 (distro packages)",
        "refuses yum-only systems (CentOS 7, Amazon Linux 2)",
    )

    def match(self, os_release: OsRelease) -> int | None:
        if os_release.id in EL_IDS:
            return 2
        if {"rhel", "fedora", "centos"} & set(os_release.id_like):
            return 1
        return None

    def typical_facts(self, facts: Facts) -> Facts:
        """dnf5 from Fedora 41, dnf4 elsewhere; yum only on CentOS/RHEL 7 and Amazon Linux 2."""
        osr = facts.os_release
        major = osr.version_major or 0
        if (osr.id == "amzn" and major < 2022) or (osr.id not in ("fedora", "amzn") and 0 < major <= 7):
            return dataclasses.replace(facts, commands=facts.commands | {"yum"})
        if osr.id == "fedora" and major >= 41:
            return dataclasses.replace(facts, commands=facts.commands | {"dnf", "dnf5"}, dnf_version="dnf5 version 5.2.0")
        return dataclasses.replace(facts, commands=facts.commands | {"dnf"}, dnf_version="4.20.0")

    def plan(self, facts: Facts, options: PlanOptions) -> Plan:
        osr = facts.os_release
        if not (facts.has("dnf") or facts.has("dnf5")):
            raise Unsupported(f"{osr.describe()} has no dnf; yum-only systems (CentOS 7, Amazon Linux 2) are end of life and not supported")
        dnf5 = uses_dnf5(facts)
        env = options.proxy_env

        def dnf(*args: str) -> Command:
            return Command(("dnf", "-y", *args), env=env)

        repository = None
        extra_install: list[Command | Shell] = []
        extra_check: list[Command | Shell] = []
        if options.docker_source is DockerSource.OFFICIAL:
            if osr.id == "amzn":
                raise Unsupported("Docker's repository has no Amazon Linux packages: use docker_source=distro")
            refusal = unpublished_reason(_repo_name(osr), options.channel, dpkg_architecture(facts.architecture))
            if refusal:
                raise Unsupported(f"{osr.describe()} on {facts.machine or facts.architecture}: {refusal}")
            base = options.repository_base.rstrip("/")
            url = f"{base}/linux/{_repo_name(osr)}"
            repofile = f"{url}/docker-ce.repo"
            repository = Repository(url=url, component=options.channel, key_url=f"{url}/gpg")
            dependencies: tuple[str, ...] = ("dnf5-plugins",) if dnf5 else ("dnf-plugins-core",)
            docker_packages = OFFICIAL_PACKAGES
            if dnf5:
                add_repo = [dnf("config-manager", "addrepo", f"--from-repofile={repofile}", "--overwrite")]
                channel = [dnf("config-manager", "setopt", f"docker-ce-{options.channel}.enabled=1")]
            else:
                add_repo = [dnf("config-manager", "--add-repo", repofile)]
                channel = [dnf("config-manager", "--set-enabled", f"docker-ce-{options.channel}")]
            if base != DEFAULT_REPOSITORY:
                # Docker's .repo file points at download.docker.com: send it to the mirror.
                add_repo.append(Command(("sed", "-i", f"s#{DEFAULT_REPOSITORY}#{base}#g", REPO_FILE)))
            packages = docker_packages
            if options.docker_version:
                v = options.docker_version
                packages = (f"docker-ce-{v}*", f"docker-ce-cli-{v}*", *docker_packages[2:])
                extra_check.append(Shell(VERSION_MATCHES, (v, "docker-ce"), description=f"docker-ce {v} installed"))
            install_commands: list[Command | Shell] = [
                Shell(REMOVE_INSTALLED, CONFLICTING_PACKAGES, env=env, description="remove conflicting packages if installed: " + " ".join(CONFLICTING_PACKAGES)),
                *add_repo,
                *(channel if options.channel != "stable" else []),
                dnf("install", *packages),
            ]
            install_check = [installed(docker_packages), Command(("grep", "-qF", f"baseurl={base}/", REPO_FILE)), *extra_check]
        else:
            if osr.id == "fedora":
                docker_packages = ("moby-engine", "docker-compose")
            elif osr.id == "amzn":
                docker_packages = ("docker",)
                extra_install.append(
                    Shell(INSTALL_COMPOSE, ("https://github.com/docker/compose/releases/download", COMPOSE_VERSION, COMPOSE_PLUGIN), env=env,
                          description=f"install the docker compose plugin {COMPOSE_VERSION} (checksum verified) to {COMPOSE_PLUGIN}")
                )
                extra_check.append(Command(("test", "-x", COMPOSE_PLUGIN)))
            else:
                raise Unsupported(f"{osr.describe()} ships no Docker engine of its own (only podman): use docker_source=official")
            dependencies = ()
            install_commands = [dnf("install", *docker_packages), *extra_install]
            install_check = [installed(docker_packages), *extra_check]
        return Plan(
            driver=self.name,
            os_release=osr,
            architecture=facts.architecture,
            codename=osr.version_id,
            repository=repository,
            steps=[
                StepPlan(
                    "update_packages",
                    check=[installed(dependencies + docker_packages), *extra_check],
                    check_description="everything to install is installed already",
                    commands=[dnf("makecache")],
                ),
                StepPlan(
                    "install_dependencies",
                    skip_reason="" if dependencies else "no dependencies needed",
                    check=[installed(dependencies)] if dependencies else [],
                    check_description=f"{', '.join(dependencies)} installed",
                    commands=[dnf("install", *dependencies)] if dependencies else [],
                ),
                StepPlan(
                    "install_docker",
                    check=install_check,
                    check_description=f"{', '.join(docker_packages)} installed",
                    commands=install_commands,
                ),
                *docker_service_steps(options),
            ],
        )


@hookimpl
def serverprep_drivers() -> list[DnfDriver]:
    return [DnfDriver()]

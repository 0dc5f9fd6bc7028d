"""Built-in driver for Fedora, RHEL and its rebuilds, and Amazon Linux 2023 (dnf/rpm)."""

from __future__ import annotations

from serverprep.drivers import (
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

OFFICIAL_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin")
# Docker's documented list for Fedora/RHEL, plus the EL8 runc/podman that conflict with containerd.io.
CONFLICTING_PACKAGES = (
    "docker", "docker-client", "docker-client-latest", "docker-common", "docker-latest",
    "docker-latest-logrotate", "docker-logrotate", "docker-selinux", "docker-engine-selinux",
    "docker-engine", "podman-docker", "podman", "runc",
)
RPM_INSTALLED = 'rpm -q --quiet -- "$@"'
REMOVE_INSTALLED = (
    'set -- $(for p in "$@"; do rpm -q --quiet -- "$p" && echo "$p"; done); [ "$#" -eq 0 ] || dnf -y remove "$@"'
)
EL_IDS = ("rhel", "centos", "rocky", "almalinux", "ol", "amzn", "fedora")


def installed(packages: tuple[str, ...]) -> Shell:
    return Shell(RPM_INSTALLED, packages, description=f"rpm: {' '.join(packages)} installed")


def _repo_name(osr: OsRelease) -> str:
    if osr.id == "fedora":
        return "fedora"
    if osr.id == "rhel":
        return "rhel"
    return "centos"


def dnf(*args: str) -> Command:
    return Command(("dnf", "-y", "-q", *args))


class DnfDriver:
    name = "dnf"
    distros = (
        "Fedora (dnf4 and dnf5)",
        "RHEL 8, 9, 10",
        "CentOS Stream, Rocky Linux, AlmaLinux, Oracle Linux",
        "Amazon Linux 2023 (distro packages)",
    )

    def match(self, os_release: OsRelease) -> int | None:
        if os_release.id in EL_IDS:
            return 2
        if {"rhel", "fedora", "centos"} & set(os_release.id_like):
            return 1
        return None

    def plan(self, facts: Facts, options: PlanOptions) -> Plan:
        osr = facts.os_release
        if not (facts.has("dnf") or facts.has("dnf5")):
            raise Unsupported(f"{osr.describe()} has no dnf (yum-only systems such as CentOS 7 are end of life)")
        dnf5 = facts.has("dnf5") or facts.dnf_version.startswith("dnf5")
        repository = None
        if options.docker_source is DockerSource.OFFICIAL:
            if osr.id == "amzn":
                raise Unsupported("Docker's repository has no Amazon Linux packages: use docker_source=distro")
            url = f"{options.repository_base.rstrip('/')}/linux/{_repo_name(osr)}"
            repofile = f"{url}/docker-ce.repo"
            repository = Repository(url=url, key_url=f"{url}/gpg")
            dependencies: tuple[str, ...] = ("dnf5-plugins",) if dnf5 else ("dnf-plugins-core",)
            docker_packages = OFFICIAL_PACKAGES
            add_repo = (
                Command(("dnf", "config-manager", "addrepo", f"--from-repofile={repofile}", "--overwrite"))
                if dnf5
                else Command(("dnf", "config-manager", "--add-repo", repofile))
            )
            install_commands = [
                Shell(REMOVE_INSTALLED, CONFLICTING_PACKAGES, description="remove conflicting packages: " + " ".join(CONFLICTING_PACKAGES)),
                add_repo,
                dnf("install", *docker_packages),
            ]
            install_check = [installed(docker_packages), Command(("test", "-f", "/etc/yum.repos.d/docker-ce.repo"))]
        else:
            if osr.id == "fedora":
                docker_packages = ("moby-engine", "docker-compose")
            elif osr.id == "amzn":
                docker_packages = ("docker",)
            else:
                raise Unsupported(f"{osr.describe()} ships no Docker engine of its own: use docker_source=official")
            dependencies = ()
            install_commands = [dnf("install", *docker_packages)]
            install_check = [installed(docker_packages)]
        return Plan(
            driver=self.name,
            os_release=osr,
            architecture=facts.architecture,
            codename=osr.version_id,
            repository=repository,
            steps=[
                StepPlan(
                    "update_packages",
                    check=[installed(dependencies + docker_packages)],
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

"""Built-in driver for Debian, Ubuntu and their derivatives (apt/dpkg)."""

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
    WriteFile,
    docker_service_steps,
    hookimpl,
)

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
# Seconds to wait for a dpkg/apt lock held by unattended-upgrades or cloud-init.
LOCK_TIMEOUT = 300
KEYRING = "/etc/apt/keyrings/docker.asc"
SOURCES = "/etc/apt/sources.list.d/docker.sources"
# Left by older install instructions; they make apt fail with
# "Conflicting values set for option Signed-By".
STALE_REPO_FILES = (
    "/etc/apt/sources.list.d/docker.list",
    "/etc/apt/trusted.gpg.d/docker.gpg",
    "/etc/apt/trusted.gpg.d/docker.asc",
)
OFFICIAL_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin")
CONFLICTING_PACKAGES = ("docker.io", "docker-doc", "docker-compose", "docker-compose-v2", "podman-docker", "containerd", "runc")

DPKG_INSTALLED = (
    'for p in "$@"; do dpkg-query -W -f=\'${db:Status-Abbrev}\' "$p" 2>/dev/null | grep -q "^ii" || exit 1; done'
)
REMOVE_INSTALLED = (
    'set --  $(for p in "$@"; do dpkg-query -W -f=\'${db:Status-Abbrev}\' "$p" 2>/dev/null | grep -q "^ii" && echo "$p"; done); '
    '[ "$#" -eq 0 ] || env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=%d -y remove "$@"' % LOCK_TIMEOUT
)


def apt_get(*args: str) -> Command:
    return Command(("apt-get", "-o", f"DPkg::Lock::Timeout={LOCK_TIMEOUT}", "-q", *args), env=APT_ENV)


def installed(packages: tuple[str, ...]) -> Shell:
    return Shell(DPKG_INSTALLED, packages, description=f"dpkg: {' '.join(packages)} installed")


def _repo_name(osr: OsRelease, arch: str) -> str:
    if osr.id == "raspbian":
        return "raspbian"
    if osr.id == "ubuntu" or "ubuntu" in osr.id_like:
        return "ubuntu"
    return "debian"


def _codename(osr: OsRelease) -> str:
    # Ubuntu derivatives (Mint, Pop!_OS, elementary, Zorin) carry their base in UBUNTU_CODENAME.
    return osr.ubuntu_codename or osr.version_codename


def _distro_packages(osr: OsRelease) -> tuple[str, ...]:
    ubuntu = osr.id == "ubuntu" or "ubuntu" in osr.id_like
    if ubuntu and osr.id == "ubuntu" and (osr.version_major or 0) >= 22:
        return ("docker.io", "docker-compose-v2")
    return ("docker.io", "docker-compose")


class AptDriver:
    name = "apt"
    distros = (
        "Debian 11, 12, 13",
        "Ubuntu 20.04, 22.04, 24.04",
        "Ubuntu derivatives (Linux Mint, Pop!_OS, elementary OS, Zorin OS) via ID_LIKE",
        "Raspberry Pi OS",
    )

    def match(self, os_release: OsRelease) -> int | None:
        if os_release.id in ("debian", "ubuntu", "raspbian"):
            return 2
        if {"debian", "ubuntu"} & set(os_release.id_like):
            return 1
        return None

    def plan(self, facts: Facts, options: PlanOptions) -> Plan:
        osr = facts.os_release
        codename = _codename(osr)
        arch = facts.architecture
        if not codename:
            raise Unsupported(f"{osr.describe()}: os-release names no release codename (VERSION_CODENAME)")
        repository = None
        if options.docker_source is DockerSource.OFFICIAL:
            repo_name = _repo_name(osr, arch)
            url = f"{options.repository_base.rstrip('/')}/linux/{repo_name}"
            repository = Repository(url=url, suite=codename, component="stable", key_url=f"{url}/gpg")
            dependencies: tuple[str, ...] = ("ca-certificates", "curl")
            docker_packages = OFFICIAL_PACKAGES
            sources = (
                "Types: deb\n"
                f"URIs: {url}\n"
                f"Suites: {codename}\n"
                "Components: stable\n"
                f"Architectures: {arch}\n"
                f"Signed-By: {KEYRING}\n"
            )
            install = StepPlan(
                "install_docker",
                check=[installed(docker_packages), Command(("grep", "-qxF", f"URIs: {url}", SOURCES))],
                check_description=f"{', '.join(docker_packages)} installed from {url}",
                commands=[
                    Shell(REMOVE_INSTALLED, CONFLICTING_PACKAGES, description="remove conflicting packages: " + " ".join(CONFLICTING_PACKAGES)),
                    Command(("rm", "-f", *STALE_REPO_FILES)),
                    Command(("install", "-d", "-m", "0755", "/etc/apt/keyrings")),
                    Command(("curl", "-fsSL", "--retry", "3", "-o", KEYRING, repository.key_url)),
                    Command(("chmod", "a+r", KEYRING)),
                    WriteFile(SOURCES, sources),
                    apt_get("update"),
                    apt_get("install", "-y", *docker_packages),
                ],
            )
        else:
            dependencies = ("ca-certificates",)
            docker_packages = _distro_packages(osr)
            install = StepPlan(
                "install_docker",
                check=[installed(docker_packages)],
                check_description=f"{', '.join(docker_packages)} installed",
                commands=[apt_get("install", "-y", "--no-install-recommends", *docker_packages)],
            )
        return Plan(
            driver=self.name,
            os_release=osr,
            architecture=arch,
            codename=codename,
            repository=repository,
            steps=[
                StepPlan(
                    "update_packages",
                    check=[installed(dependencies + docker_packages)],
                    check_description="everything to install is installed already",
                    commands=[apt_get("update")],
                ),
                StepPlan(
                    "install_dependencies",
                    check=[installed(dependencies)],
                    check_description=f"{', '.join(dependencies)} installed",
                    commands=[apt_get("install", "-y", "--no-install-recommends", *dependencies)],
                ),
                install,
                *docker_service_steps(options),
            ],
        )


@hookimpl
def serverprep_drivers() -> list[AptDriver]:
    return [AptDriver()]

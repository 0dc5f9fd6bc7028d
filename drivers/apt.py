"""Built-in driver for Debian, Ubuntu and their derivatives (apt/dpkg)."""

from __future__ import annotations

import dataclasses

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
    machine_to_arch,
)
from serverprep.drivers.architectures import dpkg_architecture, unpublished_reason

# Seconds to wait for a dpkg/apt lock held by unattended-upgrades or cloud-init.
LOCK_TIMEOUT = 300
KEYRING = "/etc/apt/keyrings/docker.asc"
SOURCES = "/etc/apt/sources.list.d/docker.sources"
# Left by older install instructions; they make apt fail with
# "Conflicting values set for option Signed-By".
STALE_REPO_FILES = (
    "/etc/apt/sources.list.d/docker.list",
    "/etc/apt/sources.list.d/download_docker_com_linux_debian.list",
    "/etc/apt/sources.list.d/download_docker_com_linux_ubuntu.list",
    "/etc/apt/trusted.gpg.d/docker.gpg",
    "/etc/apt/trusted.gpg.d/docker.asc",
)
OFFICIAL_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin")
# Docker's documented list, plus what Debian 13 split out of docker.io: docker-cli (/usr/bin/docker)
# and docker-buildx (the buildx plugin file), which Docker's packages would overwrite.
CONFLICTING_PACKAGES = (
    "docker.io", "docker-cli", "docker-doc", "docker-compose", "docker-compose-v2", "docker-buildx",
    "podman-docker", "containerd", "runc",
)
# Suites served by download.docker.com. A derivative must map onto one of these.
DEBIAN_SUITES = ("buster", "bullseye", "bookworm", "trixie")
# Suites of Docker's 32-bit raspbian repository; get.docker.com sends Raspbian trixie to Debian's.
RASPBIAN_SUITES = ("buster", "bullseye", "bookworm")
UBUNTU_SUITES = ("bionic", "focal", "jammy", "noble", "oracular", "plucky")
# Debian releases whose docker.io still contains the docker command.
DEBIAN_CLI_IN_ENGINE = ("buster", "bullseye", "bookworm")
# Ubuntu releases whose archive has the compose v2 plugin (docker-compose-v2).
UBUNTU_COMPOSE_V2 = ("jammy", "noble", "oracular", "plucky", "questing")

# One dpkg-query for all packages (a process per package used to be most of a check's cost).
# The names the query knows and finds installed ("ii"), one per line; multiarch copies count once.
_DPKG_INSTALLED_NAMES = (
    "dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' -- \"$@\" 2>/dev/null | "
    "awk 'index($2, \"ii\") == 1 && !seen[$1]++ { print $1 }'"
)
DPKG_INSTALLED = (
    "dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' -- \"$@\" 2>/dev/null | "
    "awk -v n=\"$#\" 'index($2, \"ii\") == 1 && !seen[$1]++ { c++ } END { exit c != n }'"
)
REMOVE_INSTALLED = (
    f'set -- $({_DPKG_INSTALLED_NAMES}); '
    '[ "$#" -eq 0 ] || apt-get -o DPkg::Lock::Timeout=%d -y remove "$@"' % LOCK_TIMEOUT
)
# Says who holds the dpkg/apt locks (apt itself then waits up to LOCK_TIMEOUT seconds).
# Read from /proc/locks (holder pid by inode), not from apt's English messages, so it works
# in every locale; one stat and one awk for all the locks (awk reads the holder's name too), so
# it costs two processes when nobody holds one.
LOCK_HOLDERS = (
    'stat -c "%i %n" -- "$@" 2>/dev/null | '
    "awk 'NR == FNR { name[$1] = $2; next } $2 != \"->\" { n = split($6, f, \":\"); "
    "if ((f[n] in name) && !seen[f[n] \" \" $5]++) { comm = \"\"; file = \"/proc/\" $5 \"/comm\"; getline comm < file; close(file); "
    "print \"waiting for \" name[f[n]] \", held by \" comm \" (pid \" $5 \")\" } }' - /proc/locks 2>/dev/null; true"
)
LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock")
VERSION_MATCHES = (
    'v=$(dpkg-query -W -f=\'${Version}\' "$2" 2>/dev/null) || exit 1; v=${v#*:}; '
    'case "$v" in "$1"|"$1".*|"$1"-*|"$1"~*) exit 0;; esac; exit 1'
)
# Resolve a version prefix against the repository, newest first, then install that exact version.
INSTALL_VERSION = (
    'want="$1"; repo="$2"; shift 2; '
    "v=$(apt-cache madison docker-ce | awk -v w=\"$want\" '{ u=$3; sub(/^[0-9]+:/, \"\", u); "
    'if (index(u, w) == 1) { r = substr(u, length(w) + 1, 1); if (r == "" || r == "." || r == "-" || r == "~") { print $3; exit } } }\'); '
    '[ -n "$v" ] || { have=$(apt-cache madison docker-ce | awk \'{ u=$3; sub(/^[0-9]+:/, "", u); sub(/-[^-]*$/, "", u); if (!seen[u]++) print u }\' | head -n 30 | paste -sd , - | sed "s/,/, /g"); '
    'echo "docker-ce $want is not in $repo; versions it has: ${have:-none (is the suite or channel right?)}" >&2; exit 100; }; '
    'echo "docker-ce $want resolves to $v"; '
    'apt-get -o DPkg::Lock::Timeout=%d -q install -y --allow-downgrades "docker-ce=$v" "docker-ce-cli=$v" "$@"' % LOCK_TIMEOUT
)


# apt-get update exits 0 when a repository fails (connection refused, 503, a signature it cannot
# check): it warns and keeps the old index, and the install then uses a stale index or fails with
# "Unable to locate package". For Docker's repository fail here, with apt's lines about it on stderr
# (matched by their W:/E: prefix and the repository URL, which apt does not translate).
UPDATE_OR_FAIL_ON = (
    'url="$1"; shift; tmp=$(mktemp) || exit 1; trap \'rm -f "$tmp" "$tmp.rc"\' EXIT; '
    '{ "$@" 2>&1; echo "$?" > "$tmp.rc"; } | tee "$tmp"; rc=$(cat "$tmp.rc"); '
    'if grep -F -- "$url" "$tmp" | grep -E "^(W|E): " >&2; then '
    'echo "apt-get update could not use $url (see above)" >&2; [ "$rc" != 0 ] || rc=100; fi; exit "$rc"'
)


def installed(packages: tuple[str, ...]) -> Shell:
    return Shell(DPKG_INSTALLED, packages, description=f"dpkg: {' '.join(packages)} installed")


def lock_report() -> Shell:
    return Shell(LOCK_HOLDERS, LOCKS, description="report who holds the dpkg/apt lock, if anyone")


def _is_ubuntu(osr: OsRelease) -> bool:
    return osr.id == "ubuntu" or "ubuntu" in osr.id_like


def repository_for(osr: OsRelease, arch: str) -> tuple[str, str]:
    """(repository name on download.docker.com, suite) for an apt system, or raise Unsupported."""
    if _is_ubuntu(osr):
        # Derivatives (Mint, Pop!_OS, elementary, Zorin) carry their base in UBUNTU_CODENAME;
        # their own VERSION_CODENAME has no Release file at Docker.
        suite = osr.ubuntu_codename or (osr.version_codename if osr.id == "ubuntu" else "")
        if not suite:
            raise Unsupported(f"{osr.describe()} is based on Ubuntu but names no UBUNTU_CODENAME in os-release")
        if osr.id != "ubuntu" and suite not in UBUNTU_SUITES:
            raise Unsupported(f"{osr.describe()}: Ubuntu base {suite!r} has no packages at Docker (known: {', '.join(UBUNTU_SUITES)})")
        return "ubuntu", suite
    suite = osr.fields.get("DEBIAN_CODENAME", "").lower() or osr.version_codename
    if not suite:
        raise Unsupported(f"{osr.describe()}: os-release names no release codename (VERSION_CODENAME)")
    if osr.id not in ("debian", "raspbian") and suite not in DEBIAN_SUITES:
        raise Unsupported(
            f"{osr.describe()} is based on Debian, but its codename {suite!r} is not a Debian release "
            f"Docker serves ({', '.join(DEBIAN_SUITES)})"
        )
    # 32-bit Raspberry Pi OS has its own repository; 64-bit reports ID=debian and uses Debian's.
    if osr.id == "raspbian" and arch == "armhf" and suite in RASPBIAN_SUITES:
        return "raspbian", suite
    return "debian", suite


def distro_packages(osr: OsRelease) -> tuple[str, ...]:
    if _is_ubuntu(osr):
        base = osr.ubuntu_codename or osr.version_codename
        return ("docker.io", "docker-compose-v2" if base in UBUNTU_COMPOSE_V2 else "docker-compose")
    # Debian's docker-compose is the v1 command up to bookworm and the v2 plugin from trixie.
    # From trixie the client is its own package, docker-cli, only recommended by docker.io.
    if osr.version_codename in DEBIAN_CLI_IN_ENGINE:
        return ("docker.io", "docker-compose")
    return ("docker.io", "docker-cli", "docker-compose")


class AptDriver:
    name = "apt"
    distros = (
        "Debian 10, 11, 12, 13",
        "Ubuntu 18.04, 20.04, 22.04, 24.04 and later",
        "Ubuntu derivatives through UBUNTU_CODENAME (Linux Mint, Pop!_OS, elementary OS, Zorin OS, ...)",
        "Debian derivatives that name a Debian codename",
        "Raspberry Pi OS 64-bit (ID=debian) and 32-bit Raspbian (armhf)",
    )

    def match(self, os_release: OsRelease) -> int | None:
        if os_release.id in ("debian", "ubuntu", "raspbian"):
            return 2
        if {"debian", "ubuntu"} & set(os_release.id_like):
            return 1
        return None

    def typical_facts(self, facts: Facts) -> Facts:
        """A typical install has apt-get and dpkg, whose architecture is the machine's."""
        return dataclasses.replace(
            facts, commands=facts.commands | {"apt-get", "dpkg"},
            dpkg_architecture=facts.dpkg_architecture or machine_to_arch(facts.machine),
        )

    def plan(self, facts: Facts, options: PlanOptions) -> Plan:
        osr = facts.os_release
        arch = dpkg_architecture(facts.architecture)
        env = {"DEBIAN_FRONTEND": "noninteractive", **options.proxy_env}

        def apt_get(*args: str) -> Command:
            return Command(("apt-get", "-o", f"DPkg::Lock::Timeout={LOCK_TIMEOUT}", "-q", *args), env=env)

        repository = None
        update: list[Command | Shell] = [lock_report(), apt_get("update")]
        if options.docker_source is DockerSource.OFFICIAL:
            repo_name, suite = repository_for(osr, arch)
            refusal = unpublished_reason(repo_name, options.channel, arch)
            if refusal:
                raise Unsupported(f"{osr.describe()} on {arch}: {refusal}")
            url = f"{options.repository_base.rstrip('/')}/linux/{repo_name}"
            repository = Repository(url=url, suite=suite, component=options.channel, key_url=f"{url}/gpg")
            codename = suite
            dependencies: tuple[str, ...] = ("ca-certificates", "curl")
            docker_packages = OFFICIAL_PACKAGES
            sources = (
                "Types: deb\n"
                f"URIs: {url}\n"
                f"Suites: {suite}\n"
                f"Components: {options.channel}\n"
                f"Architectures: {arch}\n"
                f"Signed-By: {KEYRING}\n"
            )
            if options.docker_version:
                install_cmd: Command | Shell = Shell(
                    INSTALL_VERSION,
                    (options.docker_version, f"{url} {suite} {options.channel}", *OFFICIAL_PACKAGES[2:]),
                    description=f"apt-get install docker-ce={options.docker_version}* docker-ce-cli={options.docker_version}* {' '.join(OFFICIAL_PACKAGES[2:])}",
                    env=env,
                )
            else:
                install_cmd = apt_get("install", "-y", *docker_packages)
            check = [installed(docker_packages), Command(("grep", "-qxF", f"URIs: {url}", SOURCES)), Command(("grep", "-qxF", f"Components: {options.channel}", SOURCES))]
            if options.docker_version:
                check.append(Shell(VERSION_MATCHES, (options.docker_version, "docker-ce"), description=f"docker-ce {options.docker_version} installed"))
            # A stale Docker source next to ours fails every apt-get update ("Conflicting values set for
            # option Signed-By"), the first one included: clear them before it, not only before ours is written.
            update.insert(1, Command(("rm", "-f", *STALE_REPO_FILES)))
            install = StepPlan(
                "install_docker",
                check=check,
                check_description=f"{', '.join(docker_packages)}{' ' + options.docker_version if options.docker_version else ''} installed from {url} {suite} {options.channel}",
                commands=[
                    lock_report(),
                    Shell(REMOVE_INSTALLED, CONFLICTING_PACKAGES, env=env, description="remove conflicting packages if installed: " + " ".join(CONFLICTING_PACKAGES)),
                    Command(("rm", "-f", *STALE_REPO_FILES)),
                    Command(("install", "-d", "-m", "0755", "/etc/apt/keyrings")),
                    Command(("curl", "-fsSL", "--retry", "3", "-o", KEYRING, repository.key_url), env=options.proxy_env),
                    Command(("chmod", "a+r", KEYRING)),
                    WriteFile(SOURCES, sources),
                    Shell(UPDATE_OR_FAIL_ON, (url, *apt_get("update").argv), env=env,
                          description=f"apt-get update (fails if {url} does)"),
                    install_cmd,
                ],
            )
        else:
            codename = osr.ubuntu_codename or osr.version_codename
            dependencies = ("ca-certificates",)
            docker_packages = distro_packages(osr)
            install = StepPlan(
                "install_docker",
                check=[installed(docker_packages)],
                check_description=f"{', '.join(docker_packages)} installed",
                commands=[lock_report(), apt_get("install", "-y", "--no-install-recommends", *docker_packages)],
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
                    commands=update,
                ),
                StepPlan(
                    "install_dependencies",
                    check=[installed(dependencies)],
                    check_description=f"{', '.join(dependencies)} installed",
                    commands=[lock_report(), apt_get("install", "-y", "--no-install-recommends", *dependencies)],
                ),
                install,
                *docker_service_steps(options),
            ],
        )


@hookimpl
def serverprep_drivers() -> list[AptDriver]:
    return [AptDriver()]

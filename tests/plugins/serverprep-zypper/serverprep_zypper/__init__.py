"""serverprep driver for openSUSE and SLES (zypper), built on the public plugin API only."""

from __future__ import annotations

import dataclasses

from serverprep.drivers import (
    Command,
    DockerSource,
    Facts,
    OsRelease,
    Plan,
    PlanOptions,
    Probe,
    Shell,
    StepPlan,
    Unsupported,
    docker_service_steps,
    hookimpl,
)

IDS = ("opensuse-leap", "opensuse-tumbleweed", "opensuse-slowroll", "sles")
PACKAGES = ("docker", "docker-compose")
# Leap Micro and MicroOS have a read-only root that only transactional-update may change:
# zypper install fails there, so such a system is refused before anything runs.
TRANSACTIONAL = Probe(
    "suse_transactional",
    Shell('command -v transactional-update >/dev/null && findmnt -no OPTIONS / | tr , "\\n" | grep -qx ro'),
    description="is / read-only under transactional-update (MicroOS, Leap Micro)?",
)


def installed(packages: tuple[str, ...]) -> Shell:
    return Shell('rpm -q --quiet -- "$@"', packages, description=f"rpm: {' '.join(packages)} installed")


def zypper(*args: str, env: dict[str, str]) -> Command:
    return Command(("zypper", "--non-interactive", *args), env=env)


class ZypperDriver:
    name = "zypper"
    distros = ("openSUSE Leap 15", "openSUSE Tumbleweed", "SLES 15 (distro packages)")

    def match(self, os_release: OsRelease) -> int | None:
        if os_release.id in IDS:
            return 2
        if {"suse", "opensuse"} & set(os_release.id_like):
            return 1
        return None

    def typical_facts(self, facts: Facts) -> Facts:
        return dataclasses.replace(facts, commands=facts.commands | {"zypper", "rpm"})

    def plan(self, facts: Facts, options: PlanOptions) -> Plan:
        osr = facts.os_release
        transactional = facts.probe(TRANSACTIONAL.name)
        if transactional is not None and transactional.ok:
            raise Unsupported(f"{osr.describe()} has a read-only root changed only by transactional-update, which this driver does not use")
        if options.docker_source is DockerSource.OFFICIAL:
            raise Unsupported(f"Docker's repository has no {osr.describe()} packages: use docker_source=distro")
        if not facts.has("zypper"):
            raise Unsupported(f"{osr.describe()} has no zypper")
        env = options.proxy_env
        return Plan(
            driver=self.name,
            os_release=osr,
            architecture=facts.architecture,
            codename=osr.version_id,
            steps=[
                StepPlan("update_packages", check=[installed(PACKAGES)], check_description="docker installed already",
                         commands=[zypper("refresh", env=env)]),
                StepPlan("install_dependencies", skip_reason="no dependencies needed"),
                StepPlan("install_docker", check=[installed(PACKAGES)], check_description="docker, docker-compose installed",
                         commands=[zypper("install", "--no-recommends", *PACKAGES, env=env)]),
                *docker_service_steps(options),
            ],
        )


@hookimpl
def serverprep_drivers() -> list[ZypperDriver]:
    return [ZypperDriver()]


@hookimpl
def serverprep_fact_probes() -> list[Probe]:
    return [TRANSACTIONAL]

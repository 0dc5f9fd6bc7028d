"""The serverprep plugin API: everything a third-party OS driver needs.

A driver turns the facts of a server (its os-release, architecture, login user,
what is installed) and the caller's options into a :class:`Plan`: the commands of
each step and a check that proves a step is already satisfied. It never connects
anywhere; serverprep runs the plan over SSH.

Ship a driver as a package that declares an entry point::

    # pyproject.toml
    [project.entry-points."serverprep.drivers"]
    zypper = "serverprep_zypper"

and implements the hook in that module::

    from serverprep.drivers import Command, Plan, StepPlan, hookimpl

    class ZypperDriver:
        name = "zypper"
        distros = ("openSUSE Leap 15", "SLES 15")

        def match(self, os_release):
            return 2 if os_release.id in ("opensuse-leap", "sles") else None

        def plan(self, facts, options):
            ...
            return Plan(driver=self.name, ...)

    @hookimpl
    def serverprep_drivers():
        return [ZypperDriver()]

Commands are data (:class:`Command`, :class:`Shell`, :class:`WriteFile`): values go
in argument lists and serverprep quotes them, so nothing a user typed is ever
spliced into shell text.

A driver that needs a fact serverprep does not gather declares a read-only probe; its
result reaches ``plan`` in ``facts.probes``::

    @hookimpl
    def serverprep_fact_probes():
        return [Probe("zypper_version", Command(("zypper", "--version")))]

    # in plan():  result = facts.probe("zypper_version")  -> ProbeResult(exit_code, output)

The hook specifications live in :mod:`serverprep.drivers.hookspecs`.
"""

from __future__ import annotations

import pluggy

from serverprep.drivers.architectures import dpkg_architecture, is_known_architecture, unpublished_reason
from serverprep.drivers.commands import Command, RemoteCommand, Shell, WriteFile
from serverprep.drivers.common import docker_service_steps
from serverprep.drivers.osrelease import OsRelease, parse_os_release
from serverprep.drivers.types import (
    DEFAULT_REPOSITORY,
    PLANNED_STEPS,
    STEP_NAMES,
    DockerSource,
    Driver,
    Facts,
    Plan,
    PlanOptions,
    Probe,
    ProbeResult,
    Repository,
    StepPlan,
    Unsupported,
    machine_to_arch,
)

#: Marks a plugin's hook implementations.
hookimpl = pluggy.HookimplMarker("serverprep")

__all__ = [
    "DEFAULT_REPOSITORY",
    "PLANNED_STEPS",
    "STEP_NAMES",
    "Command",
    "DockerSource",
    "Driver",
    "Facts",
    "OsRelease",
    "Plan",
    "PlanOptions",
    "Probe",
    "ProbeResult",
    "RemoteCommand",
    "Repository",
    "Shell",
    "StepPlan",
    "Unsupported",
    "WriteFile",
    "docker_service_steps",
    "dpkg_architecture",
    "is_known_architecture",
    "hookimpl",
    "machine_to_arch",
    "parse_os_release",
    "unpublished_reason",
]

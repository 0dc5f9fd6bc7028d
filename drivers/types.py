"""The data a driver receives and returns: facts and options in, a plan out."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from serverprep.drivers.architectures import dpkg_architecture
from serverprep.drivers.commands import RemoteCommand
from serverprep.drivers.osrelease import OsRelease

#: The steps of every preparation, in order. detect_os is run by serverprep itself.
STEP_NAMES: tuple[str, ...] = (
    "detect_os",
    "update_packages",
    "install_dependencies",
    "install_docker",
    "start_docker",
    "configure_user",
    "verify_docker",
)
#: The steps a driver plans.
PLANNED_STEPS: tuple[str, ...] = STEP_NAMES[1:]


class DockerSource(str, Enum):
    OFFICIAL = "official"
    DISTRO = "distro"


def machine_to_arch(machine: str) -> str:
    """The package architecture (dpkg's and Docker's name) of a uname -m, rpm or dpkg name."""
    return dpkg_architecture(machine)


_PROBE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class Probe:
    """A read-only command whose output a driver decides on, run in the facts round trip.

    Plugins declare probes with the ``serverprep_fact_probes`` hook; serverprep runs every
    installed probe as the login user (no sudo), with standard input closed and standard
    error discarded, before any driver is chosen, and hands the results to the driver as
    ``facts.probes[name]``. A probe must change nothing and be quick: the whole round trip
    is bounded in time and output (each probe's output is cut at ``MAX_OUTPUT`` bytes).

    >>> Probe("zypper_version", Command(("zypper", "--version")))
    Probe(name='zypper_version', command=Command(argv=('zypper', '--version'), env={}), description='')
    """

    name: str
    command: RemoteCommand
    description: str = ""

    MAX_OUTPUT = 64 * 1024

    def __post_init__(self) -> None:
        if not _PROBE_NAME.fullmatch(self.name):
            raise ValueError(f"probe name {self.name!r}: use lower-case letters, digits and '_', starting with a letter")


@dataclass(frozen=True)
class ProbeResult:
    """What a probe printed on standard output (without the final newline), and its exit status."""

    exit_code: int
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class Facts:
    """What serverprep learned about a server in one read-only round trip."""

    os_release: OsRelease
    #: ``uname -m``, e.g. x86_64.
    machine: str = ""
    #: ``dpkg --print-architecture`` where dpkg exists, else empty.
    dpkg_architecture: str = ""
    #: Login user name and uid.
    user: str = "root"
    uid: int = 0
    #: Groups of the login that gathered the facts (``id -Gn``): what a command on that connection may use.
    groups: frozenset[str] = frozenset()
    #: Programs found on PATH (of those serverprep looks for).
    commands: frozenset[str] = frozenset()
    #: Output of ``docker --version`` when Docker is installed.
    docker_version: str = ""
    #: First line of ``dnf --version`` (dnf5 prints "dnf5 version 5...").
    dnf_version: str = ""
    #: Results of the probes plugins declared (``serverprep_fact_probes``), by probe name.
    probes: Mapping[str, ProbeResult] = field(default_factory=dict)

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    @property
    def architecture(self) -> str:
        """Package architecture: dpkg's answer when there is one, else uname -m mapped."""
        return self.dpkg_architecture or machine_to_arch(self.machine)

    def has(self, program: str) -> bool:
        return program in self.commands

    def probe(self, name: str) -> ProbeResult | None:
        """The result of probe ``name``, or None when no installed plugin declared it."""
        return self.probes.get(name)


DEFAULT_REPOSITORY = "https://download.docker.com"


@dataclass(frozen=True)
class PlanOptions:
    """What the caller asked for."""

    docker_source: DockerSource = DockerSource.OFFICIAL
    #: User to add to the docker group (the SSH login user).
    user: str = "root"
    #: Base URL of Docker's repositories (a mirror for air-gapped sites).
    repository_base: str = DEFAULT_REPOSITORY
    #: Version prefix to install ("27.3.1", "27.3"); empty for the newest.
    docker_version: str = ""
    #: Docker repository channel: "stable" or "test".
    channel: str = "stable"
    http_proxy: str = ""
    https_proxy: str = ""
    no_proxy: str = ""

    @property
    def proxy_env(self) -> dict[str, str]:
        """Proxy variables for package managers and curl (both spellings: tools differ)."""
        env = {}
        for name in ("http_proxy", "https_proxy", "no_proxy"):
            value = getattr(self, name)
            if value:
                env[name] = value
                env[name.upper()] = value
        return env


@dataclass(frozen=True)
class Repository:
    """A package repository a plan adds: for apt, url + suite + component."""

    url: str
    suite: str = ""
    component: str = ""
    key_url: str = ""


@dataclass(frozen=True)
class StepPlan:
    """One step: skipped when every ``check`` command exits 0, else ``commands`` run in order.

    ``as_user`` steps run without sudo on a new SSH connection, as the login user
    would, so that fresh group memberships apply. ``skip_reason`` skips a step
    that does not apply (no command is run).
    """

    name: str
    commands: Sequence[RemoteCommand] = ()
    check: Sequence[RemoteCommand] = ()
    as_user: bool = False
    skip_reason: str = ""
    #: What the check proves when it passes, e.g. "docker.io is installed".
    check_description: str = ""
    #: Run when a command fails, to put the cause in the log (e.g. the unit's journal).
    diagnostics: Sequence[RemoteCommand] = ()

    def __post_init__(self) -> None:
        if self.name not in PLANNED_STEPS:
            raise ValueError(f"unknown step {self.name!r}; steps are {', '.join(PLANNED_STEPS)}")
        object.__setattr__(self, "commands", tuple(self.commands))
        object.__setattr__(self, "check", tuple(self.check))
        object.__setattr__(self, "diagnostics", tuple(self.diagnostics))


@dataclass(frozen=True)
class Plan:
    """Everything a preparation will run, step by step, decided before it starts."""

    driver: str
    os_release: OsRelease
    architecture: str
    codename: str
    steps: Sequence[StepPlan]
    repository: Repository | None = None

    def __post_init__(self) -> None:
        names = tuple(s.name for s in self.steps)
        if names != PLANNED_STEPS:
            raise ValueError(f"a plan has the steps {', '.join(PLANNED_STEPS)} in order, got {', '.join(names)}")
        object.__setattr__(self, "steps", tuple(self.steps))

    def step(self, name: str) -> StepPlan:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def operating_system(self) -> dict[str, str]:
        """What the plan was made for, as shown to people and stored with a preparation."""
        osr = self.os_release
        return {
            "id": osr.id,
            "version_id": osr.version_id,
            "pretty_name": osr.describe(),
            "codename": self.codename,
            "architecture": self.architecture,
            "driver": self.driver,
        }

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data: exactly the shell commands each step runs."""
        return {
            "driver": self.driver,
            "operating_system": self.operating_system(),
            "repository": None
            if self.repository is None
            else {
                "url": self.repository.url,
                "suite": self.repository.suite,
                "component": self.repository.component,
                "key_url": self.repository.key_url,
            },
            "steps": [
                {
                    "name": s.name,
                    "commands": [c.render() for c in s.commands],
                    "checks": [c.render() for c in s.check],
                    "summaries": [c.display() for c in s.commands],
                    "check_summary": s.check_description,
                    "as_user": s.as_user,
                    "skip_reason": s.skip_reason,
                }
                for s in self.steps
            ],
        }


@runtime_checkable
class Driver(Protocol):
    """An OS driver. Pure: it never connects anywhere.

    ``name`` is unique among installed drivers. ``distros`` is a human list of what it
    claims (for ``serverprep drivers``). ``match`` says how specifically it claims an
    OS: ``None`` (not at all), 1 (through ID_LIKE), 2 (by ID), higher for a more
    specific claim; the highest claim wins and a tie is an error.

    A driver may also define ``typical_facts(facts: Facts) -> Facts``: given the facts an
    offline plan starts from (os-release, architecture, user), return what a typical
    install of that OS would report (its package tools, their versions). ``serverprep
    plan`` uses it to plan without a server; a driver without it plans from those facts
    as they are.
    """

    name: str
    distros: Sequence[str]

    def match(self, os_release: OsRelease) -> int | None: ...

    def plan(self, facts: Facts, options: PlanOptions) -> Plan: ...


@dataclass(frozen=True)
class Unsupported(Exception):
    """Raised by a driver's ``plan`` for an OS it claims but cannot serve (e.g. CentOS 7)."""

    message: str

    def __str__(self) -> str:
        return self.message


__all__ = [
    "DEFAULT_REPOSITORY",
    "STEP_NAMES",
    "PLANNED_STEPS",
    "DockerSource",
    "Driver",
    "Facts",
    "Plan",
    "PlanOptions",
    "Probe",
    "ProbeResult",
    "Repository",
    "StepPlan",
    "Unsupported",
    "machine_to_arch",
]

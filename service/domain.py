"""Domain types shared by the engine, the store and the API edge."""

from __future__ import annotations

import dataclasses
import enum
import urllib.parse
from dataclasses import dataclass, field
from typing import Any


class PrepState(str, enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def active(self) -> bool:
        return self in (PrepState.PENDING, PrepState.RUNNING)


class StepState(str, enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"

    @property
    def done(self) -> bool:
        return self in (StepState.SUCCEEDED, StepState.SKIPPED)


class Stream(str, enum.Enum):
    STDOUT = "STDOUT"
    STDERR = "STDERR"
    EVENT = "EVENT"


@dataclass(frozen=True)
class Secrets:
    """Login secrets of a server. Never rendered: repr shows only which are set."""

    private_key: str = field(default="", repr=False)
    private_key_passphrase: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    sudo_password: str = field(default="", repr=False)

    def values(self) -> list[str]:
        return [v for v in (self.private_key_passphrase, self.password, self.sudo_password) if v]


@dataclass(frozen=True)
class ServerSpec:
    name: str
    host: str
    port: int
    user: str
    secrets: Secrets
    host_key: str = ""
    accept_new_host_key: bool = False


@dataclass(frozen=True)
class Server:
    id: int
    name: str
    host: str
    port: int
    user: str
    host_key: str
    accept_new_host_key: bool
    created_at: float
    secrets: Secrets = field(default_factory=Secrets, repr=False)


@dataclass(frozen=True)
class Options:
    docker_source: str = "official"
    step_timeout: float = 900.0
    docker_version: str = ""
    channel: str = "stable"
    repository_url: str = ""
    http_proxy: str = ""
    https_proxy: str = ""
    no_proxy: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Options:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["step_timeout"] = float(values.get("step_timeout", 900.0))
        return cls(**values)

    def secrets(self) -> list[str]:
        """Passwords inside proxy URLs: to be redacted wherever text is shown."""
        found = []
        for url in (self.http_proxy, self.https_proxy):
            try:
                password = urllib.parse.urlsplit(url).password
            except ValueError:
                password = None
            if password:
                found.append(password)
        return found


@dataclass
class StepRecord:
    name: str
    state: StepState = StepState.PENDING
    exit_code: int | None = None
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    remote_pid: int | None = None
    remote_marker: str = ""


@dataclass
class Preparation:
    id: str
    server: str
    server_id: int
    state: PrepState
    options: Options
    steps: list[StepRecord]
    request_id: str = ""
    attempt: int = 1
    os: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    message: str = ""
    failed_step: str = ""
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    last_seq: int = 0
    owner: str = ""

    def step(self, name: str) -> StepRecord:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


@dataclass(frozen=True)
class LogEntry:
    seq: int
    time: float
    step: str
    stream: Stream
    text: str
    step_state: StepState | None = None
    prep_state: PrepState | None = None

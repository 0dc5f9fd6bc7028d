"""Domain types shared by the use cases, the runner, the store and the API edge."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import hashlib
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from serverprep.drivers.commands import mask_credentials

#: Seconds a step may run before it is stopped, unless the caller says otherwise.
DEFAULT_STEP_TIMEOUT = 900.0
#: Characters of one log line kept; the rest of a longer line is cut.
MAX_LINE = 16 * 1024


class PrepState(str, enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    #: The states in which a preparation holds its server (set below the class).
    ACTIVE: ClassVar[frozenset[PrepState]]

    @property
    def active(self) -> bool:
        return self in PrepState.ACTIVE


PrepState.ACTIVE = frozenset({PrepState.PENDING, PrepState.RUNNING})


class StepState(str, enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    #: A step in one of these states is not run again by a Retry (set below the class).
    DONE: ClassVar[frozenset[StepState]]

    @property
    def done(self) -> bool:
        return self in StepState.DONE


StepState.DONE = frozenset({StepState.SUCCEEDED, StepState.SKIPPED})


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

    NAMES: ClassVar[tuple[str, ...]] = ("private_key", "private_key_passphrase", "password", "sudo_password")

    def values(self) -> list[str]:
        """The secrets that could appear in output (a private key never does)."""
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
class PreparationSummary:
    """A server's newest preparation in brief: what changes whenever the preparation does."""

    id: str
    state: PrepState
    attempt: int
    last_seq: int


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
    #: Its newest preparation, where the store was asked for it (the API's answers); None when never prepared.
    latest: PreparationSummary | None = None

    @property
    def host_key_fingerprint(self) -> str:
        return host_key_fingerprint(self.host_key)


@dataclass(frozen=True)
class ServerChange:
    """A typed update of a server: None leaves a field as it is.

    ``host_key`` pins a key (and stops trusting the first one seen); ``accept_new_host_key``
    forgets the pinned key so that the next connection pins a new one.
    """

    host: str | None = None
    port: int | None = None
    user: str | None = None
    private_key: str | None = None
    private_key_passphrase: str | None = None
    password: str | None = None
    sudo_password: str | None = None
    host_key: str | None = None
    accept_new_host_key: bool = False

    def is_empty(self) -> bool:
        return self == ServerChange()

    def secrets(self) -> dict[str, str]:
        return {name: value for name in Secrets.NAMES if (value := getattr(self, name)) is not None}


def host_key_fingerprint(host_key: str) -> str:
    """SHA256 fingerprint of an OpenSSH public key line, as ``ssh-keygen -l`` shows it."""
    parts = host_key.split()
    if len(parts) < 2:
        return ""
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return ""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class Options:
    docker_source: str = "official"
    step_timeout: float = DEFAULT_STEP_TIMEOUT
    docker_version: str = ""
    channel: str = "stable"
    repository_url: str = ""
    http_proxy: str = ""
    https_proxy: str = ""
    no_proxy: str = ""

    #: Fields that may carry a password (proxy URLs): stored encrypted, shown masked.
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("http_proxy", "https_proxy")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Options:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["step_timeout"] = float(values.get("step_timeout", DEFAULT_STEP_TIMEOUT))
        return cls(**values)

    def public(self) -> Options:
        """These options as they may be shown: passwords in proxy URLs masked."""
        return dataclasses.replace(self, **{name: mask_credentials(getattr(self, name)) for name in self.SECRET_FIELDS})

    def secrets(self) -> list[str]:
        """Passwords inside proxy URLs: to be redacted wherever text is shown."""
        found = []
        for name in self.SECRET_FIELDS:
            try:
                password = urllib.parse.urlsplit(getattr(self, name)).password
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
class StepChange:
    """A step's transition, stored together with the log entry that announces it.

    RUNNING begins a new attempt (start time now, end time, exit code and message cleared);
    any other state ends the step.
    """

    name: str
    state: StepState
    at: float
    message: str = ""
    exit_code: int | None = None

    @property
    def begins(self) -> bool:
        return self.state is StepState.RUNNING


@dataclass(frozen=True)
class PrepChange:
    """A preparation's move to a final state (RUNNING is taken with Store.start_running)."""

    state: PrepState
    at: float
    reason: str = ""
    message: str = ""
    failed_step: str = ""

    def __post_init__(self) -> None:
        if self.state.active:
            raise ValueError(f"a PrepChange ends a preparation; {self.state.value} is not final")


@dataclass(frozen=True)
class ReplicaHolder:
    """The process that holds a replica name."""

    name: str
    instance: str
    host: str
    pid: int
    pid_started: str
    started_at: float
    heartbeat_at: float


@dataclass(slots=True)
class LogEntry:
    """One line of a preparation's log. Slotted: a running preparation's log holds many of them,
    and with no ``__dict__`` each is one object for the garbage collector to visit, not two, and
    96 bytes, not 184.

    Never changed once made (live readers and the store share it), but not ``frozen``: a frozen
    dataclass's ``__init__`` sets each field through ``object.__setattr__``, 2.6 µs an entry here
    against 0.3 µs, and one is made for every line of output. Not hashable, as it is not frozen."""

    seq: int
    time: float
    step: str
    stream: Stream
    text: str
    step_state: StepState | None = None
    prep_state: PrepState | None = None
    #: Its encoding for live readers, set by the first one to send it (convert.log_entry_fields).
    #: A cache beside the fields, not one of them.
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)


def redactor(secrets: list[str]) -> Callable[[str], str]:
    """Replace every secret in a text with ********.

    A secret of 4 characters or more is replaced wherever it appears; a shorter one where it
    stands as a word of its own (replacing every "ab" inside other words would ruin the log and
    tell a reader which letters to look at).
    """
    long = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
    short = sorted({s for s in secrets if 0 < len(s) < 4}, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w])(?:" + "|".join(re.escape(s) for s in short) + r")(?![\w])") if short else None
    if not long and pattern is None:
        return lambda text: text

    def redact(text: str) -> str:
        for value in long:
            if value in text:
                text = text.replace(value, "********")
        if pattern is not None:
            text = pattern.sub("********", text)
        return text

    return redact

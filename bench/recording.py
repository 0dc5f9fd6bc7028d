"""The remote commands serverprep sends, recorded from one real preparation, to replay with other tools."""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import sprun
from fleethost import fleet_host


@dataclass(frozen=True)
class Command:
    command: str
    stdin: str
    #: The exit status it had under serverprep; a replay must see the same.
    status: int


@dataclass(frozen=True)
class Recording:
    """Commands per SSH connection, in the order serverprep first used each connection."""

    connections: list[list[Command]]

    @property
    def commands(self) -> list[Command]:
        return [c for conn in self.connections for c in conn]

    def to_json(self) -> list[list[dict]]:
        return [[asdict(c) for c in conn] for conn in self.connections]

    @classmethod
    def from_json(cls, data: list[list[dict]]) -> Recording:
        return cls([[Command(**c) for c in conn] for conn in data])

    def summary(self) -> str:
        sizes = " + ".join(str(len(c)) for c in self.connections)
        return f"{len(self.commands)} commands over {len(self.connections)} SSH connections ({sizes})"


def load(directory: Path) -> Recording:
    """Read what the recorder shell left: one directory per command, named by start time."""
    connections: dict[str, list[Command]] = {}
    for entry in sorted(directory.iterdir(), key=lambda p: int(p.name.split("-")[0])):
        status = entry / "status"
        if not status.exists():
            raise RuntimeError(f"recorded command {entry.name} has no exit status: it did not finish")
        connections.setdefault((entry / "connection").read_text().strip(), []).append(
            Command(
                command=(entry / "command").read_text(),
                stdin=(entry / "stdin").read_text(),
                status=int(status.read_text()),
            )
        )
    if not connections:
        raise RuntimeError("nothing was recorded: serverprep ran no command over SSH")
    return Recording(list(connections.values()))


def record_serverprep(timeout: float = 120) -> Recording:
    """Run one real preparation with serverprep against a recording sshd and keep the commands it sent."""
    with tempfile.TemporaryDirectory(prefix="spb-record-") as tmp, fleet_host(1, record=True) as host:
        with sprun.service(Path(tmp) / "data", 1) as svc:
            names = sprun.server_names(1)
            asyncio.run(sprun.register(svc.address, host, names))
            result = asyncio.run(sprun.prepare_fleet(svc, names, readers=0, status_rate=20, prepare_window=1, timeout=timeout))
            if result.failures:
                raise RuntimeError("the recorded preparation failed: " + "; ".join(result.failures))
        return load(host.recorded())


def logins_only(recording: Recording) -> Recording:
    """The same SSH connections, each running ``true`` alone: what the logins cost without the work."""
    return Recording([[Command("true", "", 0)] for _ in recording.connections])


def from_file(path: Path) -> Recording:
    return Recording.from_json(json.loads(path.read_text()))


def save(recording: Recording, path: Path) -> None:
    path.write_text(json.dumps(recording.to_json(), indent=1))

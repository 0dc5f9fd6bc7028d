"""An example service that depends on serverprep-client: mypy --strict must accept it as it is."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from serverprep.clients import (
    LOG_STREAM_STDERR,
    PREPARATION_STATE_SUCCEEDED,
    TERMINAL,
    AsyncClient,
    Client,
    HostKeyMismatch,
    InvalidArgumentError,
    LogEntry,
    Preparation,
    PreparationActive,
    PreparationState,
    Server,
    ServerChanges,
    ServerprepClientError,
    ServiceUnavailable,
    StepState,
    short_name,
)


def prepare_and_wait(sp: Client, name: str, key: str) -> bool:
    try:
        sp.create_server(name, host="10.0.0.5", user="admin", private_key=key, accept_new_host_key=True)
    except InvalidArgumentError as e:
        for field, why in e.violations.items():
            print(f"{field}: {why}")
        return False
    try:
        prep: Preparation = sp.prepare(name, docker_source="distro", request_id=f"deploy-{name}", step_timeout=600)
    except PreparationActive as e:
        prep = sp.status(name, e.preparation_id)
    errors: list[str] = [entry.text for entry in sp.stream_logs(name, prep.id) if entry.stream == LOG_STREAM_STDERR]
    final = sp.status(name, prep.id)
    for step in final.steps:
        print(step.name, short_name(StepState, step.state), step.exit_code if step.HasField("exit_code") else None)
    print(len(errors), "lines on stderr")
    return final.state == PREPARATION_STATE_SUCCEEDED


def describe(servers: Iterable[Server]) -> dict[str, int]:
    return {s.name: s.port for s in servers}


def rotate_key(sp: Client, name: str, key: str) -> Server:
    changes: ServerChanges = {"host_key": key}
    return sp.update_server(name, **changes)


async def watch(address: str, name: str) -> list[str]:
    async with AsyncClient(address, timeout=10.0) as sp:
        lines: list[str] = []
        entry: LogEntry
        async for entry in sp.stream_logs(name, after_seq=0, follow=True):
            lines.append(f"{entry.seq} {entry.step} {entry.text}")
        prep = await sp.status(name)
        state: PreparationState = prep.state
        if state in TERMINAL:
            lines.append(PreparationState.Name(state))
        names = [s.name async for s in sp.list_servers(page_size=50)]
        lines.extend(names)
        return lines


def main() -> int:
    try:
        with Client() as sp:
            print(describe(sp.list_servers()), sp.health())
            prepare_and_wait(sp, "web1", "...")
            rotate_key(sp, "web1", "ssh-ed25519 AAAA")
    except HostKeyMismatch as e:
        print("fingerprint:", e.metadata.get("presented_fingerprint", ""))
        return 3
    except ServiceUnavailable:
        return 2
    except ServerprepClientError as e:
        print(e.reason, e.message, e.code.name)
        return 1
    print(asyncio.run(watch("127.0.0.1:50051", "web1")))
    return 0

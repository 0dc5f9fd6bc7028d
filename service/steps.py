"""What serverprep runs on a server: the facts round trip, one planned step, stopping what it started."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from serverprep.drivers import Facts, OsRelease, Probe, ProbeResult, StepPlan
from serverprep.service import remote, ssh
from serverprep.service.domain import Server, StepState, Stream
from serverprep.service.errors import DriverError, FactsFailed, OutputTooLarge, ServerprepError, StepFailed, StepTimeout, SudoFailed
from serverprep.service.settings import Settings

log = logging.getLogger(__name__)

#: Emits one line to the preparation's log: (stream, text).
Emit = Callable[[Stream, str], None]


def target(server: Server, settings: Settings) -> ssh.Target:
    return ssh.Target(
        host=server.host,
        port=server.port,
        user=server.user,
        secrets=server.secrets,
        host_key=server.host_key,
        connect_timeout=settings.connect_timeout,
        keepalive_interval=settings.keepalive_interval,
        keepalive_count_max=settings.keepalive_count_max,
    )


async def gather_facts(
    conn: ssh.Connection, probes: Sequence[Probe], timeout: float, max_bytes: int, emit: Emit | None = None
) -> Facts:
    """One read-only round trip as the login user: os-release, architecture, tools, plugin probes."""
    marker = remote.new_marker()
    lines: list[str] = []

    def collect(stream: Stream, text: str) -> None:
        if stream is Stream.STDOUT:
            lines.append(text)
        if emit is not None:
            emit(stream, text.replace(marker, "").strip() if text.startswith(marker) else text)

    script = remote.facts_script(marker, probes)
    try:
        code = await conn.run(remote.invoke(script, privileged=False).command, on_line=collect, timeout=timeout, max_output=max_bytes)
    except StepTimeout as e:
        raise FactsFailed(f"gathering facts took longer than {timeout:.0f} s") from e
    except OutputTooLarge as e:
        raise FactsFailed(f"gathering facts printed more than {max_bytes} bytes; the server's tools answer strangely") from e
    if code != 0:
        raise FactsFailed(f"gathering facts exited with {code}", metadata={"exit_code": str(code)})
    return remote.parse_facts(lines, marker)


def facts_to_json(facts: Facts) -> dict[str, Any]:
    data = dataclasses.asdict(facts)
    data["os_release"] = dict(facts.os_release.fields)
    data["commands"] = sorted(facts.commands)
    data["probes"] = {name: dataclasses.asdict(result) for name, result in facts.probes.items()}
    return data


def facts_from_json(data: dict[str, Any]) -> Facts:
    values = dict(data)
    values["os_release"] = OsRelease.from_fields(values.get("os_release", {}))
    values["commands"] = frozenset(values.get("commands", ()))
    values["probes"] = {name: ProbeResult(**result) for name, result in values.get("probes", {}).items()}
    return Facts(**values)


@dataclass(frozen=True)
class StepResult:
    state: StepState
    message: str = ""
    exit_code: int | None = None


@dataclass
class RemoteProcess:
    """The process group of the step running now, to stop it on timeout or cancel."""

    pid: int | None = None
    privileged: bool = True


class StepRunner:
    """Runs one planned step in its own remote process group and says how it ended.

    A step that fails raises (StepFailed, StepTimeout, SudoFailed, ConnectionLost ...);
    a step cancelled while it runs has its remote process group stopped first.
    """

    def __init__(self, settings: Settings):
        self.settings = settings

    async def run(
        self, conn: ssh.Connection, step: StepPlan, facts: Facts, server: Server, timeout: float, emit: Emit,
        current: RemoteProcess, record_process: Callable[[int | None, str], Awaitable[None]], secrets: Sequence[str] = (),
    ) -> StepResult:
        """Run ``step``; ``record_process`` keeps its process group (for a Retry after a crash).

        ``secrets`` (proxy passwords) reach the commands on standard input, never in a command line.
        """
        marker = remote.new_marker()
        privileged = not step.as_user and not facts.is_root
        refs = remote.secret_refs(secrets)
        try:
            script = remote.step_script(step, marker, refs)
        except ValueError as e:
            raise DriverError(f"the plan of {step.name} would put a secret in a command line: {e}") from e
        invocation = remote.invoke(script, privileged=privileged, sudo_password=server.secrets.sudo_password,
                                   stdin=remote.secrets_input(marker, refs))
        output = remote.StepOutput(marker)
        pending: list[asyncio.Future[Any]] = []
        current.pid, current.privileged = None, privileged

        def on_line(stream: Stream, text: str) -> None:
            was = (output.started, output.command, output.diagnostics)
            line = output.feed(stream, text)
            if line is not None:
                emit(stream, line)
                return
            if not was[0] and output.started:
                current.pid = output.pid
                pending.append(asyncio.ensure_future(record_process(output.pid, marker)))
            if output.command != was[1] and 0 <= output.command < len(step.commands):
                emit(Stream.EVENT, f"$ {step.commands[output.command].display()}")
            if output.diagnostics and not was[2]:
                emit(Stream.EVENT, "command failed; diagnostics follow")

        if step.check:
            emit(Stream.EVENT, f"checking: {step.check_description or 'already satisfied?'}")
        try:
            code = await conn.run(invocation.command, on_line=on_line, stdin=invocation.stdin, timeout=timeout)
        except StepTimeout as e:
            await self.stop(conn, current, server, emit)
            command = _command_text(step, output.command)
            raise StepTimeout(f"{command} did not finish within {timeout:.0f} s and was killed", command=command) from e
        except asyncio.CancelledError:
            await asyncio.shield(self.stop(conn, current, server, emit))
            raise
        finally:
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if not output.started:
            if privileged:
                reason, why = remote.sudo_refusal(output.early_stderr)
                raise SudoFailed(
                    f"{why} (user {server.user!r}, exit {code}): " + " ".join(output.early_stderr)[:300],
                    metadata={"user": server.user, "exit_code": str(code)},
                    reason=reason,
                )
            raise StepFailed(f"the step's shell did not start (exit {code})", exit_code=code)
        if output.skipped:
            return StepResult(StepState.SKIPPED, f"already satisfied: {step.check_description}")
        if code == 0:
            return StepResult(StepState.SUCCEEDED, exit_code=0)
        command = _command_text(step, output.command)
        raise StepFailed(f"{command} exited with {code}", exit_code=code, command=command, metadata={"exit_code": str(code)})

    async def stop(self, conn: ssh.Connection, current: RemoteProcess, server: Server, emit: Emit) -> None:
        """Kill the step's remote process group: TERM, then KILL after a grace period."""
        pid = current.pid
        if pid is None or conn.is_closed():
            return
        for signal in ("TERM", "KILL"):
            invocation = remote.invoke(
                remote.kill_script(pid, signal), privileged=current.privileged, sudo_password=server.secrets.sudo_password
            )
            try:
                await conn.run(invocation.command, on_line=lambda *_: None, stdin=invocation.stdin, timeout=10)
            except ServerprepError as e:
                log.warning("could not stop remote process group %s: %s", pid, e)
                return
            if signal == "TERM":
                await asyncio.sleep(min(self.settings.kill_grace, 1.0))
        emit(Stream.EVENT, f"stopped the remote process group {pid}")

    async def stop_leftover(self, conn: ssh.Connection, facts: Facts, server: Server, pid: int, marker: str, emit: Emit) -> None:
        """Stop the process group of a step's previous attempt if it still runs (after a crash)."""
        invocation = remote.invoke(
            remote.leftover_script(pid, marker), privileged=not facts.is_root, sudo_password=server.secrets.sudo_password
        )

        def report(stream: Stream, text: str) -> None:
            if stream is Stream.STDOUT and text:
                emit(Stream.EVENT, text)

        try:
            await conn.run(invocation.command, on_line=report, stdin=invocation.stdin, timeout=30)
        except ServerprepError as e:
            log.warning("could not check for a leftover process group %s: %s", pid, e)


def _command_text(step: StepPlan, index: int) -> str:
    if 0 <= index < len(step.commands):
        return step.commands[index].display()
    return "the step's check"

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
from serverprep.service.errors import (
    ConnectionLost,
    DriverError,
    FactsFailed,
    OutputTooLarge,
    ServerprepError,
    StepFailed,
    StepTimeout,
    SudoFailed,
)
from serverprep.service.lines import per_line
from serverprep.service.settings import Settings

log = logging.getLogger(__name__)

#: Emits one line to the preparation's log: (stream, text). It returns what a reader of command
#: output awaits before it reads on (None: read on; see Journal.hold).
Emit = Callable[[Stream, str], Awaitable[None] | None]
#: Emits lines of command output, in order, as Emit would one by one (see Run.emit_lines).
EmitLines = Callable[[Stream, list[str]], Awaitable[None] | None]


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
        raise remote.facts_overflow(lines, marker, max_bytes) from e
    if code != 0:
        raise FactsFailed(f"gathering facts exited with {code}", metadata={"exit_code": str(code)})
    return remote.parse_facts(lines, marker)


def facts_to_json(facts: Facts) -> dict[str, Any]:
    data = dataclasses.asdict(facts)
    data["os_release"] = dict(facts.os_release.fields)
    data["commands"] = sorted(facts.commands)
    data["groups"] = sorted(facts.groups)
    data["probes"] = {name: dataclasses.asdict(result) for name, result in facts.probes.items()}
    return data


def facts_from_json(data: dict[str, Any]) -> Facts:
    values = dict(data)
    values["os_release"] = OsRelease.from_fields(values.get("os_release", {}))
    values["commands"] = frozenset(values.get("commands", ()))
    values["groups"] = frozenset(values.get("groups", ()))  # absent from facts stored before it existed
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


class Agent:
    """One remote shell (through sudo when the steps need root) that runs a preparation's steps.

    One session and one sudo for every step, instead of one each; each step still runs in its
    own process group, with its own markers, and is stopped alone on a timeout or a Cancel.
    """

    def __init__(self, session: ssh.Session, marker: str, refs: dict[str, str], privileged: bool):
        self.session = session
        self.marker = marker
        self.refs = refs
        self.privileged = privileged

    @classmethod
    async def start(cls, conn: ssh.Connection, *, privileged: bool, server: Server, secrets: Sequence[str], timeout: float) -> Agent:
        """Start the agent; sudo's refusal (or a shell that does not start) raises SudoFailed/StepFailed."""
        marker = remote.new_marker()
        refs = remote.secret_refs(secrets)
        invocation = remote.invoke_agent(remote.agent_script(marker, refs), privileged=privileged,
                                         sudo_password=server.secrets.sudo_password, stdin=remote.secrets_input(marker, refs) or
                                         f"{marker} secrets\n")
        session = await conn.open_session(invocation.command, invocation.stdin or "")
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        early: list[str] = []

        def on_line(stream: Stream, text: str) -> None:
            if stream is Stream.STDOUT and text.startswith(f"{marker} agent") and not started.done():
                started.set_result(None)
            elif stream is Stream.STDERR and len(early) < 20:
                early.append(text)

        session.on_lines = per_line(on_line)
        try:
            await asyncio.wait([started, session.ended], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await asyncio.shield(session.close(timeout=1))
            raise
        if started.done():
            return cls(session, marker, refs, privileged)
        ended = session.ended.done()
        code = await session.close(timeout=1)
        if not ended:  # it neither started nor ended: sudo (or the shell) did not answer in time, it refused nothing
            what = "sudo did not start" if privileged else "the server did not start"
            error = SudoFailed if privileged else StepFailed
            raise error(f"{what} the shell for the steps within {timeout:.0f} s (the server is slow or sudo waits on "
                        "something, a name lookup or a PAM module, say)" + (": " + " ".join(early)[:300] if early else ""),
                        metadata={"user": server.user})
        if privileged:
            reason, why = remote.sudo_refusal(early)
            raise SudoFailed(f"{why} (user {server.user!r}, exit {code}): " + " ".join(early)[:300],
                             metadata={"user": server.user, "exit_code": str(code)}, reason=reason)
        raise StepFailed(f"the shell on the server did not start (exit {code}): " + " ".join(early)[:300], exit_code=code)

    async def close(self) -> None:
        """End its input; an agent still busy with a step that was abandoned is cut off after 2 s."""
        await self.session.close(timeout=2)


class StepRunner:
    """Runs one planned step through an agent, in its own remote process group, and says how it ended.

    A step that fails raises (StepFailed, StepTimeout, ConnectionLost ...); a step cancelled
    while it runs has its remote process group stopped first.
    """

    def __init__(self, settings: Settings):
        self.settings = settings

    async def run(
        self, agent: Agent, step: StepPlan, server: Server, timeout: float, emit: Emit,
        current: RemoteProcess, record_process: Callable[[int | None, str], Awaitable[None]], emit_lines: EmitLines,
    ) -> StepResult:
        """Run ``step``; ``record_process`` keeps its process group (for a Retry after a crash).

        ``emit_lines`` takes the lines of command output that come in one read at once (the log's
        hot path); ``emit`` takes serverprep's own events, and the output of a read with a marker line.
        """
        marker = remote.new_marker()
        try:
            script = remote.step_script(step, marker, agent.refs, agent.marker)
        except ValueError as e:
            raise DriverError(f"the plan of {step.name} would put a secret in a command line: {e}") from e
        output = remote.StepOutput(marker)
        pending: list[asyncio.Future[Any]] = []
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        started = asyncio.Event()
        current.pid, current.privileged = None, agent.privileged

        def on_step_line(stream: Stream, text: str) -> Awaitable[None] | None:
            if stream is Stream.STDERR or marker not in text:  # a command's output (most lines)
                output.feed(stream, text)  # keeps a command's last stderr lines for its failure message
                return emit(stream, text)  # awaited by the reader when the log's backlog is full
            was = (output.started, output.command, output.diagnostics)
            line = output.feed(stream, text)
            if line is not None:
                return emit(stream, line)
            if not was[0] and output.started:
                current.pid = output.pid
                started.set()
                pending.append(asyncio.ensure_future(record_process(output.pid, marker)))
            if output.command != was[1] and 0 <= output.command < len(step.commands):
                emit(Stream.EVENT, f"$ {step.commands[output.command].display()}")
            if output.diagnostics and not was[2]:
                emit(Stream.EVENT, "command failed; diagnostics follow")
            return None

        agent_marker = agent.marker  # not the agent: it holds the session that holds these handlers

        def on_line(stream: Stream, text: str) -> Awaitable[None] | None:
            at = text.find(agent_marker) if stream is Stream.STDOUT else -1
            if at < 0:
                return on_step_line(stream, text)
            if at > 0:
                on_step_line(stream, text[:at])
            kind, _, arg = text[at + len(agent_marker):].strip().partition(" ")
            if kind == "done" and not done.done():
                done.set_result(int(arg) if arg.lstrip("-").isdigit() else 255)
            return None

        each_line = per_line(on_line)

        def on_lines(stream: Stream, texts: list[str]) -> Awaitable[None] | None:
            if stream is Stream.STDOUT:
                block = "\n".join(texts)
                if marker in block or agent_marker in block:
                    return each_line(stream, texts)  # serverprep's marker lines (a few per step)
            output.feed_output(stream, texts)
            return emit_lines(stream, texts)

        agent.session.on_lines = on_lines
        if step.check:
            emit(Stream.EVENT, f"checking: {step.check_description or 'already satisfied?'}")
        agent.session.write(remote.agent_request(agent.marker, script))
        conn = agent.session.conn
        try:
            await asyncio.wait([done, agent.session.ended], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done.done():
                if agent.session.ended.done():
                    raise ConnectionLost("the SSH session ended while the step ran" if not conn.is_closed()
                                         else conn.closed_while("the step ran"))
                await self.stop(conn, current, server, emit)
                command = _command_text(step, output.command)
                raise StepTimeout(f"{command} did not finish within {timeout:.0f} s and was killed", command=command)
        except asyncio.CancelledError:
            await asyncio.shield(self._stop_started(conn, current, server, emit, started, done))
            raise
        finally:
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        code = done.result()
        if not output.started:
            raise StepFailed(f"the step's shell did not start (exit {code})", exit_code=code)
        if output.skipped:
            return StepResult(StepState.SKIPPED, f"already satisfied: {step.check_description}")
        if code == 0:
            return StepResult(StepState.SUCCEEDED, exit_code=0)
        command = _command_text(step, output.command)
        why = " | ".join(output.command_stderr)[-600:]
        raise StepFailed(f"{command} exited with {code}" + (f": {why}" if why else ""), exit_code=code, command=command,
                         metadata={"exit_code": str(code)})

    async def _stop_started(self, conn: ssh.Connection, current: RemoteProcess, server: Server, emit: Emit,
                            started: asyncio.Event, done: asyncio.Future[int]) -> None:
        """Stop a step cancelled right after it was sent: wait (briefly) to learn its process group first."""
        if current.pid is None and not done.done():
            try:
                async with asyncio.timeout(self.settings.kill_grace):
                    await started.wait()
            except TimeoutError:
                log.warning("a cancelled step never said it started; its session is closed instead")
        await self.stop(conn, current, server, emit)

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

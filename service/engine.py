"""Runs preparations: facts → driver → plan → steps, with every transition stored."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from serverprep.drivers import DEFAULT_REPOSITORY, STEP_NAMES, DockerSource, Facts, OsRelease, Plan, PlanOptions, StepPlan
from serverprep.service import remote, ssh
from serverprep.service.domain import Options, Preparation, PrepState, Server, StepState, Stream
from serverprep.service.errors import (
    Cancelled,
    FactsFailed,
    Interrupted,
    NotCancellable,
    NotRetryable,
    ServerprepError,
    ServiceUnavailable,
    StepFailed,
    StepTimeout,
    SudoFailed,
)
from serverprep.service.logbus import Journal, LogBus
from serverprep.service.plugins import DriverRegistry
from serverprep.service.store import Store

log = logging.getLogger(__name__)

DETECT = STEP_NAMES[0]


@dataclass(frozen=True)
class EngineSettings:
    max_concurrent: int = 16
    connect_timeout: float = 15.0
    keepalive_interval: float = 10.0
    keepalive_count_max: int = 3
    #: Seconds between SIGTERM and SIGKILL for a remote command being stopped.
    kill_grace: float = 5.0
    #: This replica's name: unique among the services sharing a database, stable across restarts.
    replica: str = field(default_factory=socket.gethostname)
    #: Seconds between heartbeats; a replica silent for stale_after seconds is taken over.
    heartbeat_interval: float = 5.0
    stale_after: float = 30.0


def redactor(secrets: list[str]) -> Callable[[str], str]:
    """Replace every secret (of 4+ characters) in a text with ********."""
    values = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
    if not values:
        return lambda text: text

    def redact(text: str) -> str:
        for value in values:
            if value in text:
                text = text.replace(value, "********")
        return text

    return redact


def facts_to_json(facts: Facts) -> dict:
    data = dataclasses.asdict(facts)
    data["os_release"] = dict(facts.os_release.fields)
    data["commands"] = sorted(facts.commands)
    return data


def facts_from_json(data: dict) -> Facts:
    values = dict(data)
    values["os_release"] = OsRelease.from_fields(values.get("os_release", {}))
    values["commands"] = frozenset(values.get("commands", ()))
    return Facts(**values)


def plan_options(options: Options, user: str) -> PlanOptions:
    return PlanOptions(
        docker_source=DockerSource(options.docker_source),
        user=user,
        repository_base=options.repository_url or DEFAULT_REPOSITORY,
        docker_version=options.docker_version,
        channel=options.channel or "stable",
        http_proxy=options.http_proxy,
        https_proxy=options.https_proxy,
        no_proxy=options.no_proxy,
    )


def os_summary(plan: Plan) -> dict[str, str]:
    osr = plan.os_release
    return {
        "id": osr.id,
        "version_id": osr.version_id,
        "pretty_name": osr.describe(),
        "codename": plan.codename,
        "architecture": plan.architecture,
        "driver": plan.driver,
    }


class _Run:
    """The state of one preparation while it runs."""

    def __init__(self, prep: Preparation, server: Server, journal: Journal):
        self.prep = prep
        self.server = server
        self.journal = journal
        self.conn: ssh.Connection | None = None
        self.facts: Facts | None = None
        self.current_step = ""
        self.remote_pid: int | None = None
        self.remote_privileged = True
        self.stop_reason: type[ServerprepError] | None = None
        self.started = False


class Engine:
    def __init__(self, store: Store, drivers: DriverRegistry, bus: LogBus, settings: EngineSettings | None = None):
        self.store = store
        self.drivers = drivers
        self.bus = bus
        self.settings = settings or EngineSettings()
        self._slots = asyncio.Semaphore(self.settings.max_concurrent)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runs: dict[str, _Run] = {}
        self._accepting = True

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Recover what this replica left behind, then watch over the others.

        RUNNING preparations owned by this replica's name were interrupted by its previous
        process: they become FAILED/INTERRUPTED. Its PENDING ones start. Other replicas'
        preparations are left alone unless their heartbeat stops (see _watch).
        """
        me = self.settings.replica
        for prep_id in await self.store.run(self.store.owned, me, PrepState.RUNNING):
            await self._mark_interrupted(prep_id, me, "serverprep stopped while this preparation ran; Retry resumes it")
        for prep_id in await self.store.run(self.store.owned, me, PrepState.PENDING):
            self._launch(await self.store.run(self.store.get_preparation, prep_id))
        self._watcher = asyncio.create_task(self._watch(), name="replica-watch")

    async def _mark_interrupted(self, prep_id: str, expected_owner: str, message: str) -> None:
        """Record that a RUNNING preparation's process is gone, unless another replica already did."""
        if not await self.store.run(self.store.take_over_running, prep_id, self.settings.replica, expected_owner):
            return
        prep = await self.store.run(self.store.get_preparation, prep_id)
        journal = self.bus.open(prep_id, await self.store.run(self.store.max_seq, prep_id), lambda t: t)
        running = next((s.name for s in prep.steps if s.state is StepState.RUNNING), "")
        now = time.time()
        if running:
            journal.emit(running, Stream.EVENT, f"{running} interrupted", step_state=StepState.FAILED)
            await journal.flush(step_update=(running, {"state": StepState.FAILED, "message": message, "finished_at": now}))
        journal.emit("", Stream.EVENT, f"preparation FAILED: INTERRUPTED: {message}", prep_state=PrepState.FAILED)
        await journal.flush(
            prep_update={"state": PrepState.FAILED, "reason": Interrupted.reason, "message": message, "failed_step": running, "finished_at": now}
        )
        await self.bus.close(prep_id)

    async def _watch(self) -> None:
        """Heartbeat for our preparations; take over what silent replicas left; obey remote Cancels."""
        s = self.settings
        while True:
            try:
                for prep_id in await self.store.run(self.store.heartbeat, s.replica):
                    if prep_id in self._tasks and prep_id in self._runs:
                        self._runs[prep_id].stop_reason = Cancelled
                        self._tasks[prep_id].cancel()
                if self._accepting:
                    stale_before = time.time() - s.stale_after
                    for prep_id, state in await self.store.run(self.store.stale, stale_before, s.replica):
                        prep = await self.store.run(self.store.get_preparation, prep_id)
                        if state is PrepState.RUNNING:
                            log.warning("replica %s stopped answering; preparation %s was interrupted", prep.owner, prep_id)
                            await self._mark_interrupted(prep_id, prep.owner, f"replica {prep.owner!r} stopped while it ran this preparation; Retry resumes it")
                        elif prep_id not in self._tasks and await self.store.run(self.store.claim, prep_id, s.replica, stale_before):
                            self._launch(prep)
            except ServerprepError as e:
                log.error("replica heartbeat failed: %s", e)
            except Exception:
                log.exception("replica heartbeat failed")
            await asyncio.sleep(s.heartbeat_interval)

    async def shutdown(self, grace: float) -> None:
        """Stop taking work; give running preparations ``grace`` seconds, then interrupt them."""
        self._accepting = False
        waiting = [pid for pid, run in self._runs.items() if not run.started]
        for prep_id in waiting:  # not started: they stay PENDING and start after a restart
            self._interrupt(prep_id)
        running = [t for pid, t in self._tasks.items() if pid not in waiting]
        if running:
            _, still = await asyncio.wait(running, timeout=grace)
            for prep_id, task in list(self._tasks.items()):
                if task in still:
                    self._interrupt(prep_id)
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=self.settings.kill_grace + 10)
        watcher = getattr(self, "_watcher", None)
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def _interrupt(self, prep_id: str) -> None:
        run = self._runs.get(prep_id)
        if run:
            run.stop_reason = Interrupted
        task = self._tasks.get(prep_id)
        if task:
            task.cancel()

    # -- requests -----------------------------------------------------------

    async def prepare(self, server_name: str, options: Options, request_id: str = "") -> tuple[Preparation, bool]:
        self._require_accepting()
        prep, created = await self.store.run(
            self.store.create_preparation, server_name, options, request_id, STEP_NAMES, self.settings.replica
        )
        if created:
            self._launch(prep)
        return prep, created

    async def retry(self, server_name: str, prep_id: str = "") -> Preparation:
        self._require_accepting()
        prep = await self.store.run(self.store.find_preparation, server_name, prep_id)
        if prep.state not in (PrepState.FAILED, PrepState.CANCELLED):
            raise NotRetryable(
                f"preparation {prep.id} is {prep.state.value}: only FAILED or CANCELLED ones can be retried",
                metadata={"preparation_id": prep.id, "state": prep.state.value},
            )
        prep = await self.store.run(self.store.reset_for_retry, prep.id, self.settings.replica)
        self._launch(prep)
        return prep

    async def cancel(self, server_name: str, prep_id: str = "") -> Preparation:
        prep = await self.store.run(self.store.find_preparation, server_name, prep_id)
        if not prep.state.active:
            raise NotCancellable(
                f"preparation {prep.id} is {prep.state.value}: only PENDING or RUNNING ones can be cancelled",
                metadata={"preparation_id": prep.id, "state": prep.state.value},
            )
        task = self._tasks.get(prep.id)
        if task is not None:
            run = self._runs.get(prep.id)
            if run:
                run.stop_reason = Cancelled
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
        elif not await self.store.run(self.store.cancel_pending, prep.id, "cancelled before it started"):
            # Another replica runs it: ask it (through the database) and wait for it to stop.
            await self.store.run(self.store.request_cancel, prep.id)
            deadline = time.monotonic() + self.settings.heartbeat_interval * 2 + self.settings.kill_grace + 10
            while time.monotonic() < deadline:
                if not (await self.store.run(self.store.get_preparation, prep.id)).state.active:
                    break
                await asyncio.sleep(0.2)
        return await self.store.run(self.store.get_preparation, prep.id)

    def _require_accepting(self) -> None:
        if not self._accepting:
            raise ServiceUnavailable("serverprep is shutting down and takes no new work")

    def _launch(self, prep: Preparation) -> None:
        task = asyncio.create_task(self._run(prep), name=f"prepare-{prep.id}")
        self._tasks[prep.id] = task
        task.add_done_callback(lambda _t, pid=prep.id: self._tasks.pop(pid, None))

    # -- running ------------------------------------------------------------

    async def _run(self, prep: Preparation) -> None:
        server = await self.store.run(self.store.get_server, prep.server)
        journal = self.bus.open(prep.id, prep.last_seq, redactor(server.secrets.values() + prep.options.secrets()))
        run = _Run(prep, server, journal)
        self._runs[prep.id] = run
        ended = True
        try:
            if self._slots.locked():
                journal.emit("", Stream.EVENT, f"waiting for a free slot ({self.settings.max_concurrent} preparations run at once)")
            async with self._slots:
                if not self._accepting:
                    run.stop_reason = Interrupted
                    raise asyncio.CancelledError
                run.started = True
                await self._execute(run)
        except asyncio.CancelledError:
            # Cancelled while waiting for a slot, or _execute re-raised after recording.
            state = (await self.store.run(self.store.get_preparation, prep.id)).state
            if state is PrepState.PENDING and run.stop_reason is Interrupted:
                journal.emit("", Stream.EVENT, "serverprep is stopping; this preparation stays PENDING and starts when it is back")
                await journal.flush()
                ended = False
            elif state.active:
                await self._finish(run, run.stop_reason or Cancelled, "stopped before it started")
        except Exception:  # never leave a preparation RUNNING because of a bug
            log.exception("preparation %s crashed", prep.id)
            with contextlib.suppress(Exception):
                await self._finish(run, ServerprepError, "internal error in serverprep; see the service log", reason="INTERNAL")
        finally:
            self._runs.pop(prep.id, None)
            if run.conn is not None:
                await run.conn.close()
            await self.bus.close(prep.id, ended=ended)

    async def _execute(self, run: _Run) -> None:
        prep, journal = run.prep, run.journal
        if not await self.store.run(self.store.start_running, prep.id, self.settings.replica, prep.started_at or time.time()):
            return  # cancelled (or taken) meanwhile by another replica
        journal.emit("", Stream.EVENT, f"preparation RUNNING (attempt {prep.attempt}) on {self.settings.replica}", prep_state=PrepState.RUNNING)
        await journal.flush()
        try:
            facts = None
            if prep.step(DETECT).state.done:
                facts = facts_from_json(prep.facts)
            first = next((s.name for s in prep.steps if not s.state.done), None)
            if first is None:
                await self._finish(run, None, "")
                return
            await self._begin_step(run, first)
            run.conn = await self._connect(run)
            if facts is None:
                facts, plan = await self._detect(run)
            else:
                plan = self._plan(run, facts)
            for step in plan.steps:
                if prep.step(step.name).state.done:
                    continue
                if run.current_step != step.name:
                    await self._begin_step(run, step.name)
                await self._run_step(run, facts, step)
        except asyncio.CancelledError:
            reason = run.stop_reason or Cancelled
            await self._fail(run, reason(f"{'cancelled' if reason is Cancelled else 'interrupted by shutdown'}"))
            raise
        except ServerprepError as e:
            await self._fail(run, e)
            return
        await self._finish(run, None, "")

    def _target(self, server: Server) -> ssh.Target:
        s = self.settings
        return ssh.Target(
            host=server.host,
            port=server.port,
            user=server.user,
            secrets=server.secrets,
            host_key=server.host_key,
            connect_timeout=s.connect_timeout,
            keepalive_interval=s.keepalive_interval,
            keepalive_count_max=s.keepalive_count_max,
        )

    async def _open(self, server: Server) -> ssh.Connection:
        """Connect; on the first connection of a trust-on-first-use server, pin its key."""
        conn = await ssh.connect(self._target(server))
        if not server.host_key:
            await self.store.run(self.store.pin_host_key, server.id, conn.host_key)
        return conn

    async def _connect(self, run: _Run, *, as_user: bool = False) -> ssh.Connection:
        server = run.server
        what = "a new SSH session" if as_user else "SSH"
        run.journal.emit(run.current_step, Stream.EVENT, f"connecting over {what} to {server.user}@{server.host}:{server.port}")
        conn = await self._open(server)
        if not server.host_key:
            run.server = dataclasses.replace(server, host_key=conn.host_key)
            run.journal.emit(run.current_step, Stream.EVENT, f"host key pinned on first connection: {ssh.fingerprint(conn.host_key)}")
        return conn

    async def _gather_facts(self, conn: ssh.Connection, show: Callable[[Stream, str], None] | None = None) -> Facts:
        """One read-only round trip, as the login user."""
        marker = remote.new_marker()
        lines: list[str] = []

        def collect(stream: Stream, text: str) -> None:
            if stream is Stream.STDOUT:
                lines.append(text)
            if show is not None:
                show(stream, text.replace(marker, "").strip() if text.startswith(marker) else text)

        code = await conn.run(remote.invoke(remote.facts_script(marker), privileged=False).command, on_line=collect, timeout=60)
        if code != 0:
            raise FactsFailed(f"gathering facts exited with {code}", metadata={"exit_code": str(code)})
        return remote.parse_facts(lines, marker)

    async def _detect(self, run: _Run) -> tuple[Facts, Plan]:
        assert run.conn is not None
        facts = await self._gather_facts(run.conn, lambda stream, text: run.journal.emit(DETECT, stream, text))
        plan = self._plan(run, facts)
        run.prep.os, run.prep.facts = os_summary(plan), facts_to_json(facts)
        await self.store.run(self.store.update_preparation, run.prep.id, os=run.prep.os, facts=run.prep.facts)
        os_info = run.prep.os
        summary = (
            f"detected {os_info['pretty_name']} [{os_info['codename'] or 'no codename'}, {os_info['architecture']}], "
            f"user {facts.user} (uid {facts.uid}), driver {plan.driver}"
        )
        await self._end_step(run, DETECT, StepState.SUCCEEDED, summary)
        return facts, plan

    def _plan(self, run: _Run, facts: Facts) -> Plan:
        return self.drivers.plan(facts, plan_options(run.prep.options, run.server.user))

    async def plan(self, server_name: str, options: Options) -> Plan:
        """Connect, gather facts read-only, and return the plan Prepare would follow."""
        server = await self.store.run(self.store.get_server, server_name)
        conn = await self._open(server)
        try:
            return self.drivers.plan(await self._gather_facts(conn), plan_options(options, server.user))
        finally:
            await conn.close()

    async def _begin_step(self, run: _Run, name: str) -> None:
        run.current_step = name
        run.journal.emit(name, Stream.EVENT, f"{name} RUNNING", step_state=StepState.RUNNING)
        await run.journal.flush(
            step_update=(name, {"state": StepState.RUNNING, "started_at": time.time(), "finished_at": None, "exit_code": None, "message": "", "new_attempt": True})
        )
        run.prep.step(name).state = StepState.RUNNING

    async def _end_step(self, run: _Run, name: str, state: StepState, message: str, exit_code: int | None = None) -> None:
        text = f"{name} {state.value}" + (f": {message}" if message else "")
        run.journal.emit(name, Stream.EVENT, text, step_state=state)
        await run.journal.flush(
            step_update=(name, {"state": state, "finished_at": time.time(), "message": run.journal.redact(message), "exit_code": exit_code})
        )
        run.prep.step(name).state = state
        run.current_step = ""

    async def _run_step(self, run: _Run, facts: Facts, step: StepPlan) -> None:
        record = run.prep.step(step.name)
        if record.remote_pid and record.remote_marker and run.conn is not None:
            await self._stop_leftover(run, facts, step.name, record.remote_pid, record.remote_marker)
        if step.skip_reason:
            await self._end_step(run, step.name, StepState.SKIPPED, step.skip_reason)
            return
        if not step.commands and not step.check:
            await self._end_step(run, step.name, StepState.SKIPPED, "nothing to do")
            return
        conn = run.conn
        fresh = None
        if step.as_user:
            fresh = conn = await self._connect(run, as_user=True)
        assert conn is not None
        marker = remote.new_marker()
        privileged = not step.as_user and not facts.is_root
        invocation = remote.invoke(
            remote.step_script(step, marker), privileged=privileged, sudo_password=run.server.secrets.sudo_password
        )
        state = {"started": False, "skipped": False, "command": -1}
        early_stderr: list[str] = []
        pending_writes: list[asyncio.Future[None]] = []
        journal = run.journal
        run.remote_pid, run.remote_privileged = None, privileged

        def on_line(stream: Stream, text: str) -> None:
            if stream is Stream.STDOUT and text.startswith(marker):
                kind, _, arg = text[len(marker) :].strip().partition(" ")
                if kind == "start":
                    state["started"] = True
                    run.remote_pid = int(arg) if arg.isdigit() else None
                    # Kept so that a Retry after a crash can stop what this attempt leaves running.
                    pending_writes.append(asyncio.ensure_future(self.store.run(
                        self.store.update_step, run.prep.id, step.name, remote_pid=run.remote_pid, remote_marker=marker
                    )))
                elif kind == "skip":
                    state["skipped"] = True
                elif kind == "run" and arg.isdigit() and int(arg) < len(step.commands):
                    state["command"] = int(arg)
                    journal.emit(step.name, Stream.EVENT, f"$ {step.commands[int(arg)].display()}")
                elif kind == "diagnostics":
                    journal.emit(step.name, Stream.EVENT, "command failed; diagnostics follow")
                return
            if not state["started"] and stream is Stream.STDERR and len(early_stderr) < 20:
                early_stderr.append(text)
            journal.emit(step.name, stream, text)

        timeout = run.prep.options.step_timeout
        try:
            if step.check:
                journal.emit(step.name, Stream.EVENT, f"checking: {step.check_description or 'already satisfied?'}")
            try:
                code = await conn.run(invocation.command, on_line=on_line, stdin=invocation.stdin, timeout=timeout)
            except StepTimeout as e:
                await self._stop_remote(run, conn)
                raise StepTimeout(
                    f"{self._command_text(step, state['command'])} did not finish within {timeout:.0f} s and was killed",
                    command=self._command_text(step, state["command"]),
                ) from e
            except asyncio.CancelledError:
                await asyncio.shield(self._stop_remote(run, conn))
                raise
        finally:
            if fresh is not None:
                await fresh.close()
            if pending_writes:
                await asyncio.gather(*pending_writes, return_exceptions=True)
        if not state["started"]:
            if privileged:
                reason, why = remote.sudo_refusal(early_stderr)
                raise SudoFailed(
                    f"{why} (user {run.server.user!r}, exit {code}): " + run.journal.redact(" ".join(early_stderr)[:300]),
                    metadata={"user": run.server.user, "exit_code": str(code)},
                    reason=reason,
                )
            raise StepFailed(f"the step's shell did not start (exit {code})", exit_code=code)
        if state["skipped"]:
            await self._end_step(run, step.name, StepState.SKIPPED, f"already satisfied: {step.check_description}")
        elif code == 0:
            await self._end_step(run, step.name, StepState.SUCCEEDED, "", exit_code=0)
        else:
            command = self._command_text(step, state["command"])
            raise StepFailed(f"{command} exited with {code}", exit_code=code, command=command, metadata={"exit_code": str(code)})

    @staticmethod
    def _command_text(step: StepPlan, index: int) -> str:
        if 0 <= index < len(step.commands):
            return step.commands[index].display()
        return "the step's check"

    async def _stop_leftover(self, run: _Run, facts: Facts, step: str, pid: int, marker: str) -> None:
        """Stop the process group of this step's previous attempt if it still runs (after a crash)."""
        invocation = remote.invoke(
            remote.leftover_script(pid, marker), privileged=not facts.is_root, sudo_password=run.server.secrets.sudo_password
        )
        assert run.conn is not None

        def report(stream: Stream, text: str) -> None:
            if stream is Stream.STDOUT and text:
                run.journal.emit(step, Stream.EVENT, text)

        try:
            await run.conn.run(invocation.command, on_line=report, stdin=invocation.stdin, timeout=30)
        except ServerprepError as e:
            log.warning("could not check for a leftover process group %s: %s", pid, e)

    async def _stop_remote(self, run: _Run, conn: ssh.Connection) -> None:
        """Kill the step's remote process group: TERM, then KILL after a grace period."""
        pid = run.remote_pid
        if pid is None or conn.is_closed():
            return
        for signal in ("TERM", "KILL"):
            invocation = remote.invoke(
                remote.kill_script(pid, signal), privileged=run.remote_privileged, sudo_password=run.server.secrets.sudo_password
            )
            try:
                await conn.run(invocation.command, on_line=lambda *_: None, stdin=invocation.stdin, timeout=10)
            except ServerprepError as e:
                log.warning("could not stop remote process group %s: %s", pid, e)
                return
            if signal == "TERM":
                await asyncio.sleep(min(self.settings.kill_grace, 1.0))
        run.journal.emit(run.current_step, Stream.EVENT, f"stopped the remote process group {pid}")

    async def _fail(self, run: _Run, error: ServerprepError) -> None:
        step = run.current_step
        if step:
            exit_code = getattr(error, "exit_code", None)
            await self._end_step(run, step, StepState.FAILED, f"{error.reason}: {error.message}", exit_code=exit_code)
        state = PrepState.CANCELLED if isinstance(error, Cancelled) else PrepState.FAILED
        await self._finish(run, type(error), error.message, reason=error.reason, step=step, state=state)

    async def _finish(
        self,
        run: _Run,
        error: type[ServerprepError] | None,
        message: str,
        *,
        reason: str = "",
        step: str = "",
        state: PrepState | None = None,
    ) -> None:
        if error is None:
            state, text = PrepState.SUCCEEDED, "preparation SUCCEEDED"
        else:
            reason = reason or error.reason
            state = state or (PrepState.CANCELLED if error is Cancelled else PrepState.FAILED)
            text = f"preparation {state.value}: {reason}: {message}"
        message = run.journal.redact(message)
        run.journal.emit("", Stream.EVENT, run.journal.redact(text), prep_state=state)
        await run.journal.flush(
            prep_update={"state": state, "reason": reason, "message": message, "failed_step": step, "finished_at": time.time()}
        )
        run.prep.state = state

"""Runs one preparation: facts → driver → plan → steps, each transition stored before it is reported."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from serverprep.drivers import DEFAULT_REPOSITORY, STEP_NAMES, DockerSource, Facts, Plan, PlanOptions, StepPlan
from serverprep.drivers.common import DOCKER_GROUP
from serverprep.service import metrics, ssh
from serverprep.service.aio import checkpoint
from serverprep.service.domain import Options, Preparation, PrepChange, PrepState, Server, StepChange, StepState, Stream
from serverprep.service.errors import Cancelled, ServerprepError
from serverprep.service.journal import Journal
from serverprep.service.plugins import DriverRegistry
from serverprep.service.settings import Settings
from serverprep.service.steps import (
    Agent,
    RemoteProcess,
    StepResult,
    StepRunner,
    facts_from_json,
    facts_to_json,
    gather_facts,
    target,
)
from serverprep.service.store import Store

DETECT = STEP_NAMES[0]
log = logging.getLogger("serverprep.preparations")


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


@dataclass
class Run:
    """One preparation while it runs in this process."""

    prep: Preparation
    server: Server
    journal: Journal
    conn: ssh.Connection | None = None
    #: The shell on ``conn`` that runs the steps needing root (or all of them for root), once started.
    agent: Agent | None = None
    current_step: str = ""
    remote: RemoteProcess = field(default_factory=RemoteProcess)
    #: Why the task is being cancelled: Cancelled (a Cancel) or Interrupted (shutdown).
    stop_reason: type[ServerprepError] | None = None
    #: Whether it got a slot and began (a preparation stopped before that stays PENDING on shutdown).
    started: bool = False
    #: When the current step began (monotonic clock), for its duration.
    step_started: float = 0.0

    def emit(self, stream: Stream, text: str, step: str | None = None) -> Awaitable[None] | None:
        """Log a line; what it returns (when the log's backlog is full) a reader of output awaits."""
        self.journal.emit(self.current_step if step is None else step, stream, text)
        return self.journal.hold()

    def emit_lines(self, stream: Stream, texts: list[str]) -> Awaitable[None] | None:
        """Log lines of command output as :meth:`emit` would one by one (the hot path), holding
        where the log's backlog fills."""
        taken = self.journal.emit_lines(self.current_step, stream, texts)
        if taken == len(texts):
            return self.journal.hold()
        return self._emit_rest(self.current_step, stream, texts[taken:])

    async def _emit_rest(self, step: str, stream: Stream, texts: list[str]) -> None:
        while True:
            hold = self.journal.hold()
            if hold is not None:
                await hold
            if not texts:
                return
            taken = self.journal.emit_lines(step, stream, texts)
            texts = texts[taken:]


class PreparationRunner:
    """Executes a preparation from its first step not yet done to its end."""

    def __init__(self, store: Store, drivers: DriverRegistry, settings: Settings):
        self.store = store
        self.drivers = drivers
        self.settings = settings
        self.steps = StepRunner(settings)
        self._connecting = asyncio.Semaphore(settings.max_connecting)

    async def execute(self, run: Run) -> None:
        """Run the preparation; every way out records a final state (a cancellation re-raises after)."""
        prep = run.prep
        if not await self.store.start_running(prep.id, self.settings.replica, prep.started_at or time.time()):
            return  # cancelled (or taken) meanwhile by another replica
        run.journal.emit("", Stream.EVENT, f"preparation RUNNING (attempt {prep.attempt}) on {self.settings.replica}",
                         prep_state=PrepState.RUNNING)
        await run.journal.flush()
        log.info("preparation %s of %s RUNNING (attempt %d)", prep.id, prep.server, prep.attempt,
                 extra={"preparation_id": prep.id, "server": prep.server, "state": "RUNNING", "attempt": prep.attempt})
        try:
            await self._steps(run)
        except asyncio.CancelledError:
            reason = run.stop_reason or Cancelled
            await self.fail(run, reason("cancelled" if reason is Cancelled else "interrupted by shutdown"))
            raise
        except ServerprepError as e:
            await self.fail(run, e)
            return
        await self.finish(run, PrepState.SUCCEEDED)

    async def _steps(self, run: Run) -> None:
        prep = run.prep
        first = next((s.name for s in prep.steps if not s.state.done), None)
        if first is None:
            return
        facts = facts_from_json(prep.facts) if prep.step(DETECT).state.done else None
        await self.begin_step(run, first)
        run.conn = await self.connect(run)
        if facts is None:
            facts, plan = await self._detect(run)
        else:
            plan = self.plan(run, facts)
        for step in plan.steps:
            if prep.step(step.name).state.done:
                continue
            if run.current_step != step.name:
                await self.begin_step(run, step.name)
            await self._run_step(run, facts, step)

    async def connect(self, run: Run, *, as_user: bool = False) -> ssh.Connection:
        server = run.server
        what = "a new SSH session" if as_user else "SSH"
        run.emit(Stream.EVENT, f"connecting over {what} to {server.user}@{server.host}:{server.port}")
        conn = await self.open(server)
        if not server.host_key:
            run.server = dataclasses.replace(server, host_key=conn.host_key)
            run.emit(Stream.EVENT, f"host key pinned on first connection: {run.server.host_key_fingerprint}")
        return conn

    async def open(self, server: Server) -> ssh.Connection:
        """Connect; on the first connection of a trust-on-first-use server, pin its key."""
        async with self._connecting:  # a thousand key exchanges at once would each get a thousandth of the CPU
            started = time.perf_counter()
            try:
                conn = await ssh.connect(target(server, self.settings))
            except ServerprepError as e:
                metrics.SSH_CONNECT_FAILURES.labels(e.reason).inc()
                raise
            metrics.SSH_CONNECT_SECONDS.observe(time.perf_counter() - started)
        if not server.host_key:
            await self.store.pin_host_key(server.id, conn.host_key)
        return conn

    async def facts(self, conn: ssh.Connection, run: Run | None = None) -> Facts:
        emit = None if run is None else (lambda stream, text: run.emit(stream, text, DETECT))
        return await gather_facts(conn, self.drivers.probes, self.settings.facts_timeout, self.settings.facts_max_bytes, emit)

    async def _detect(self, run: Run) -> tuple[Facts, Plan]:
        assert run.conn is not None
        facts = await self.facts(run.conn, run)
        plan = self.plan(run, facts)
        run.prep.os, run.prep.facts = plan.operating_system(), facts_to_json(facts)
        await self.store.record_facts(run.prep.id, run.prep.os, run.prep.facts)
        os_info = run.prep.os
        summary = (
            f"detected {os_info['pretty_name']} [{os_info['codename'] or 'no codename'}, {os_info['architecture']}], "
            f"user {facts.user} (uid {facts.uid}), driver {plan.driver}"
        )
        await self.end_step(run, DETECT, StepState.SUCCEEDED, summary)
        return facts, plan

    def plan(self, run: Run, facts: Facts) -> Plan:
        return self.drivers.plan(facts, plan_options(run.prep.options, run.server.user))

    async def _run_step(self, run: Run, facts: Facts, step: StepPlan) -> None:
        record = run.prep.step(step.name)
        emit = run.emit
        if record.remote_pid and record.remote_marker and run.conn is not None:
            await self.steps.stop_leftover(run.conn, facts, run.server, record.remote_pid, record.remote_marker, emit)
        if step.skip_reason:
            await self.end_step(run, step.name, StepState.SKIPPED, step.skip_reason)
            return
        if not step.commands and not step.check:
            await self.end_step(run, step.name, StepState.SKIPPED, "nothing to do")
            return

        async def keep_process(pid: int | None, marker: str) -> None:
            await self.store.record_remote_process(run.prep.id, step.name, pid, marker)

        timeout = run.prep.options.step_timeout

        async def as_user(conn: ssh.Connection) -> StepResult:
            agent = await Agent.start(conn, privileged=False, server=run.server, secrets=run.prep.options.secrets(),
                                      timeout=self.settings.connect_timeout)
            try:
                return await self.steps.run(agent, step, run.server, timeout, emit, run.remote, keep_process, run.emit_lines)
            finally:
                await agent.close()

        if step.as_user and run.conn is not None and (facts.is_root or DOCKER_GROUP in facts.groups):
            # This connection's login already has what a new login would bring (root needs no
            # group): the step runs here, as the user, in a session of its own.
            emit(Stream.EVENT, f"running as {facts.user or run.server.user} on this connection: "
                               + ("root needs no docker group" if facts.is_root else "its login is in the docker group already"))
            result = await as_user(run.conn)
        elif step.as_user:
            # A new connection, as the login user would open one, so that new group memberships apply.
            fresh = await self.connect(run, as_user=True)
            try:
                result = await as_user(fresh)
            finally:
                await fresh.close()
        else:
            assert run.conn is not None
            if run.agent is None:
                run.agent = await Agent.start(run.conn, privileged=not facts.is_root, server=run.server,
                                              secrets=run.prep.options.secrets(), timeout=self.settings.connect_timeout)
            result = await self.steps.run(run.agent, step, run.server, timeout, emit, run.remote, keep_process, run.emit_lines)
        await self.end_step(run, step.name, result.state, result.message, result.exit_code)

    async def begin_step(self, run: Run, name: str) -> None:
        checkpoint()
        run.current_step = name
        run.step_started = time.monotonic()
        await run.journal.announce(f"{name} RUNNING", StepChange(name, StepState.RUNNING, time.time()))
        run.prep.step(name).state = StepState.RUNNING

    async def end_step(self, run: Run, name: str, state: StepState, message: str, exit_code: int | None = None) -> None:
        message = run.journal.redact(message)
        run.journal.report_dropped(name)
        await run.journal.announce(f"{name} {state.value}" + (f": {message}" if message else ""),
                                   StepChange(name, state, time.time(), message, exit_code))
        run.prep.step(name).state = state
        run.current_step = ""
        took = time.monotonic() - run.step_started
        metrics.STEP_SECONDS.labels(name, state.value).observe(took)
        log.log(logging.WARNING if state is StepState.FAILED else logging.INFO, "preparation %s of %s: step %s %s in %.1f s%s",
                run.prep.id, run.prep.server, name, state.value, took, f": {message}" if state is StepState.FAILED else "",
                extra={"preparation_id": run.prep.id, "server": run.prep.server, "step": name, "state": state.value,
                       "duration_s": round(took, 3), "exit_code": exit_code})

    async def fail(self, run: Run, error: ServerprepError) -> None:
        step = run.current_step
        cancelled = isinstance(error, Cancelled)
        if step:
            if cancelled:
                await self.end_step(run, step, StepState.CANCELLED, error.message)
            else:
                await self.end_step(run, step, StepState.FAILED, f"{error.reason}: {error.message}", getattr(error, "exit_code", None))
        await self.finish(run, PrepState.CANCELLED if cancelled else PrepState.FAILED, error.reason, error.message, step)

    async def finish(self, run: Run, state: PrepState, reason: str = "", message: str = "", step: str = "") -> None:
        redact = run.journal.redact
        message = redact(message)
        text = "preparation SUCCEEDED" if state is PrepState.SUCCEEDED else f"preparation {state.value}: {reason}: {message}"
        await run.journal.announce(text, PrepChange(state, time.time(), reason, message, step))
        run.prep.state = state
        driver = run.prep.os.get("driver", "")
        metrics.PREPARATIONS.labels(state.value, reason, driver).inc()
        log.log(logging.INFO if state is PrepState.SUCCEEDED else logging.WARNING, "preparation %s of %s %s%s",
                run.prep.id, run.prep.server, state.value, f": {reason}: {message}" if reason else "",
                extra={"preparation_id": run.prep.id, "server": run.prep.server, "state": state.value, "reason": reason,
                       "step": step, "driver": driver})



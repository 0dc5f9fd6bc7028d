"""Queries on preparations and their steps."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

import peewee

from serverprep.service.domain import Options, Preparation, PrepChange, PrepState, StepChange, StepRecord, StepState
from serverprep.service.errors import NotRetryable, PreparationActive, PreparationNotFound, RequestIdReused
from serverprep.service.store import rows
from serverprep.service.store.compiled import Compiled
from serverprep.service.store.database import Session, bare, urgent, writes
from serverprep.service.store.models import PreparationRow, ServerRow, StepRow
from serverprep.service.store.servers import active_preparation_id, server_id

# The writes of every preparation, built once (compiled.py says why).
_NEW = Compiled(lambda v: PreparationRow.insert(
    id=v.id, server=v.server, state=PrepState.PENDING.value, options=v.options, request_id=v.request_id, created_at=v.now,
    owner=v.owner, heartbeat_at=v.now))
_STEPS: dict[int, Compiled] = {}
_BY_REQUEST_ID = Compiled(lambda v: PreparationRow.select(PreparationRow.id)
                          .where(PreparationRow.server == v.server, PreparationRow.request_id == v.request_id))
_START = Compiled(lambda v: PreparationRow.update(
    state=PrepState.RUNNING.value, started_at=v.started_at, finished_at=None, heartbeat_at=v.now
).where(PreparationRow.id == v.id, PreparationRow.state == PrepState.PENDING.value, PreparationRow.owner == v.owner))
_FACTS = Compiled(lambda v: PreparationRow.update(os=v.os, facts=v.facts).where(PreparationRow.id == v.id))
_REMOTE = Compiled(lambda v: StepRow.update(remote_pid=v.pid, remote_marker=v.marker)
                   .where(StepRow.preparation == v.prep, StepRow.name == v.step))
_STEP_BEGINS = Compiled(lambda v: StepRow.update({
    StepRow.state: v.state, StepRow.started_at: v.at, StepRow.finished_at: None, StepRow.exit_code: None, StepRow.message: "",
    StepRow.attempts: StepRow.attempts + 1,
}).where(StepRow.preparation == v.prep, StepRow.name == v.name))
_STEP_ENDS = Compiled(lambda v: StepRow.update({
    StepRow.state: v.state, StepRow.finished_at: v.at, StepRow.message: v.message, StepRow.exit_code: v.exit_code,
}).where(StepRow.preparation == v.prep, StepRow.name == v.name))
_END = Compiled(lambda v: PreparationRow.update(
    state=v.state, reason=v.reason, message=v.message, failed_step=v.failed_step, finished_at=v.at,
).where(PreparationRow.id == v.id))


def _new_steps(n: int) -> Compiled:
    """The insert of a new preparation's ``n`` steps, PENDING, named ``name0`` .. ``name{n-1}``."""
    if n not in _STEPS:
        _STEPS[n] = Compiled(lambda v: StepRow.insert_many([
            {StepRow.preparation: v.prep, StepRow.position: i, StepRow.name: getattr(v, f"name{i}"), StepRow.state: StepState.PENDING.value}
            for i in range(n)
        ]))
    return _STEPS[n]


def _by_request_id(server_id: int, request_id: str) -> str | None:
    row = _BY_REQUEST_ID.run(server=server_id, request_id=request_id).fetchone()
    return row[0] if row else None


@urgent
@writes
def create(
    s: Session, server_name: str, options: Options, request_id: str, step_names: Sequence[str], owner: str = ""
) -> tuple[Preparation, bool]:
    """Create a PENDING preparation; return it and whether it is new.

    A known ``request_id`` returns the earlier preparation; an active one refuses.
    """
    if not step_names:
        raise ValueError("a preparation has at least one step")
    sid = server_id(server_name)
    if request_id and (earlier := _by_request_id(sid, request_id)) is not None:
        return _same_request(get(s, earlier), options), False
    prep_id = uuid.uuid4().hex
    now = time.time()
    try:
        with s.database.atomic():  # a savepoint: on PostgreSQL the queries below must still run after a conflict
            _NEW.run(id=prep_id, server=sid, options=rows.sealed_options(options, s.box), request_id=request_id or None,
                     now=now, owner=owner)
            _new_steps(len(step_names)).run(prep=prep_id, **{f"name{i}": name for i, name in enumerate(step_names)})
    except peewee.IntegrityError as e:
        if request_id and (earlier := _by_request_id(sid, request_id)) is not None:
            return _same_request(get(s, earlier), options), False
        active = active_preparation_id(sid)
        if active:
            raise PreparationActive(server_name, active) from e
        raise
    # What was just written, without reading it back.
    steps = [StepRecord(name) for name in step_names]
    return Preparation(id=prep_id, server=server_name, server_id=sid, state=PrepState.PENDING, options=options, steps=steps,
                       request_id=request_id, created_at=now, owner=owner), True


def _same_request(earlier: Preparation, options: Options) -> Preparation:
    """The earlier preparation of a request_id, if it was asked with the same options."""
    if earlier.options != options:
        raise RequestIdReused(
            f"request_id {earlier.request_id!r} was used for preparation {earlier.id} with other options; "
            "send the same request to get that preparation, or a new request_id for a new one",
            metadata={"preparation_id": earlier.id, "request_id": earlier.request_id},
        )
    return earlier


def _joined() -> peewee.ModelSelect:
    # One statement, steps joined to their preparation: one snapshot of both on every backend, so a
    # preparation's last_seq and state never come from another moment than its steps (two queries
    # outside a transaction could straddle a commit).
    return StepRow.select(StepRow, PreparationRow, ServerRow.id, ServerRow.name).join(PreparationRow).join(ServerRow)


def _read(s: Session, query: peewee.ModelSelect) -> Preparation | None:
    steps = list(query)
    if not steps:
        return None
    row = steps[0].preparation
    return rows.preparation(row, row.server.name, steps, s.box)


def get(s: Session, prep_id: str) -> Preparation:
    prep = _read(s, _joined().where(PreparationRow.id == prep_id))
    if prep is None:
        raise PreparationNotFound(f"no preparation {prep_id!r}", metadata={"preparation_id": prep_id})
    return prep


def find(s: Session, server_name: str, prep_id: str = "") -> Preparation:
    """A server's preparation by id, or its latest one: one statement (a second says why when there is none)."""
    if prep_id:
        which = PreparationRow.id == prep_id
    else:
        newest = (PreparationRow.select(PreparationRow.id).join(ServerRow).where(ServerRow.name == server_name)
                  .order_by(PreparationRow.created_at.desc(), PreparationRow.id.desc()).limit(1))
        which = PreparationRow.id == newest
    prep = _read(s, _joined().where(which, ServerRow.name == server_name))
    if prep is None:
        server_id(server_name)  # no such server: say that first
        if prep_id:
            raise PreparationNotFound(f"no preparation {prep_id!r}", metadata={"preparation_id": prep_id})
        raise PreparationNotFound(f"server {server_name!r} has not been prepared yet", metadata={"server": server_name})
    return prep


def page(s: Session, server_name: str, limit: int, before: tuple[float, str] | None) -> list[Preparation]:
    """A server's preparations, newest first, from before the cursor (created_at, id)."""
    query = (
        PreparationRow.select(PreparationRow.id)
        .where(PreparationRow.server == server_id(server_name))
        .order_by(PreparationRow.created_at.desc(), PreparationRow.id.desc())
        .limit(limit)
    )
    if before:
        created, pid = before
        query = query.where(
            (PreparationRow.created_at < created) | ((PreparationRow.created_at == created) & (PreparationRow.id < pid))
        )
    return [get(s, r.id) for r in query]


@bare
@writes
def record_facts(s: Session, prep_id: str, os: dict[str, str], facts: dict[str, Any]) -> None:
    _FACTS.run(id=prep_id, os=json.dumps(os), facts=json.dumps(facts))


@bare
@writes
def record_remote_process(s: Session, prep_id: str, step: str, pid: int | None, marker: str) -> None:
    """Kept so that a Retry after a crash can stop what this attempt leaves running on the server."""
    _REMOTE.run(prep=prep_id, step=step, pid=pid, marker=marker)


def apply_step(prep_id: str, change: StepChange) -> None:
    if change.begins:
        _STEP_BEGINS.run(prep=prep_id, name=change.name, state=change.state.value, at=change.at)
    else:
        _STEP_ENDS.run(prep=prep_id, name=change.name, state=change.state.value, at=change.at, message=change.message,
                       exit_code=change.exit_code)


def apply_end(prep_id: str, change: PrepChange) -> None:
    _END.run(id=prep_id, state=change.state.value, reason=change.reason, message=change.message, failed_step=change.failed_step,
             at=change.at)


@bare
@writes
def start_running(s: Session, prep_id: str, owner: str, started_at: float) -> bool:
    """PENDING → RUNNING for its owner; False when it was cancelled or taken meanwhile."""
    return bool(_START.rows_affected(id=prep_id, owner=owner, started_at=started_at, now=time.time()))


@urgent
@writes
def reset_for_retry(s: Session, prep_id: str, owner: str = "") -> Preparation:
    """FAILED/CANCELLED → PENDING with a new attempt; steps not done go back to PENDING.

    Only from FAILED or CANCELLED: of two Retries at once (two calls, or two replicas) one wins,
    the other is told the preparation is not retryable any more.
    """
    with s.database.atomic():
        prep = get(s, prep_id)
        try:
            with s.database.atomic():  # a savepoint: the query below must still run after a conflict
                changed = PreparationRow.update(
                    state=PrepState.PENDING.value,
                    cancel_requested=False,
                    owner=owner,
                    heartbeat_at=time.time(),
                    attempt=PreparationRow.attempt + 1,
                    reason="",
                    message="",
                    failed_step="",
                    finished_at=None,
                ).where(PreparationRow.id == prep_id, PreparationRow.state.in_([PrepState.FAILED.value, PrepState.CANCELLED.value])).execute()
        except peewee.IntegrityError as e:
            active = active_preparation_id(prep.server_id)
            raise PreparationActive(prep.server, active or "?") from e
        if not changed:  # another Retry came first (what was read above may be older than it)
            state = PreparationRow.select(PreparationRow.state).where(PreparationRow.id == prep_id).scalar()
            raise NotRetryable(f"preparation {prep_id} is {state}: only FAILED or CANCELLED ones can be retried",
                               metadata={"preparation_id": prep_id, "state": str(state)})
        done = [state.value for state in StepState.DONE]
        StepRow.update(state=StepState.PENDING.value, exit_code=None, message="", started_at=None, finished_at=None).where(
            StepRow.preparation == prep_id, StepRow.state.not_in(done)
        ).execute()
    return get(s, prep_id)


@urgent
@writes
def cancel_pending(s: Session, prep_id: str, message: str) -> bool:
    """PENDING → CANCELLED, only while nobody has started it."""
    return bool(
        PreparationRow.update(state=PrepState.CANCELLED.value, reason="CANCELLED", message=message, finished_at=time.time())
        .where(PreparationRow.id == prep_id, PreparationRow.state == PrepState.PENDING.value)
        .execute()
    )


@urgent
@writes
def request_cancel(s: Session, prep_id: str) -> None:
    """Ask the replica that runs a preparation to cancel it (it sees this with its heartbeat)."""
    PreparationRow.update(cancel_requested=True).where(PreparationRow.id == prep_id).execute()

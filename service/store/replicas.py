"""Queries that let replicas share one database.

Every active preparation has an owner (a replica name) that refreshes heartbeat_at; the
others take over, or mark INTERRUPTED, what a silent owner left behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import peewee

from serverprep.service.domain import PrepState, ReplicaHolder
from serverprep.service.store import rows
from serverprep.service.store.database import Session, bare, writes
from serverprep.service.store.models import PreparationRow, ReplicaRow


def _holder(row: ReplicaRow) -> ReplicaHolder:
    return ReplicaHolder(row.name, row.instance, row.host, row.pid, row.pid_started, row.started_at, row.heartbeat_at)


@writes
def claim_name(s: Session, me: ReplicaHolder, stale_before: float, alive: Callable[[ReplicaHolder], bool]) -> ReplicaHolder | None:
    """Take the replica name ``me.name``; return the live holder that keeps it instead, if any.

    A holder is gone when its heartbeat is older than ``stale_before``, or when ``alive`` says
    its process no longer runs (it can tell for a holder on this host).
    """
    try:
        with s.database.atomic():
            row = ReplicaRow.get_or_none(ReplicaRow.name == me.name)
            if row is not None and row.instance != me.instance:
                holder = _holder(row)
                if holder.heartbeat_at >= stale_before and alive(holder):
                    return holder
                row.delete_instance()
            ReplicaRow.insert(name=me.name, instance=me.instance, host=me.host, pid=me.pid, pid_started=me.pid_started,
                              started_at=me.started_at, heartbeat_at=time.time()).execute()
    except peewee.IntegrityError:
        row = ReplicaRow.get_or_none(ReplicaRow.name == me.name)
        return _holder(row) if row is not None and row.instance != me.instance else None
    return None


@bare
@writes
def beat_name(s: Session, name: str, instance: str) -> bool:
    """Refresh our hold on a replica name; False when another process has taken it."""
    return bool(ReplicaRow.update(heartbeat_at=time.time()).where(ReplicaRow.name == name, ReplicaRow.instance == instance).execute())


@writes
def release_name(s: Session, name: str, instance: str) -> None:
    ReplicaRow.delete().where(ReplicaRow.name == name, ReplicaRow.instance == instance).execute()


def owned(s: Session, owner: str, state: PrepState) -> list[str]:
    query = PreparationRow.select(PreparationRow.id).where(PreparationRow.owner == owner, PreparationRow.state == state.value)
    return [r.id for r in query.order_by(PreparationRow.created_at)]


@writes
def claim(s: Session, prep_id: str, owner: str, stale_before: float) -> bool:
    """Take a PENDING preparation that is unowned, ours, or whose owner went silent."""
    return bool(
        PreparationRow.update(owner=owner, heartbeat_at=time.time())
        .where(
            PreparationRow.id == prep_id,
            PreparationRow.state == PrepState.PENDING.value,
            (PreparationRow.owner == owner) | (PreparationRow.owner == "") | (PreparationRow.heartbeat_at < stale_before),
        )
        .execute()
    )


@bare
@writes
def heartbeat(s: Session, owner: str) -> list[str]:
    """Refresh our active preparations; return those whose cancellation another replica asked for."""
    mine = (PreparationRow.owner == owner) & PreparationRow.state.in_(rows.ACTIVE_STATES)
    PreparationRow.update(heartbeat_at=time.time()).where(mine).execute()
    query = PreparationRow.select(PreparationRow.id).where(mine, PreparationRow.cancel_requested == True)  # noqa: E712
    return [r.id for r in query]


def stale(s: Session, stale_before: float, exclude_owner: str) -> list[tuple[str, PrepState]]:
    query = PreparationRow.select(PreparationRow.id, PreparationRow.state).where(
        PreparationRow.state.in_(rows.ACTIVE_STATES),
        PreparationRow.owner != exclude_owner,
        (PreparationRow.heartbeat_at < stale_before) | PreparationRow.heartbeat_at.is_null(),
    )
    return [(r.id, PrepState(r.state)) for r in query]


@writes
def take_over_running(s: Session, prep_id: str, owner: str, expected_owner: str) -> bool:
    """Become the owner of a RUNNING preparation (to record its end), if nobody else did."""
    return bool(
        PreparationRow.update(owner=owner, heartbeat_at=time.time())
        .where(PreparationRow.id == prep_id, PreparationRow.state == PrepState.RUNNING.value, PreparationRow.owner == expected_owner)
        .execute()
    )

"""Queries that let replicas share one database.

Every active preparation has an owner (a replica name) that refreshes heartbeat_at; the
others take over, or mark INTERRUPTED, what a silent owner left behind.
"""

from __future__ import annotations

import time

from serverprep.service.domain import PrepState
from serverprep.service.store import rows
from serverprep.service.store.database import Session
from serverprep.service.store.models import PreparationRow


def owned(s: Session, owner: str, state: PrepState) -> list[str]:
    query = PreparationRow.select(PreparationRow.id).where(PreparationRow.owner == owner, PreparationRow.state == state.value)
    return [r.id for r in query.order_by(PreparationRow.created_at)]


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


def take_over_running(s: Session, prep_id: str, owner: str, expected_owner: str) -> bool:
    """Become the owner of a RUNNING preparation (to record its end), if nobody else did."""
    return bool(
        PreparationRow.update(owner=owner, heartbeat_at=time.time())
        .where(PreparationRow.id == prep_id, PreparationRow.state == PrepState.RUNNING.value, PreparationRow.owner == expected_owner)
        .execute()
    )

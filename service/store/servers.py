"""Queries on registered servers."""

from __future__ import annotations

import dataclasses
import time

import peewee

from serverprep.service.domain import PreparationSummary, PrepState, Secrets, Server, ServerChange, ServerSpec
from serverprep.service.errors import PreparationActive, ServerExists, ServerNotFound
from serverprep.service.store import rows
from serverprep.service.store.compiled import Compiled
from serverprep.service.store.database import Session, urgent, writes
from serverprep.service.store.models import LogRow, PreparationRow, ServerRow, StepRow


@urgent
@writes
def create(s: Session, spec: ServerSpec) -> Server:
    try:
        with s.database.atomic():
            row = ServerRow.create(
                name=spec.name,
                host=spec.host,
                port=spec.port,
                user=spec.user,
                host_key=spec.host_key,
                accept_new_host_key=spec.accept_new_host_key,
                created_at=time.time(),
                **{name: s.box.seal(getattr(spec.secrets, name)) for name in Secrets.NAMES},
            )
    except peewee.IntegrityError as e:
        raise ServerExists(f"a server named {spec.name!r} exists already", metadata={"server": spec.name}) from e
    return rows.server(row, s.box)


def get(s: Session, name: str, *, latest: bool = False) -> Server:
    """A server; with ``latest``, its newest preparation in brief too (one more statement)."""
    row = ServerRow.get_or_none(ServerRow.name == name)
    if row is None:
        raise ServerNotFound(f"no server named {name!r}", metadata={"server": name})
    server = rows.server(row, s.box)
    return with_latest([server])[0] if latest else server


_SERVER_ID = Compiled(lambda v: ServerRow.select(ServerRow.id).where(ServerRow.name == v.name))


def server_id(name: str) -> int:
    """The id of a server, without opening its secrets (for queries that need only that)."""
    row = _SERVER_ID.run(name=name).fetchone()
    if row is None:
        raise ServerNotFound(f"no server named {name!r}", metadata={"server": name})
    return int(row[0])


def page(s: Session, limit: int, after: str = "") -> list[Server]:
    """Servers by name after ``after``, each with its newest preparation in brief."""
    query = ServerRow.select().order_by(ServerRow.name).limit(limit)
    if after:
        query = query.where(ServerRow.name > after)
    return with_latest([rows.server(r, s.box) for r in query])


def with_latest(servers: list[Server]) -> list[Server]:
    """``servers`` with their newest preparations, in one statement: per server, one search of the
    index on (server_id, created_at, id), in Status's order (``preparations.find``)."""
    if not servers:
        return servers
    other = PreparationRow.alias()
    newest = (other.select(other.id).where(other.server == ServerRow.id)
              .order_by(other.created_at.desc(), other.id.desc()).limit(1))
    query = (ServerRow
             .select(ServerRow.id, PreparationRow.id, PreparationRow.state, PreparationRow.attempt, PreparationRow.last_seq)
             .join(PreparationRow, on=(PreparationRow.id == newest))
             .where(ServerRow.id.in_([server.id for server in servers]))
             .tuples())
    latest = {server_id: PreparationSummary(prep_id, PrepState(state), attempt, last_seq)
              for server_id, prep_id, state, attempt, last_seq in query}
    return [dataclasses.replace(server, latest=latest.get(server.id)) for server in servers]


def active_preparation_id(server_id: int) -> str | None:
    row = (
        PreparationRow.select(PreparationRow.id)
        .where(PreparationRow.server == server_id, PreparationRow.state.in_(rows.ACTIVE_STATES))
        .first()
    )
    return row.id if row else None


@urgent
@writes
def delete(s: Session, name: str) -> None:
    with s.database.atomic():
        server = get(s, name)
        active = active_preparation_id(server.id)
        if active:
            raise PreparationActive(name, active)
        # Children first: not every database enforces ON DELETE CASCADE by default.
        prep_ids = PreparationRow.select(PreparationRow.id).where(PreparationRow.server == server.id)
        LogRow.delete().where(LogRow.preparation.in_(prep_ids)).execute()
        StepRow.delete().where(StepRow.preparation.in_(prep_ids)).execute()
        PreparationRow.delete().where(PreparationRow.server == server.id).execute()
        ServerRow.delete().where(ServerRow.id == server.id).execute()


@urgent
@writes
def update(s: Session, name: str, change: ServerChange) -> Server:
    """Apply a change (credentials sealed here). Refused while the server is being prepared."""
    values: dict[peewee.Field, object] = {}
    for field in (ServerRow.host, ServerRow.port, ServerRow.user):
        value = getattr(change, field.name)
        if value is not None:
            values[field] = value
    for secret, value in change.secrets().items():
        values[getattr(ServerRow, secret)] = s.box.seal(value)
    if change.host_key is not None:
        values[ServerRow.host_key], values[ServerRow.accept_new_host_key] = change.host_key, False
    elif change.accept_new_host_key:
        values[ServerRow.host_key], values[ServerRow.accept_new_host_key] = "", True
    with s.database.atomic():
        server = get(s, name)
        active = active_preparation_id(server.id)
        if active:
            raise PreparationActive(name, active)
        if values:
            ServerRow.update(values).where(ServerRow.id == server.id).execute()
    return get(s, name, latest=True)


@writes
def pin_host_key(s: Session, server_id: int, host_key: str) -> None:
    ServerRow.update(host_key=host_key).where(ServerRow.id == server_id).execute()

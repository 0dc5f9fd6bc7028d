"""Persistence: the only package that imports peewee. Sync queries run on one worker thread."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import peewee
from playhouse import db_url

from serverprep.service.domain import (
    LogEntry,
    Options,
    Preparation,
    PrepState,
    Secrets,
    Server,
    ServerSpec,
    StepRecord,
    StepState,
    Stream,
)
from serverprep.service.errors import (
    PreparationActive,
    PreparationNotFound,
    ServerExists,
    ServerNotFound,
    StorageError,
)
from serverprep.service.secretbox import SecretBox
from serverprep.service.store.migrations import migrate
from serverprep.service.store.models import ALL_MODELS, LogRow, PreparationRow, ServerRow, StepRow, db

T = TypeVar("T")

# Options that may carry a password (proxy URLs): stored encrypted like credentials.
SECRET_OPTIONS = ("http_proxy", "https_proxy")

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": 10_000,
}


def default_url(data_dir: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'serverprep.db'}"


def open_database(url: str) -> peewee.Database:
    """Open the database at a peewee URL; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite:"):
        path = url.split(":///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            directory = Path(path).parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StorageError(f"cannot create the data directory {directory}: {e.strerror}") from e
            # SQLite in WAL mode writes beside the database (-wal, -shm): the directory must be writable.
            for target in (directory, Path(path)):
                if target.exists() and not os.access(target, os.W_OK):
                    raise StorageError(f"{target} is read-only: serverprep must write its SQLite database there")
        return db_url.connect(url, pragmas=SQLITE_PRAGMAS, timeout=10)
    return db_url.connect(url)


def _server(row: ServerRow, box: SecretBox) -> Server:
    return Server(
        id=row.id,
        name=row.name,
        host=row.host,
        port=row.port,
        user=row.user,
        host_key=row.host_key,
        accept_new_host_key=row.accept_new_host_key,
        created_at=row.created_at,
        secrets=Secrets(
            private_key=box.open(row.private_key),
            private_key_passphrase=box.open(row.private_key_passphrase),
            password=box.open(row.password),
            sudo_password=box.open(row.sudo_password),
        ),
    )


def _step(row: StepRow) -> StepRecord:
    return StepRecord(
        name=row.name,
        state=StepState(row.state),
        exit_code=row.exit_code,
        message=row.message,
        started_at=row.started_at,
        finished_at=row.finished_at,
        attempts=row.attempts,
        remote_pid=row.remote_pid,
        remote_marker=row.remote_marker,
    )


def _preparation(row: PreparationRow, server_name: str, steps: Iterable[StepRow], box: SecretBox) -> Preparation:
    options = json.loads(row.options)
    for key in SECRET_OPTIONS:
        options[key] = box.open(options.get(key, ""))
    return Preparation(
        id=row.id,
        server=server_name,
        server_id=row.server_id,
        state=PrepState(row.state),
        options=Options.from_json(options),
        steps=[_step(s) for s in sorted(steps, key=lambda s: s.position)],
        request_id=row.request_id or "",
        attempt=row.attempt,
        os=json.loads(row.os),
        facts=json.loads(row.facts),
        reason=row.reason,
        message=row.message,
        failed_step=row.failed_step,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        last_seq=row.last_seq,
        owner=row.owner,
    )


def _log(row: LogRow) -> LogEntry:
    return LogEntry(
        seq=row.seq,
        time=row.time,
        step=row.step,
        stream=Stream(row.stream),
        text=row.text,
        step_state=StepState(row.step_state) if row.step_state else None,
        prep_state=PrepState(row.prep_state) if row.prep_state else None,
    )


class Store:
    """Every query serverprep makes. Methods are blocking; call them through :meth:`run`.

    One Store per process: it binds the models' DatabaseProxy to its database.
    """

    def __init__(self, url: str, box: SecretBox):
        self.url = url
        self.box = box
        self.database = open_database(url)
        db.initialize(self.database)
        # One thread: SQLite has one writer anyway, and ordering stays simple.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serverprep-db")

    # -- plumbing -----------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self._guarded, fn, *args, **kwargs))

    def _guarded(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            # The worker thread keeps its connection open between calls.
            self.database.connect(reuse_if_open=True)
            return fn(*args, **kwargs)
        except (peewee.OperationalError, peewee.InterfaceError) as e:
            # Disk full, read-only file, locked past the busy timeout: say so plainly, with
            # the first error (a failed rollback after "disk is full" is only its echo).
            root: BaseException = e
            while root.__context__ is not None:
                root = root.__context__
            self._reset_connection()
            raise StorageError(f"database error: {root}") from e

    def _reset_connection(self) -> None:
        """Start over with a fresh connection: the failed one may hold a broken transaction."""
        try:
            self.database.close()
        except peewee.PeeweeException:
            self.database._state.reset()  # peewee's way out of a half-closed transaction

    def migrate(self) -> list[int]:
        return migrate(self.database)

    def close(self) -> None:
        def _close() -> None:
            if not self.database.is_closed():
                self.database.close()

        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)

    # -- servers ------------------------------------------------------------

    def create_server(self, spec: ServerSpec) -> Server:
        try:
            with self.database.atomic():
                row = ServerRow.create(
                    name=spec.name,
                    host=spec.host,
                    port=spec.port,
                    user=spec.user,
                    private_key=self.box.seal(spec.secrets.private_key),
                    private_key_passphrase=self.box.seal(spec.secrets.private_key_passphrase),
                    password=self.box.seal(spec.secrets.password),
                    sudo_password=self.box.seal(spec.secrets.sudo_password),
                    host_key=spec.host_key,
                    accept_new_host_key=spec.accept_new_host_key,
                    created_at=time.time(),
                )
        except peewee.IntegrityError as e:
            raise ServerExists(f"a server named {spec.name!r} exists already", metadata={"server": spec.name}) from e
        return _server(row, self.box)

    def get_server(self, name: str) -> Server:
        row = ServerRow.get_or_none(ServerRow.name == name)
        if row is None:
            raise ServerNotFound(f"no server named {name!r}", metadata={"server": name})
        return _server(row, self.box)

    def list_servers(self, limit: int, after: str = "") -> list[Server]:
        query = ServerRow.select().order_by(ServerRow.name).limit(limit)
        if after:
            query = query.where(ServerRow.name > after)
        return [_server(r, self.box) for r in query]

    def delete_server(self, name: str) -> None:
        with self.database.atomic():
            server = self.get_server(name)
            active = self._active_preparation_id(server.id)
            if active:
                raise PreparationActive(name, active)
            # Children first: not every database enforces ON DELETE CASCADE by default.
            prep_ids = PreparationRow.select(PreparationRow.id).where(PreparationRow.server == server.id)
            LogRow.delete().where(LogRow.preparation.in_(prep_ids)).execute()
            StepRow.delete().where(StepRow.preparation.in_(prep_ids)).execute()
            PreparationRow.delete().where(PreparationRow.server == server.id).execute()
            ServerRow.delete().where(ServerRow.id == server.id).execute()

    def update_server(self, name: str, changes: dict[str, Any]) -> Server:
        """Apply changes (column → value; credentials in clear, sealed here). Refused while active."""
        with self.database.atomic():
            server = self.get_server(name)
            active = self._active_preparation_id(server.id)
            if active:
                raise PreparationActive(name, active)
            values = {
                key: self.box.seal(value) if key in ("private_key", "private_key_passphrase", "password", "sudo_password") else value
                for key, value in changes.items()
            }
            if values:
                ServerRow.update(**values).where(ServerRow.id == server.id).execute()
        return self.get_server(name)

    def pin_host_key(self, server_id: int, host_key: str) -> None:
        ServerRow.update(host_key=host_key).where(ServerRow.id == server_id).execute()

    # -- preparations -------------------------------------------------------

    def _active_preparation_id(self, server_id: int) -> str | None:
        row = (
            PreparationRow.select(PreparationRow.id)
            .where(PreparationRow.server == server_id, PreparationRow.state.in_(["PENDING", "RUNNING"]))
            .first()
        )
        return row.id if row else None

    def create_preparation(
        self, server_name: str, options: Options, request_id: str, step_names: Sequence[str], owner: str = ""
    ) -> tuple[Preparation, bool]:
        """Create a PENDING preparation; return it and whether it is new.

        A known ``request_id`` returns the earlier preparation; an active one refuses.
        """
        server = self.get_server(server_name)
        if request_id:
            earlier = PreparationRow.get_or_none(
                PreparationRow.server == server.id, PreparationRow.request_id == request_id
            )
            if earlier is not None:
                return self.get_preparation(earlier.id), False
        prep_id = uuid.uuid4().hex
        try:
            with self.database.atomic():
                PreparationRow.create(
                    id=prep_id,
                    server=server.id,
                    state=PrepState.PENDING.value,
                    options=json.dumps(self._sealed_options(options)),
                    request_id=request_id or None,
                    created_at=time.time(),
                    owner=owner,
                    heartbeat_at=time.time(),
                )
                StepRow.insert_many(
                    [
                        {"preparation": prep_id, "position": i, "name": name, "state": StepState.PENDING.value}
                        for i, name in enumerate(step_names)
                    ]
                ).execute()
        except peewee.IntegrityError as e:
            if request_id:
                earlier = PreparationRow.get_or_none(
                    PreparationRow.server == server.id, PreparationRow.request_id == request_id
                )
                if earlier is not None:
                    return self.get_preparation(earlier.id), False
            active = self._active_preparation_id(server.id)
            if active:
                raise PreparationActive(server_name, active) from e
            raise
        return self.get_preparation(prep_id), True

    def _sealed_options(self, options: Options) -> dict[str, Any]:
        data = options.to_json()
        for key in SECRET_OPTIONS:
            data[key] = self.box.seal(data.get(key, ""))
        return data

    def get_preparation(self, prep_id: str, server_name: str | None = None) -> Preparation:
        query = (
            PreparationRow.select(PreparationRow, ServerRow.name)
            .join(ServerRow)
            .where(PreparationRow.id == prep_id)
        )
        if server_name is not None:
            query = query.where(ServerRow.name == server_name)
        row = query.first()
        if row is None:
            raise PreparationNotFound(f"no preparation {prep_id!r}", metadata={"preparation_id": prep_id})
        steps = StepRow.select().where(StepRow.preparation == prep_id)
        return _preparation(row, row.server.name, steps, self.box)

    def latest_preparation(self, server_name: str) -> Preparation:
        server = self.get_server(server_name)
        row = (
            PreparationRow.select(PreparationRow.id)
            .where(PreparationRow.server == server.id)
            .order_by(PreparationRow.created_at.desc())
            .first()
        )
        if row is None:
            raise PreparationNotFound(f"server {server_name!r} has not been prepared yet", metadata={"server": server_name})
        return self.get_preparation(row.id)

    def find_preparation(self, server_name: str, prep_id: str = "") -> Preparation:
        if prep_id:
            self.get_server(server_name)
            return self.get_preparation(prep_id, server_name)
        return self.latest_preparation(server_name)

    def list_preparations(self, server_name: str, limit: int, before: tuple[float, str] | None) -> list[Preparation]:
        server = self.get_server(server_name)
        query = (
            PreparationRow.select(PreparationRow.id)
            .where(PreparationRow.server == server.id)
            .order_by(PreparationRow.created_at.desc(), PreparationRow.id.desc())
            .limit(limit)
        )
        if before:
            created, pid = before
            query = query.where(
                (PreparationRow.created_at < created)
                | ((PreparationRow.created_at == created) & (PreparationRow.id < pid))
            )
        return [self.get_preparation(r.id) for r in query]

    def update_preparation(self, prep_id: str, **fields: Any) -> None:
        for key in ("os", "facts"):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        if "state" in fields:
            fields["state"] = PrepState(fields["state"]).value
        PreparationRow.update(**fields).where(PreparationRow.id == prep_id).execute()

    def update_step(self, prep_id: str, name: str, **fields: Any) -> None:
        if "state" in fields:
            fields["state"] = StepState(fields["state"]).value
        if fields.pop("new_attempt", False):
            fields["attempts"] = StepRow.attempts + 1
        StepRow.update(**fields).where(StepRow.preparation == prep_id, StepRow.name == name).execute()

    def reset_for_retry(self, prep_id: str, owner: str = "") -> Preparation:
        """FAILED/CANCELLED → PENDING with a new attempt; steps not done go back to PENDING."""
        with self.database.atomic():
            prep = self.get_preparation(prep_id)
            try:
                with self.database.atomic():  # a savepoint: the query below must still run after a conflict
                    PreparationRow.update(
                        state=PrepState.PENDING.value,
                        cancel_requested=False,
                        owner=owner,
                        heartbeat_at=time.time(),
                        attempt=PreparationRow.attempt + 1,
                        reason="",
                        message="",
                        failed_step="",
                        finished_at=None,
                    ).where(PreparationRow.id == prep_id).execute()
            except peewee.IntegrityError as e:
                active = self._active_preparation_id(prep.server_id)
                raise PreparationActive(prep.server, active or "?") from e
            StepRow.update(state=StepState.PENDING.value, exit_code=None, message="").where(
                StepRow.preparation == prep_id, StepRow.state.not_in([StepState.SUCCEEDED.value, StepState.SKIPPED.value])
            ).execute()
        return self.get_preparation(prep_id)

    # -- replicas -----------------------------------------------------------
    # Every active preparation has an owner (a replica name) that refreshes heartbeat_at;
    # the others take over, or mark INTERRUPTED, what a silent owner left behind.

    def owned(self, owner: str, state: PrepState) -> list[str]:
        rows = PreparationRow.select(PreparationRow.id).where(PreparationRow.owner == owner, PreparationRow.state == state.value)
        return [r.id for r in rows.order_by(PreparationRow.created_at)]

    def claim(self, prep_id: str, owner: str, stale_before: float) -> bool:
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

    def heartbeat(self, owner: str) -> list[str]:
        """Refresh our active preparations; return those whose cancellation another replica asked for."""
        active = [PrepState.PENDING.value, PrepState.RUNNING.value]
        PreparationRow.update(heartbeat_at=time.time()).where(PreparationRow.owner == owner, PreparationRow.state.in_(active)).execute()
        rows = PreparationRow.select(PreparationRow.id).where(
            PreparationRow.owner == owner, PreparationRow.state.in_(active), PreparationRow.cancel_requested == True  # noqa: E712
        )
        return [r.id for r in rows]

    def stale(self, stale_before: float, exclude_owner: str) -> list[tuple[str, PrepState]]:
        rows = PreparationRow.select(PreparationRow.id, PreparationRow.state).where(
            PreparationRow.state.in_([PrepState.PENDING.value, PrepState.RUNNING.value]),
            PreparationRow.owner != exclude_owner,
            (PreparationRow.heartbeat_at < stale_before) | PreparationRow.heartbeat_at.is_null(),
        )
        return [(r.id, PrepState(r.state)) for r in rows]

    def take_over_running(self, prep_id: str, owner: str, expected_owner: str) -> bool:
        """Become the owner of a RUNNING preparation (to record its end), if nobody else did."""
        return bool(
            PreparationRow.update(owner=owner, heartbeat_at=time.time())
            .where(PreparationRow.id == prep_id, PreparationRow.state == PrepState.RUNNING.value, PreparationRow.owner == expected_owner)
            .execute()
        )

    def start_running(self, prep_id: str, owner: str, started_at: float) -> bool:
        """PENDING → RUNNING for its owner; False when it was cancelled or taken meanwhile."""
        return bool(
            PreparationRow.update(state=PrepState.RUNNING.value, started_at=started_at, finished_at=None, heartbeat_at=time.time())
            .where(PreparationRow.id == prep_id, PreparationRow.state == PrepState.PENDING.value, PreparationRow.owner == owner)
            .execute()
        )

    def request_cancel(self, prep_id: str) -> None:
        PreparationRow.update(cancel_requested=True).where(PreparationRow.id == prep_id).execute()

    def cancel_pending(self, prep_id: str, message: str) -> bool:
        """PENDING → CANCELLED, only while nobody has started it."""
        return bool(
            PreparationRow.update(state=PrepState.CANCELLED.value, reason="CANCELLED", message=message, finished_at=time.time())
            .where(PreparationRow.id == prep_id, PreparationRow.state == PrepState.PENDING.value)
            .execute()
        )

    # -- logs ---------------------------------------------------------------

    def append_logs(
        self, prep_id: str, entries: Sequence[LogEntry], *, step_update: tuple[str, dict[str, Any]] | None = None,
        prep_update: dict[str, Any] | None = None,
    ) -> None:
        """Store log entries, and optionally a step or preparation change, in one transaction."""
        with self.database.atomic():
            if entries:
                for chunk in range(0, len(entries), 200):
                    LogRow.insert_many(
                        [
                            {
                                "preparation": prep_id,
                                "seq": e.seq,
                                "time": e.time,
                                "step": e.step,
                                "stream": e.stream.value,
                                "text": e.text,
                                "step_state": e.step_state.value if e.step_state else None,
                                "prep_state": e.prep_state.value if e.prep_state else None,
                            }
                            for e in entries[chunk : chunk + 200]
                        ]
                    ).execute()
                PreparationRow.update(last_seq=entries[-1].seq).where(PreparationRow.id == prep_id).execute()
            if step_update:
                self.update_step(prep_id, step_update[0], **step_update[1])
            if prep_update:
                self.update_preparation(prep_id, **prep_update)

    def read_logs(self, prep_id: str, after_seq: int, limit: int = 1000) -> list[LogEntry]:
        query = (
            LogRow.select()
            .where(LogRow.preparation == prep_id, LogRow.seq > after_seq)
            .order_by(LogRow.seq)
            .limit(limit)
        )
        return [_log(r) for r in query]

    def max_seq(self, prep_id: str) -> int:
        value = LogRow.select(peewee.fn.MAX(LogRow.seq)).where(LogRow.preparation == prep_id).scalar()
        return value or 0


__all__ = ["ALL_MODELS", "Store", "default_url", "open_database"]

"""Persistence: the only package that imports peewee, behind one typed async facade.

The query modules (servers, preparations, logs, replicas) are blocking functions that take a
:class:`Session` first; :class:`Store` runs each on the worker thread and keeps its signature.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import peewee

from serverprep.service.secretbox import SecretBox
from serverprep.service.store import logs, preparations, replicas, retention, servers
from serverprep.service.store.database import Session, default_url, open_database, writes_alone
from serverprep.service.store.migrations import migrate
from serverprep.service.store.worker import Worker

P = ParamSpec("P")
T = TypeVar("T")


def _offload(fn: Callable[Concatenate[Session, P], T]) -> Callable[Concatenate[Store, P], Coroutine[Any, Any, T]]:
    async def method(self: Store, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.worker.call(fn, *args, **kwargs)

    method.__name__, method.__qualname__, method.__doc__ = fn.__name__, f"Store.{fn.__name__}", fn.__doc__
    return method


@writes_alone
def _migrate(s: Session) -> list[int]:
    sqlite = isinstance(s.database, peewee.SqliteDatabase)
    if sqlite:
        # Incremental auto-vacuum lets the file give back what the retention policy frees. It is set
        # before the first table exists (not at every connect: on a full disk that pragma fails reads).
        s.database.execute_sql("PRAGMA auto_vacuum = INCREMENTAL")
    applied = migrate(s.database)
    if sqlite and s.database.execute_sql("PRAGMA auto_vacuum").fetchone()[0] != 2:
        # A file made before (serverprep 0.1): rewrite it once so that the mode takes effect.
        s.database.execute_sql("VACUUM")
    return applied


class Store:
    """Every query serverprep makes, as coroutines that run on the database thread.

    One Store per process: it binds the models' DatabaseProxy to its database.
    """

    def __init__(self, url: str, box: SecretBox):
        self.url = url
        self.worker = Worker(Session(open_database(url), box))

    @property
    def database(self) -> Any:
        return self.worker.session.database

    def close(self) -> None:
        self.worker.close()

    migrate = _offload(_migrate)

    # servers
    create_server = _offload(servers.create)
    get_server = _offload(servers.get)
    list_servers = _offload(servers.page)
    update_server = _offload(servers.update)
    delete_server = _offload(servers.delete)
    pin_host_key = _offload(servers.pin_host_key)

    # preparations
    create_preparation = _offload(preparations.create)
    get_preparation = _offload(preparations.get)
    find_preparation = _offload(preparations.find)
    list_preparations = _offload(preparations.page)
    record_facts = _offload(preparations.record_facts)
    record_remote_process = _offload(preparations.record_remote_process)
    start_running = _offload(preparations.start_running)
    reset_for_retry = _offload(preparations.reset_for_retry)
    cancel_pending = _offload(preparations.cancel_pending)
    request_cancel = _offload(preparations.request_cancel)

    # logs
    append_logs = _offload(logs.append)
    append_logs_ending = _offload(logs.append_ending)
    read_logs = _offload(logs.read)
    max_seq = _offload(logs.max_seq)
    output_totals = _offload(logs.output_totals)

    # retention
    removable = _offload(retention.candidates)
    remove_preparations = _offload(retention.remove)
    reclaim_space = _offload(retention.reclaim)
    size = _offload(retention.size)

    # replicas
    claim_name = _offload(replicas.claim_name)
    beat_name = _offload(replicas.beat_name)
    release_name = _offload(replicas.release_name)
    owned = _offload(replicas.owned)
    claim = _offload(replicas.claim)
    heartbeat = _offload(replicas.heartbeat)
    stale = _offload(replicas.stale)
    take_over_running = _offload(replicas.take_over_running)


__all__ = ["Session", "Store", "default_url", "open_database"]

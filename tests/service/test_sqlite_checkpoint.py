"""SQLite's WAL is copied back by the checkpointer thread, not in the writer's commits, and stays bounded."""

import asyncio
import logging
import struct
import time

import pytest

from serverprep.service.domain import Secrets, ServerSpec
from serverprep.service.secretbox import SecretBox
from serverprep.service.store import Store, checkpoint, database

BOX = SecretBox.from_passphrase("test key")


def wal_index(db):
    """(mxFrame, nBackfill) from the wal-index beside ``db``: frames in the WAL, and how many of them
    are copied back into the database file (wal.c: WalIndexHdr, stored twice, then WalCkptInfo)."""
    for _ in range(100):
        head = (db.parent / (db.name + "-shm")).read_bytes()[:100]
        if head[:48] == head[48:96]:
            return struct.unpack_from("=I", head, 16)[0], struct.unpack_from("=I", head, 96)[0]
    raise AssertionError("the wal-index header never read the same twice")


def spec(i):
    return ServerSpec(name=f"s{i}", host="10.0.0.5", port=22, user="admin", secrets=Secrets(password="p" * 2000),
                      host_key="", accept_new_host_key=True)


def fill(store, db, servers, each=None):
    """Register ``servers`` servers, one commit each (a password of 2,000 characters: at least one
    page apiece); ``each`` sees the wal-index after every commit."""
    async def go():
        for i in range(servers):
            await store.create_server(spec(i))
            if each:
                each(wal_index(db))

    asyncio.run(go())


@pytest.fixture
def idle_checkpointer(monkeypatch):
    monkeypatch.setattr(checkpoint, "CHECKPOINT_INTERVAL", 3600.0)


def open_store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'serverprep.db'}", BOX)
    asyncio.run(store.migrate())
    return store, tmp_path / "serverprep.db"


def test_commits_do_not_copy_the_wal_back_at_sqlites_1000_pages(tmp_path, idle_checkpointer):
    """Proves: with the checkpointer idle, the writer's commits let the WAL pass SQLite's default of
    1,000 pages without copying any of it back (a commit that did would wait for that copy and two
    fsyncs: 20-45 ms every ~160 commits in the fleet bench). Does not prove a commit is faster."""
    store, db = open_store(tmp_path)
    try:
        fill(store, db, 700)
        frames, copied = wal_index(db)
    finally:
        store.close()
    assert frames > 1000 and copied == 0, (frames, copied)


def test_the_checkpointer_copies_the_wal_back_and_the_next_commit_starts_it_over(tmp_path, monkeypatch):
    """Proves: the checkpointer thread copies every frame back while nothing writes; the next commit
    then writes at the WAL's beginning, and the file is cut back to journal_size_limit (4 MiB).
    Does not prove it keeps up under a steady stream of commits (the bound below is for that)."""
    monkeypatch.setattr(checkpoint, "CHECKPOINT_INTERVAL", 0.05)
    store, db = open_store(tmp_path)
    wal = tmp_path / "serverprep.db-wal"
    try:
        fill(store, db, 700)
        deadline = time.monotonic() + 30
        while (index := wal_index(db))[1] < index[0]:
            assert time.monotonic() < deadline, f"never copied back: {index}"
            time.sleep(0.02)
        before, size_before = index[0], wal.stat().st_size
        asyncio.run(store.create_server(spec(1000)))
        after, size_after = wal_index(db)[0], wal.stat().st_size
    finally:
        store.close()
    assert before > 1000 and after < 10, (before, after)
    assert size_before > 4 * 1024 * 1024 >= size_after, (size_before, size_after)


def test_without_the_checkpointer_the_wal_stays_within_its_bound(tmp_path, idle_checkpointer, monkeypatch):
    """Proves: when the checkpointer does not catch up, a commit copies the WAL back at
    ``wal_autocheckpoint`` pages (here lowered to 200) and the WAL starts over, so it never holds
    much more than that."""
    monkeypatch.setitem(database.SQLITE_PRAGMAS, "wal_autocheckpoint", 200)
    seen = []
    store, db = open_store(tmp_path)
    try:
        fill(store, db, 500, each=lambda index: seen.append(index[0]))
    finally:
        store.close()
    assert max(seen) < 200 + 20 and sum(b < a for a, b in zip(seen, seen[1:])) >= 3, seen


def test_a_failing_checkpoint_is_logged_once_until_one_works(tmp_path, caplog):
    """Proves: a pass that fails (here an SQLite error raised by a stand-in for the database) is
    logged once, not at every pass, and a pass that works again says so. A fake: the real failure
    (a full disk) is in test_storage_faults."""
    class Failing:
        database = str(tmp_path / "missing.db")
        failures = 3

        def is_closed(self):
            return False

        def connect(self, reuse_if_open):
            pass

        def execute_sql(self, sql):
            if self.failures:
                self.failures -= 1
                raise database.sqlite3.OperationalError("database or disk is full")
            return database.sqlite3.connect(":memory:").execute("SELECT 1")

        def close(self):
            pass

    worker = checkpoint.Checkpointer(Failing(), interval=3600)
    try:
        with caplog.at_level(logging.INFO, logger="serverprep.store"):
            for _ in range(5):
                worker.checkpoint()
    finally:
        worker.stop()
    assert [(r.levelname, r.getMessage().split(" (")[0].split(":")[0]) for r in caplog.records] == [
        ("WARNING", "copying the SQLite WAL back into the database failed"),
        ("INFO", "copying the SQLite WAL back into the database works again"),
    ]

"""The store against real SQLite and real PostgreSQL: constraints hold under concurrency."""

import asyncio
import inspect
import itertools
import random
import subprocess
import sys
import threading

import pytest

from serverprep.drivers import STEP_NAMES
from serverprep.service.budgets import OutputBudget
from serverprep.service.domain import LogEntry, Options, PrepChange, PrepState, Secrets, ServerSpec, StepState, Stream
from serverprep.service.errors import PreparationActive, ServerExists
from serverprep.service.journal import Journal
from serverprep.service.logbus import LogBus
from serverprep.service.secretbox import SecretBox
from serverprep.service.store import Store
from serverprep.service.store.migrations import LATEST, current_version

BOX = SecretBox.from_passphrase("test key")


class Blocking:
    """A Store whose coroutines are awaited one by one, for tests that read like the queries they make."""

    def __init__(self, url, box):
        self.store = Store(url, box)
        self.database = self.store.database

    def __getattr__(self, name):
        attr = getattr(self.store, name)
        if inspect.iscoroutinefunction(attr):
            return lambda *args, **kwargs: asyncio.run(attr(*args, **kwargs))
        return attr


def spec(name="web1"):
    return ServerSpec(name=name, host="10.0.0.5", port=22, user="admin", secrets=Secrets(password="pw"), host_key="", accept_new_host_key=True)


@pytest.fixture
def store(database_url):
    s = Blocking(database_url, BOX)
    s.migrate()
    yield s
    s.close()


def test_migrations_are_recorded_and_idempotent(store):
    assert current_version(store.database) == LATEST
    assert store.migrate() == []


def test_unique_names(store):
    store.create_server(spec())
    with pytest.raises(ServerExists):
        store.create_server(spec())


#: One replica: its own process and Store (one Store per process), waiting for the start file, then
#: one Prepare ("prepare") or the start-up migration ("migrate").
REPLICA = """
import asyncio, os, sys, time
from serverprep.drivers import STEP_NAMES
from serverprep.service.domain import Options
from serverprep.service.errors import PreparationActive
from serverprep.service.secretbox import SecretBox
from serverprep.service.store import Store

store = Store(sys.argv[1], SecretBox.from_passphrase("test key"))
store.database.connect()  # connected (pragmas set) before the start
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
if sys.argv[3] == "migrate":
    print("migrated", len(asyncio.run(store.migrate())))
    sys.exit()
try:
    prep, _ = asyncio.run(store.create_preparation("web1", Options(), "", STEP_NAMES))
    print("created", prep.id)
except PreparationActive as e:
    print("active", e.preparation_id)
"""


def replicas(database_url: str, tmp_path, action: str, n: int = 8) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """Start ``n`` replica processes, let them go at once, and return what each printed (split)."""
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", REPLICA, database_url, str(go), action], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stderr is not None
            if (line := p.stdout.readline()) != "ready\n":
                pytest.fail(f"a replica did not start: {line!r} {p.stderr.read()}")
        go.touch()
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    return [out.split() for out, _ in outs]


def test_concurrent_prepares_from_separate_processes_yield_one_preparation(database_url, store, tmp_path):
    """Like several replicas on one database (eight processes, let go at once): the partial unique
    index decides, and the others are told which preparation is active; none fails otherwise."""
    store.create_server(spec())
    answers = replicas(database_url, tmp_path, "prepare")
    created = [pid for kind, pid in answers if kind == "created"]
    active = [pid for kind, pid in answers if kind == "active"]
    assert len(created) == 1 and active == created * 7, answers


def test_replicas_starting_at_once_migrate_a_new_database_once(database_url, tmp_path):
    """Four processes start on one empty database at the same moment: one applies every migration,
    the others wait for it and find nothing to do."""
    answers = replicas(database_url, tmp_path, "migrate", n=4)
    assert sorted(int(n) for _, n in answers) == [0, 0, 0, LATEST], answers


def test_request_id_returns_the_same_preparation(store):
    store.create_server(spec())
    first, created = store.create_preparation("web1", Options(), "req-1", STEP_NAMES)
    again, created_again = store.create_preparation("web1", Options(), "req-1", STEP_NAMES)
    assert created and not created_again and again.id == first.id


def test_a_retry_while_another_preparation_runs_names_the_active_one(store):
    """A preparation read back carries its server's id (the join selected only the name, so it was
    None, and this refusal said '?' instead of the preparation in the way)."""
    store.create_server(spec())
    first, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)
    store.append_logs(first.id, [], [PrepChange(PrepState.FAILED, 1.0, "STEP_FAILED", "m", "detect_os")])
    second, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)
    assert store.get_preparation(first.id).server_id == store.get_server("web1").id
    with pytest.raises(PreparationActive) as refused:
        store.reset_for_retry(first.id)
    assert refused.value.preparation_id == second.id


def test_logs_and_state_change_commit_together(store):
    store.create_server(spec())
    prep, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)
    entries = [LogEntry(seq=i, time=float(i), step="detect_os", stream=Stream.STDOUT, text=f"line {i} ünïcode \x1b[1m") for i in range(1, 451)]
    store.append_logs(prep.id, entries, [PrepChange(PrepState.FAILED, 451.0, "STEP_FAILED", "m", "detect_os")])
    assert [e.seq for e in store.read_logs(prep.id, 100, 1000)] == list(range(101, 451))
    got = store.get_preparation(prep.id)
    assert (got.state, got.last_seq, got.failed_step) == (PrepState.FAILED, 450, "detect_os")
    assert store.read_logs(prep.id, 0, 1)[0].text == "line 1 ünïcode \x1b[1m"


def test_find_reads_one_statement_and_says_which_thing_is_missing(store):
    """``find`` (every Status) reads a preparation with its steps in one statement, by id or the
    server's latest; when there is none, it says whether the server or the preparation is missing."""
    from serverprep.service.errors import PreparationNotFound, ServerNotFound

    store.create_server(spec("web1"))
    store.create_server(spec("web2"))
    with pytest.raises(PreparationNotFound, match="has not been prepared yet"):
        store.find_preparation("web1")
    first, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)
    store.append_logs(first.id, [], [PrepChange(PrepState.FAILED, 1.0, "STEP_FAILED", "m")])
    second, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)
    other, _ = store.create_preparation("web2", Options(), "", STEP_NAMES)  # newer, of another server
    assert store.find_preparation("web1").id == second.id
    assert store.find_preparation("web2").id == other.id
    assert store.find_preparation("web1", first.id).state is PrepState.FAILED
    assert [s.name for s in store.find_preparation("web1").steps] == list(STEP_NAMES)
    with pytest.raises(PreparationNotFound, match=first.id):
        store.find_preparation("web2", first.id)  # another server's preparation
    with pytest.raises(ServerNotFound):
        store.find_preparation("nope")
    with pytest.raises(ServerNotFound):
        store.find_preparation("nope", first.id)


def test_servers_are_listed_with_the_preparation_status_finds_as_their_newest(store, monkeypatch):
    """The brief ListServers and GetServer carry is the preparation ``find`` returns without an id:
    the newer of two (retried, so attempt 2, with log entries), and of two made in the same instant
    the larger id, whichever was made first. A server never prepared has none."""
    import types
    import uuid

    from serverprep.service.store import preparations
    from serverprep.service.store.models import PreparationRow

    ids = ["a1" * 16, "a2" * 16, "b2" * 16, "b1" * 16, "c1" * 16, "c2" * 16]
    monkeypatch.setattr(preparations, "uuid", types.SimpleNamespace(uuid4=lambda: uuid.UUID(ids.pop(0))))
    for name in ("web1", "web2", "web3", "web4"):
        store.create_server(spec(name))
    made: dict[str, list[str]] = {}
    for name in ("web1", "web1", "web2", "web2", "web3", "web3"):
        prep, _ = store.create_preparation(name, Options(), "", STEP_NAMES)
        store.append_logs(prep.id, [], [PrepChange(PrepState.FAILED, 1.0, "STEP_FAILED", "m")])
        made.setdefault(name, []).append(prep.id)
    store.reset_for_retry(made["web1"][1])
    entries = [LogEntry(seq=i, time=2.0, step="detect_os", stream=Stream.STDOUT, text="x") for i in (1, 2, 3)]
    store.append_logs(made["web1"][1], entries, [])
    with store.database.connection_context():  # made in the same instant: b2 (the larger) first, then c1 first
        PreparationRow.update(created_at=1.0).where(PreparationRow.id.in_(made["web2"] + made["web3"])).execute()
    listed = {s.name: s.latest for s in store.list_servers(10)}
    assert listed["web4"] is None and store.get_server("web4", latest=True).latest is None
    assert {n: b.id for n, b in listed.items() if b} == {"web1": "a2" * 16, "web2": "b2" * 16, "web3": "c2" * 16}
    for name in ("web1", "web2", "web3"):
        newest = store.find_preparation(name)
        assert listed[name] == store.get_server(name, latest=True).latest
        assert (listed[name].id, listed[name].state, listed[name].attempt, listed[name].last_seq) == (
            newest.id, newest.state, newest.attempt, newest.last_seq)
    assert (listed["web1"].state, listed["web1"].attempt, listed["web1"].last_seq) == (PrepState.PENDING, 2, 3)
    assert store.get_server("web1").latest is None  # only where asked: the engine's reads skip the query


def test_a_preparation_is_read_in_one_snapshot_with_its_steps(store):
    """While another thread writes entries each with a step change, every read shows last_seq and
    the steps of the same commit (a client compares last_seq with the stream it follows: a step
    newer or older than last_seq would be shown wrong for good). Two separate queries straddled
    commits: this failed within a few hundred reads."""
    from serverprep.service.domain import StepChange

    store.create_server(spec())
    prep, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)
    done = threading.Event()

    async def write() -> None:
        for seq in range(1, 1001):
            if done.is_set():
                return
            entry = LogEntry(seq=seq, time=float(seq), step="detect_os", stream=Stream.EVENT, text=f"change {seq}")
            await store.store.append_logs(prep.id, [entry], [StepChange("detect_os", StepState.SUCCEEDED, float(seq), str(seq))])

    writer = threading.Thread(target=asyncio.run, args=(write(),))
    writer.start()
    mismatched, reads = [], 0
    try:
        while writer.is_alive() and reads < 1000:
            got = store.get_preparation(prep.id)
            reads += 1
            if got.last_seq and got.step("detect_os").message != str(got.last_seq):
                mismatched.append((got.last_seq, got.step("detect_os").message))
    finally:
        done.set()
        writer.join()
    assert reads > 100 and mismatched == [], (reads, mismatched[:5])


def test_an_event_whose_write_failed_is_stored_later_with_its_change(store):
    """The database refuses the write of a step's end once (disk full, a failover): the event stays
    pending with its change, and the flusher's next write stores both, not the event alone."""
    from serverprep.service.domain import StepChange
    from serverprep.service.errors import StorageError

    store.create_server(spec())
    prep, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)

    class RefusesOnce:
        refused = False

        async def append_logs(self, prep_id, entries, changes=()):
            if not self.refused:
                self.refused = True
                raise StorageError("database error: disk is full")
            await store.store.append_logs(prep_id, entries, changes)

    async def go() -> None:
        journal = Journal(prep.id, RefusesOnce(), 0, lambda text: text, OutputBudget(100, 10**6), keep=100, keep_bytes=1 << 20)
        with pytest.raises(StorageError):
            await journal.announce("detect_os SUCCEEDED", StepChange("detect_os", StepState.SUCCEEDED, 1.0, "ok"))
        await journal.flush()  # what the flusher does next
        await journal.close()

    asyncio.run(go())
    got = store.get_preparation(prep.id)
    assert (got.last_seq, got.step("detect_os").state, got.step("detect_os").message) == (1, StepState.SUCCEEDED, "ok")


@pytest.mark.parametrize("head_start", [0, 1, 2, 3, 5])
def test_an_event_is_stored_with_the_change_it_announces_whenever_the_flusher_runs(store, head_start):
    """The flusher decides to store what is pending just as a step ends (its task made ``head_start``
    loop turns before): the step's event never goes out in a batch without the step's change, or a
    Status could show last_seq past the event with the step still RUNNING."""
    from serverprep.service.domain import StepChange

    store.create_server(spec())
    prep, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)
    batches = []

    class Recording:
        async def append_logs(self, prep_id, entries, changes=()):
            events = [(e.step_state, e.prep_state) for e in entries if e.step_state or e.prep_state]
            batches.append((events, [(c.state, None) if isinstance(c, StepChange) else (None, c.state) for c in changes]))
            await store.store.append_logs(prep_id, entries, changes)

        append_logs_ending = append_logs  # the write that ends the preparation (the urgent lane's)

    async def race(journal, text, change) -> None:
        journal.emit("detect_os", Stream.STDOUT, "output")
        flusher = asyncio.ensure_future(journal.flush())
        for _ in range(head_start):
            await asyncio.sleep(0)
        await journal.announce(text, change)
        await flusher

    async def go() -> None:
        journal = Journal(prep.id, Recording(), 0, lambda text: text, OutputBudget(100, 10**6), keep=100, keep_bytes=1 << 20)
        await race(journal, "detect_os RUNNING", StepChange("detect_os", StepState.RUNNING, 1.0))
        await race(journal, "detect_os SUCCEEDED", StepChange("detect_os", StepState.SUCCEEDED, 2.0))
        await race(journal, "preparation FAILED", PrepChange(PrepState.FAILED, 3.0, "STEP_FAILED", "m", "detect_os"))
        await journal.close()

    asyncio.run(go())
    for events, changes in batches:
        assert events == changes, batches
    assert sum(1 for events, _ in batches if events) == 3
    got = store.get_preparation(prep.id)
    assert (got.last_seq, got.step("detect_os").state, got.state) == (6, StepState.SUCCEEDED, PrepState.FAILED)


def test_every_entry_reads_back_exactly_as_it_was_written(store):
    """Texts (control characters, invalid UTF-8 already replaced, 16 KiB), times and states come back
    bit for bit: a live reader and one reading the database see the same entries."""
    store.create_server(spec())
    prep, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)
    rng = random.Random(7)
    texts = ["déjà ✓ 日本語 \U0001F600", "\ufffd\ufffd", "tab\tquote\"back\\slash", "\u2028\x7f\x01", "x" * 16000, "", "  spaced  "]
    entries = [LogEntry(seq=i, time=1795674243.0 + rng.random() * 1000, step="update_packages", stream=Stream.STDERR,
                        text=texts[i % len(texts)], step_state=StepState.RUNNING if i % 7 == 0 else None,
                        prep_state=PrepState.RUNNING if i % 11 == 0 else None) for i in range(1, 1502)]
    store.append_logs(prep.id, entries[:1401])
    store.append_logs(prep.id, entries[1401:])
    assert store.read_logs(prep.id, 0, 2000) == entries


def test_the_lines_of_one_read_read_back_exactly_as_they_were_written(store):
    """Runs of lines that share a time, step and stream, as the lines of one read do (on SQLite a run
    of 32 or more goes in one statement, its texts one JSON array), between events with states:
    every entry comes back bit for bit."""
    store.create_server(spec())
    prep, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)
    texts = ["déjà ✓ 日本語 \U0001F600", "\ufffd", "tab\tquote\"back\\slash", "\u2028\x7f\x01\x1b[1m", "x" * 9000, "",
             "[\"not\", \"json\"]", "a line that says \\u0000", "\\"]
    entries: list[LogEntry] = []
    for n, stream in zip([1, 31, 32, 33, 500, 2000, 40], itertools.cycle([Stream.STDOUT, Stream.STDERR]), strict=False):
        at = 1795674243.0 + len(entries) / 7
        entries += [LogEntry(len(entries) + i + 1, at, "install_docker", stream, texts[(len(entries) + i) % len(texts)]) for i in range(n)]
        entries.append(LogEntry(len(entries) + 1, at, "install_docker", Stream.EVENT, "step running", step_state=StepState.RUNNING))
    store.append_logs(prep.id, entries[:1000])
    store.append_logs(prep.id, entries[1000:])
    assert store.read_logs(prep.id, 0, 5000) == entries


def test_a_nul_character_in_output_is_stored_as_a_replacement_character(store):
    """PostgreSQL cannot store NUL in text (psycopg2 refuses the whole batch): the journal shows it as
    U+FFFD, as invalid UTF-8 is, so a command printing `find -print0` output cannot stop the log."""
    store.create_server(spec())
    prep, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)

    async def emit() -> None:
        journal = Journal(prep.id, store.store, 0, lambda text: text, OutputBudget(100, 10**6), keep=100, keep_bytes=1 << 20)
        journal.emit("update_packages", Stream.STDOUT, "./a\x00./b\x00")
        journal.emit("update_packages", Stream.STDOUT, "plain")
        await journal.close()

    asyncio.run(emit())
    assert [e.text for e in store.read_logs(prep.id, 0, 10)] == ["./a\ufffd./b\ufffd", "plain"]


def test_async_run_executes_on_the_worker_thread(store):
    async def go():
        return await store.store.worker.call(lambda session: threading.current_thread().name)

    assert asyncio.run(go()).startswith("serverprep-db")


def test_credentials_are_encrypted_at_rest(database_url, store):
    secrets = Secrets(private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nkey-body-unique-4711\n", private_key_passphrase="phrase-unique-4712",
                      password="password-unique-4713", sudo_password="sudo-unique-4714")
    store.create_server(ServerSpec(name="web1", host="h", port=22, user="u", secrets=secrets, accept_new_host_key=True))
    store.create_preparation("web1", Options(http_proxy="http://u:proxy-unique-4715@proxy:3128"), "", STEP_NAMES)
    if database_url.startswith("sqlite"):
        store.database.execute_sql("PRAGMA wal_checkpoint(FULL)")
        path = database_url.split(":///", 1)[1]
        raw = b"".join(open(p, "rb").read() for p in (path, path + "-wal") if __import__("os").path.exists(p))
        text = raw.decode("latin-1")
    else:
        rows = store.database.execute_sql("SELECT s::text FROM server s UNION ALL SELECT p::text FROM preparation p").fetchall()
        text = " ".join(r[0] for r in rows)
    for secret in ("key-body-unique", "phrase-unique", "password-unique", "sudo-unique", "proxy-unique"):
        assert secret not in text
    # ... and they come back intact for the engine.
    server = store.get_server("web1")
    assert server.secrets == secrets
    assert store.find_preparation("web1").options.http_proxy == "http://u:proxy-unique-4715@proxy:3128"


def test_a_different_key_cannot_read_them_and_says_so(database_url, store):
    from serverprep.service.errors import StorageError

    store.create_server(spec())
    other = Blocking(database_url, SecretBox.from_passphrase("another key"))
    with pytest.raises(StorageError, match="secret key is not the one"):
        other.get_server("web1")
    other.close()


def test_key_file_is_created_private(tmp_path, monkeypatch):
    monkeypatch.delenv("SERVERPREP_SECRET_KEY", raising=False)
    SecretBox.load(tmp_path)
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    box = SecretBox.load(tmp_path)  # reused, not replaced
    assert SecretBox.load(tmp_path).open(box.seal("x")) == "x"


def test_a_version_1_database_is_upgraded_in_place(tmp_path):
    """Migration 2 adds its columns to a database made by the first release, keeping the data; 4 adds its index."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Blocking(url, BOX)
    store.migrate()
    store.create_server(spec())
    db = store.database
    for table, column in (("preparation", "heartbeat_at"), ("preparation", "cancel_requested"), ("step", "remote_pid"), ("step", "remote_marker")):
        db.execute_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.execute_sql("DROP INDEX preparation_newest")
    db.execute_sql("DELETE FROM schema_version WHERE version > 1")
    assert current_version(db) == 1
    assert store.migrate() == [2, 3, 4]
    assert "preparation_newest" in {i.name for i in db.get_indexes("preparation")}
    assert {c.name for c in db.get_columns("step")} >= {"remote_pid", "remote_marker"}
    assert store.get_server("web1").name == "web1"
    prep, _ = store.create_preparation("web1", Options(), "", STEP_NAMES, "r1")
    assert store.get_preparation(prep.id).owner == "r1"
    store.close()


def test_the_live_window_is_bounded_in_text_and_a_reader_behind_it_reads_the_database(store):
    """Before, a preparation kept up to 20,000 entries in memory whatever their size: 320 MB of
    16 KiB lines. The window now also stops at keep_bytes characters (entries not yet stored stay);
    a reader that starts at the beginning gets every entry, the older ones from the database."""
    store.create_server(spec())
    prep, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)
    line = "x" * 16_000
    sizes = []

    async def run() -> list[int]:
        bus = LogBus(store.store, keep=10_000, max_lines=10_000, max_bytes=10**9, keep_bytes=256 * 1024)
        journal = bus.open(prep.id, 0, lambda text: text)
        for i in range(600):  # 9.6 MB of text
            journal.emit("update_packages", Stream.STDOUT, f"{i:04d} {line}")
            sizes.append(journal.window_chars)
            if i % 10 == 9:
                await journal.flush()
        seqs = []
        reader = bus.follow(prep.id, 0)
        async for batch in reader:
            seqs += [e.seq for e in batch]
            if seqs[-1] == 600:
                break
        await reader.aclose()
        await bus.close(prep.id)
        return seqs

    seqs = asyncio.run(run())
    assert seqs == list(range(1, 601))
    # The budget, half of it again before a trim comes, and what is not stored yet (at most 10 lines here).
    assert max(sizes) <= 1.5 * 256 * 1024 + 11 * 16_005, max(sizes)
    assert [e.seq for e in store.read_logs(prep.id, 0, 1000)] == list(range(1, 601))


def test_without_a_live_reader_the_window_keeps_only_what_is_not_stored(store):
    """Before, every running preparation kept its newest entries in memory (up to 10,000 and 4 MiB)
    whether anybody read them or not: at N=300 with 900 lines of apt output each, the service grew
    from 92 to 232 MiB. Now stored entries leave the window unless a live reader follows; a reader
    that comes later reads them from the database and still gets every entry once, in order."""
    store.create_server(spec())
    prep, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)

    async def run() -> tuple[list[int], list[int], list[int]]:
        bus = LogBus(store.store, keep=10_000, max_lines=10_000, max_bytes=10**9, keep_bytes=4 << 20)
        journal = bus.open(prep.id, 0, lambda text: text)
        held = []
        for i in range(500):
            journal.emit("update_packages", Stream.STDOUT, f"Get:{i} http://deb.debian.org/debian bookworm/main")
        held.append(len(journal.window))  # not stored yet: held
        await journal.flush()
        held.append(len(journal.window))  # stored, nobody reading: gone
        reader = bus.follow(prep.id, 0)
        seqs = [e.seq for e in await anext(reader)]  # 1..500, from the database
        for i in range(100):
            journal.emit("update_packages", Stream.STDOUT, f"live {i}")
        await journal.flush()
        held.append(len(journal.window))  # a reader follows: the window keeps what it may read
        while seqs[-1] < 600:
            seqs += [e.seq for e in await anext(reader)]
        await reader.aclose()
        held.append(len(journal.window))  # the reader left: gone again
        chars = journal.window_chars
        await bus.close(prep.id)
        return seqs, held, [chars]

    seqs, held, chars = asyncio.run(run())
    assert seqs == list(range(1, 601))
    assert held == [500, 0, 100, 0]
    assert chars == [0]


class GatedStore:
    """The real store, whose log writes wait until ``gate`` opens: a database that fell behind (a
    stand-in for the slowness; the rows still go to the real database)."""

    def __init__(self, store):
        self.store = store
        self.gate = asyncio.Event()

    async def append_logs(self, prep_id, entries, changes=()):
        await self.gate.wait()
        await self.store.append_logs(prep_id, entries, changes)


class Chunks:
    """A command's output as the SSH channel hands it over, counting the reads."""

    def __init__(self, chunks):
        self.chunks, self.reads = list(chunks), 0

    async def read(self, n=-1):
        self.reads += 1
        return self.chunks.pop(0) if self.chunks else b""


@pytest.mark.parametrize("path", ["lines of a read at once", "line by line"])
def test_output_waits_while_the_unstored_backlog_is_full(store, path):
    """Before, a command's output was read as fast as it came whatever the database did: entries
    waiting to be stored had no bound across preparations (67,000 entries, 5.6 MB of text at once
    in the fleet bench at N=300). Now past --max-unstored-bytes the reader stops reading (the
    command waits on its SSH channel) until the database has caught up to half of it, and every
    line is still stored, once, in order. The real line reader (``lines.pump``) and Journal; the
    slow database is a gate in front of the real store. Both ways into the log stop at the first
    line past the budget: the lines of one read at once (``Run.emit_lines``, how a step's output
    goes) and one by one (``Run.emit``)."""
    from serverprep.service.journal import ENTRY_BYTES
    from serverprep.service.lines import Budget, per_line, pump
    from serverprep.service.runner import Run

    store.create_server(spec())
    prep, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)
    limit = 1 << 20
    chunk = b"".join(b"Get:%05d http://deb.debian.org/debian bookworm/main amd64 package %s\n" % (i, b"x" * 30) for i in range(600))

    async def run() -> tuple[int, int, bool, list[int]]:
        gated = GatedStore(store.store)
        bus = LogBus(gated, keep=10_000, max_lines=10**6, max_bytes=10**9, keep_bytes=4 << 20, backlog_bytes=limit)
        journal = bus.open(prep.id, 0, lambda text: text)
        running = Run(prep, None, journal, current_step="install_docker")  # type: ignore[arg-type]  # no server needed to log
        output = Chunks([chunk] * 200)  # 120,000 lines, 11 MB
        handler = running.emit_lines if path == "lines of a read at once" else per_line(running.emit)
        reading = asyncio.create_task(pump(output, Stream.STDOUT, handler, Budget(None)))
        await asyncio.sleep(0.5)
        paused = (output.reads, bus.backlog.size, reading.done())
        gated.gate.set()
        await reading
        await bus.close(prep.id)
        return *paused, [(e.seq, e.step) for e in await store.store.read_logs(prep.id, 0, 200_000)]

    reads, size, finished, stored = asyncio.run(run())
    per_chunk = sum(len(line) + ENTRY_BYTES for line in chunk.decode().splitlines())  # 175 KB
    assert not finished and reads == -(-limit // per_chunk), reads  # paused inside the chunk that crossed 1 MiB
    assert limit <= size <= limit + 300, size  # stopped at the first line past the budget
    assert stored == [(seq, "install_docker") for seq in range(1, 120_001)]


def test_a_journal_that_cannot_store_gives_its_share_of_the_backlog_back(store):
    """Entries that a closing journal could not store leave with it: they must not hold every
    other preparation's output for ever."""
    from serverprep.service.errors import StorageError

    class Refuses:
        async def append_logs(self, prep_id, entries, changes=()):
            raise StorageError("database error: disk is full")

    async def run() -> tuple[bool, bool, int]:
        bus = LogBus(Refuses(), keep=100, max_lines=10**6, max_bytes=10**9, keep_bytes=1 << 20, backlog_bytes=1 << 20)
        journal = bus.open("p1", 0, lambda text: text)
        for i in range(6000):  # 1.2 MB with what each entry costs
            journal.emit("install_docker", Stream.STDOUT, f"line {i}")
        full = journal.hold() is not None
        with pytest.raises(StorageError):
            await bus.close("p1")
        return full, bus.backlog.hold() is None, bus.backlog.size

    assert asyncio.run(run()) == (True, True, 0)


def test_long_lines_are_stored_without_waiting_for_the_flush_interval(store):
    """Entries not yet stored must stay in memory: half the window's text budget pending starts a
    flush at once (as 2,000 entries do), instead of after the rest of the 0.2 s interval."""
    store.create_server(spec())
    prep, _ = store.create_preparation("web1", Options(), "", STEP_NAMES)

    async def run() -> tuple[bool, bool]:
        bus = LogBus(store.store, keep=10_000, max_lines=10_000, max_bytes=10**9, keep_bytes=256 * 1024)
        journal = bus.open(prep.id, 0, lambda text: text)
        for _ in range(7):
            journal.emit("update_packages", Stream.STDOUT, "x" * 16_000)
        before = journal._full.is_set()  # 112,000 characters pending: under half the budget
        for _ in range(2):
            journal.emit("update_packages", Stream.STDOUT, "x" * 16_000)
        after = journal._full.is_set()  # 144,000: over it
        await bus.close(prep.id)
        return before, after

    assert asyncio.run(run()) == (False, True)
    assert len(store.read_logs(prep.id, 0, 100)) == 9


def test_a_failing_write_in_a_group_leaves_the_others_and_none_of_its_own(database_url):
    """Writes awaited at once share one transaction (the group commit). Proves, on real SQLite and
    PostgreSQL: a group of writes marked ``bare`` runs without a savepoint per write (SQLite's
    statement trace shows none); a write that raises after writing part of its work leaves none
    of it, and the other writes of its group are stored and answered as if each had run alone,
    whether it is bare (the group runs again in savepoints) or not (its savepoint undoes it, no
    second run); a lone bare write that fails is rolled back without a second run."""
    from serverprep.service.store.database import bare, writes

    store = Store(database_url, BOX)
    runs: list[str] = []
    statements: list[str] = []

    @bare
    @writes
    def put(s, name, trace=False):
        connection = s.database.connection()
        if trace and hasattr(connection, "set_trace_callback"):  # sqlite3: what this transaction sends from here on
            connection.set_trace_callback(statements.append)
        s.database.execute_sql(f"INSERT INTO scratch (name) VALUES ({s.database.param})", (name,))
        return name

    def half_then_fail(s, name):
        runs.append(name)
        put(s, name)  # part of its work, then an error
        raise ValueError(f"{name} failed after writing")

    bare_failing, refusing = bare(writes(half_then_fail)), writes(lambda s, name: half_then_fail(s, name))

    def stored(s):
        return {row[0] for row in s.database.execute_sql("SELECT name FROM scratch")}

    async def group(*calls):
        return await asyncio.gather(*(store.worker.call(fn, *args) for fn, *args in calls), return_exceptions=True)

    async def scenario():
        await store.migrate()
        await store.worker.call(writes(lambda s: s.database.execute_sql("CREATE TABLE scratch (name VARCHAR(20) PRIMARY KEY)")))
        ok = await group((put, "a1", True), (put, "a2"), (put, "a3"))
        clean = list(statements)
        mixed = await group((put, "b1"), (bare_failing, "b2"), (put, "b3"))
        alone = await group((bare_failing, "c1"),)
        refused = await group((put, "d1"), (refusing, "d2"), (put, "d3"))
        return ok, clean, mixed, alone, refused, await store.worker.call(stored)

    try:
        ok, clean, mixed, alone, refused, names = asyncio.run(scenario())
    finally:
        store.close()
    assert ok == ["a1", "a2", "a3"]
    if database_url.startswith("sqlite"):
        assert sum("INSERT" in sql for sql in clean) == 3 and not any("SAVEPOINT" in sql.upper() for sql in clean), clean
    for answers, name in ((mixed, "b"), (refused, "d")):
        assert answers[0] == f"{name}1" and answers[2] == f"{name}3"
        assert isinstance(answers[1], ValueError) and str(answers[1]) == f"{name}2 failed after writing"
    assert isinstance(alone[0], ValueError)
    assert names == {"a1", "a2", "a3", "b1", "b3", "d1", "d3"}  # nothing of b2, c1 or d2
    assert runs == ["b2", "b2", "c1", "d2"]  # b2 ran again in its own savepoint; c1 alone and d2 (not bare) did not


def test_an_sqlite3_error_on_the_raw_log_path_is_a_storage_error_for_the_whole_group(tmp_path):
    """The log's hot path runs sqlite3 directly, whose errors peewee has not wrapped. Proves: an
    ``sqlite3.OperationalError`` there (a disk that is full, here a missing table, which SQLite
    reports alike) fails every write of its group as a ``StorageError`` naming the cause, as
    peewee's own errors do, not as one write's refusal that the others outlive."""
    from serverprep.service.errors import StorageError
    from serverprep.service.store.database import bare, writes

    store = Store(f"sqlite:///{tmp_path / 'serverprep.db'}", BOX)

    @bare
    @writes
    def raw(s, table):
        s.database.connection().execute(f"INSERT INTO {table} (name) VALUES ('x')")
        return table

    async def scenario():
        await store.migrate()
        await store.worker.call(writes(lambda s: s.database.execute_sql("CREATE TABLE scratch (name TEXT)")))
        return await asyncio.gather(*(store.worker.call(raw, t) for t in ("scratch", "gone", "scratch")), return_exceptions=True)

    try:
        answers = asyncio.run(scenario())
    finally:
        store.close()
    assert all(isinstance(a, StorageError) and "no such table: gone" in str(a) for a in answers), answers

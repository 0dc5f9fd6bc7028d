"""Retention: old preparations are pruned by policy, never the latest or an active one, and SQLite gives
the space back. Real SQLite files (and PostgreSQL for the queries), the real `serverprep prune` command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

from conftest import register, wait_done
from harness.service import ServiceThread
from serverprep.drivers import STEP_NAMES
from serverprep.service.domain import LogEntry, Options, PrepChange, PrepState, Secrets, ServerSpec, Stream
from serverprep.service.secretbox import SecretBox
from serverprep.service.store import Store
from serverprep.service.store.retention import Policy
from serverprep.v1 import preparations_pb2 as pb


async def fill(url: str, box: SecretBox, servers: int = 3, per_server: int = 30, lines: int = 200) -> dict[str, list[str]]:
    """Servers with finished preparations (oldest first) and a last one left RUNNING."""
    store = Store(url, box)
    made: dict[str, list[str]] = {}
    try:
        await store.migrate()
        for n in range(servers):
            name = f"web{n}"
            await store.create_server(ServerSpec(name=name, host="10.0.0.1", port=22, user="admin", secrets=Secrets(password="pw"),
                                                 accept_new_host_key=True))
            made[name] = []
            for i in range(per_server):
                prep, _ = await store.create_preparation(name, Options(), "", STEP_NAMES, "r1")
                made[name].append(prep.id)
                entries = [LogEntry(seq=k, time=float(k), step="update_packages", stream=Stream.STDOUT, text=f"line {k} " + "x" * 200)
                           for k in range(1, lines + 1)]
                last = i == per_server - 1
                end = None if last else PrepChange(PrepState.SUCCEEDED if i % 2 else PrepState.FAILED, time.time(), "", "", "")
                await store.append_logs(prep.id, entries, [end] if end else [])
                if last:
                    await store.start_running(prep.id, "r1", time.time())
    finally:
        store.close()
    return made


def test_policy_keeps_the_latest_and_the_active_and_counts_per_server(database_url, tmp_path):
    box = SecretBox.from_passphrase("retention")
    made = asyncio.run(fill(database_url, box, servers=2, per_server=6, lines=3))

    async def check() -> None:
        store = Store(database_url, box)
        try:
            removable = await store.removable(Policy(keep_last=2), 1000)
            assert {r.id for r in removable} == {p for ids in made.values() for p in ids[:4]}
            assert [r.created_at for r in removable] == sorted(r.created_at for r in removable)
            # Everything older than now would go by age alone, but never the latest (RUNNING) one.
            by_age = await store.removable(Policy(keep_days=1e-9), 1000, now=time.time() + 1)
            assert {r.id for r in by_age} == {p for ids in made.values() for p in ids[:-1]}
            assert await store.removable(Policy(), 1000) == []
            lines = await store.remove_preparations([r.id for r in removable])
            assert lines == 8 * 3
            for name, ids in made.items():
                kept = [p.id for p in await store.list_preparations(name, 100, None)]
                assert kept == list(reversed(ids[4:])), name
        finally:
            store.close()

    asyncio.run(check())


def test_prune_shows_then_removes_and_the_file_shrinks(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'serverprep.db'}"
    made = asyncio.run(fill(url, SecretBox.load(data)))

    def prune(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "prune", "--data-dir", str(data), *args],
                              capture_output=True, text=True, timeout=120)

    shown = prune("--retain-last", "5", "--dry-run", "--json")
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)["preparations"]
    assert len(listed) == 3 * 25 and {r["id"] for r in listed} == {p for ids in made.values() for p in ids[:25]}
    text = prune("--retain-last", "5", "--dry-run")
    assert "75 preparations would be removed" in text.stdout and text.stdout.count("would remove") == 75
    size_before = (data / "serverprep.db").stat().st_size
    done = prune("--retain-last", "5", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    size_after = (data / "serverprep.db").stat().st_size
    print(f"\nprune --retain-last 5: removed {result['removed']} preparations ({result['log_lines']} log lines); "
          f"database {size_before:,} -> {size_after:,} bytes on disk")
    assert (result["removed"], result["log_lines"]) == (75, 75 * 200)
    assert size_after < size_before / 3
    assert prune("--retain-last", "5", "--dry-run", "--json").stdout.count('"id"') == 0
    nothing = prune()  # the default policy keeps the last 50 per server
    assert nothing.returncode == 0 and "removed 0 preparations" in nothing.stdout, nothing.stderr


def test_the_service_prunes_in_the_background(tmp_path, sim):
    svc = ServiceThread(tmp_path / "data", retain_last=2, prune_interval=0.3).start()
    try:
        with svc.client() as client:
            register(client, sim)
            ids = [wait_done(client, "sim", client.prepare("sim", docker_source="distro").id).id for _ in range(4)]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(list(client.list_preparations("sim"))) > 2:
                time.sleep(0.1)
            kept = [p.id for p in client.list_preparations("sim")]
            assert kept == list(reversed(ids[2:]))
            assert client.status("sim").state == pb.PREPARATION_STATE_SUCCEEDED
    finally:
        svc.stop()

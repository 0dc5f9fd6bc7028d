"""Group commits of small writes: log appends with a savepoint each (as before b18d2c7) and bare.

    .venv/bin/python bench/groups.py --writers 64 --appends 100 --rounds 2

Each of W writers (one per preparation) appends 3-line batches to one SQLite file, one batch
awaited at a time, so the writes meet in group commits as a running fleet's do; once with the
event loop otherwise idle, once beside a task that keeps it busy (0.5 ms of Python, then a short
sleep, over and over), as a thousand SSH connections do. The modes alternate; the figures are
appends stored per second. It measures the store and the database thread, not a preparation.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from serverprep.drivers import STEP_NAMES
from serverprep.service.domain import LogEntry, Options, Secrets, ServerSpec, Stream
from serverprep.service.secretbox import SecretBox
from serverprep.service.store import Store, database, worker

BARE = worker._group


def _in_savepoints(session: database.Session, batch: worker.Batch, cut: Any = None) -> list[tuple[bool, Any]]:
    return worker._run_group(session, batch, trust_bare=False, cut=cut)


_in_savepoints.writes = True  # type: ignore[attr-defined]


async def run(mode: str, writers: int, appends: int, busy: bool) -> float:
    worker._group = BARE if mode == "bare" else _in_savepoints  # the Worker looks it up at each commit
    with tempfile.TemporaryDirectory(prefix="spb-groups-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'serverprep.db'}", SecretBox.from_passphrase("bench"))
        try:
            await store.migrate()
            preps = []
            for i in range(writers):
                await store.create_server(ServerSpec(name=f"s{i}", host="10.0.0.5", port=22, user="u", secrets=Secrets(password="pw"),
                                                     host_key="", accept_new_host_key=True))
                prep, _ = await store.create_preparation(f"s{i}", Options(), "", STEP_NAMES, "bench")
                preps.append(prep.id)
            stop = asyncio.Event()

            async def spin() -> None:
                while not stop.is_set():
                    t = time.perf_counter()
                    while time.perf_counter() - t < 0.0005:
                        pass
                    await asyncio.sleep(0.0002)

            async def writer(prep_id: str) -> None:
                for k in range(appends):
                    entries = [LogEntry(seq=3 * k + j + 1, time=time.time(), step="install_docker", stream=Stream.STDOUT,
                                        text=f"Setting up package-{k}-{j} ...") for j in range(3)]
                    await store.append_logs(prep_id, entries)

            spinner = asyncio.create_task(spin()) if busy else None
            started = time.perf_counter()
            await asyncio.gather(*(writer(p) for p in preps))
            took = time.perf_counter() - started
            stop.set()
            if spinner:
                await spinner
            return writers * appends / took
        finally:
            store.close()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--writers", type=int, default=64, help="preparations appending at once (1..1000; default 64)")
    p.add_argument("--appends", type=int, default=100, help="appends per writer (1..10,000; default 100)")
    p.add_argument("--rounds", type=int, default=2, help="rounds, modes alternating (1..10; default 2)")
    args = p.parse_args(argv)
    if not (1 <= args.writers <= 1000 and 1 <= args.appends <= 10_000 and 1 <= args.rounds <= 10):
        p.error("--writers 1..1000, --appends 1..10,000, --rounds 1..10")
    print("| event loop | savepoint per write (appends/s) | bare (appends/s) |\n|---|---|---|")
    for busy in (False, True):
        figures: dict[str, list[str]] = {"savepoints": [], "bare": []}
        for _ in range(args.rounds):
            for mode in figures:
                figures[mode].append(f"{asyncio.run(run(mode, args.writers, args.appends, busy)):,.0f}")
        print(f"| {'busy' if busy else 'idle'} | {' / '.join(figures['savepoints'])} | {' / '.join(figures['bare'])} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

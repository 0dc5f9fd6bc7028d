"""The raw asyncssh floor: replay serverprep's recorded commands for N servers at once, nothing else.

    python bench/floor.py SPEC.json      # run by bench/fleet.py; prints one JSON line

SPEC holds the host, its ports (server i uses ports[i % len(ports)]), the user, key file, known_hosts file, the number of servers and the
recording (commands with their stdin and expected exit status, grouped per SSH connection).
Each server opens its connections in the recorded order, runs each connection's commands one
after another (stdin written, then EOF; all output read), and closes a connection after its last
command. No parsing, no storage, no logs: the least any tool must do to send the same work.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import asyncssh


async def one_server(spec: dict, index: int) -> str | None:
    for group in spec["connections"]:
        try:
            async with asyncssh.connect(
                spec["host"], spec["ports"][index % len(spec["ports"])], username=spec["user"], client_keys=[spec["key_file"]],
                known_hosts=spec["known_hosts"], agent_path=None, config=[], connect_timeout=60,
            ) as conn:
                for command in group:
                    process = await conn.create_process(command["command"], encoding=None)
                    if command["stdin"]:
                        process.stdin.write(command["stdin"].encode())
                    process.stdin.write_eof()
                    completed = await process.wait()
                    if completed.exit_status != command["status"]:
                        return f"server {index}: exit {completed.exit_status} where serverprep saw {command['status']}"
        except (OSError, asyncssh.Error) as e:
            return f"server {index}: {type(e).__name__}: {e}"
    return None


async def main(spec: dict) -> dict:
    started = time.perf_counter()
    failures = await asyncio.gather(*(one_server(spec, i) for i in range(spec["servers"])))
    wall = time.perf_counter() - started
    return {"wall": wall, "failures": [f for f in failures if f]}


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(json.dumps(asyncio.run(main(json.load(f)))))

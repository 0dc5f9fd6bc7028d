"""AsyncClient under asyncio against the real service and a simulated server: the full flow, errors, pagination, concurrency."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

import serverprep.clients as sp
from harness.targets import behave
from serverprep.clients import AsyncClient


@pytest.mark.sshd
def test_full_flow_under_asyncio(service, sim):

    async def main() -> tuple[list[sp.LogEntry], sp.Preparation, sp.Preparation]:
        async with AsyncClient(service.address) as c:
            assert await c.health() == "SERVING"
            server = await c.create_server("sim", host=sim.host, port=sim.port, user=sim.user,
                                           private_key=sim.key.private, host_key=sim.host_key)
            assert server.has_private_key and server.host_key == sim.host_key
            plan = await c.plan("sim", docker_source="distro")
            assert plan.driver == "apt"
            prep = await c.prepare("sim", docker_source="distro", request_id="async-1")
            assert (await c.prepare("sim", docker_source="distro", request_id="async-1")).id == prep.id
            entries = [e async for e in c.stream_logs("sim", prep.id)]
            final = await c.status("sim")
            behave(sim, "apt-get", "echo 'E: nope' >&2; exit 100")
            failed = await c.prepare("sim", docker_source="distro")
            async for _ in c.stream_logs("sim", failed.id):
                pass
            behave(sim, "apt-get", "")
            retried = await c.retry("sim")
            async with contextlib.aclosing(c.stream_logs("sim", retried.id, after_seq=retried.last_seq)) as tail:
                async for _ in tail:
                    pass
            history = [p.id async for p in c.list_preparations("sim", page_size=1)]
            assert history == [failed.id, prep.id]  # newest first, one page at a time
            return entries, final, await c.status("sim")

    entries, final, retried = asyncio.run(main())
    assert final.state == sp.PREPARATION_STATE_SUCCEEDED and retried.state == sp.PREPARATION_STATE_SUCCEEDED
    assert retried.attempt == 2
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[-1].preparation_state == sp.PREPARATION_STATE_SUCCEEDED
    assert {e.step for e in entries if e.step_state == sp.STEP_STATE_SUCCEEDED} >= {"detect_os", "verify_docker"}


def test_errors_and_pagination_under_asyncio(service):
    async def main() -> None:
        async with AsyncClient(service.address) as c:
            # Many calls at once on one channel.
            await asyncio.gather(*(c.create_server(f"web{i}", host="127.0.0.1", user="u", password="pw",
                                                   accept_new_host_key=True) for i in range(5)))
            assert [s.name async for s in c.list_servers(page_size=2)] == [f"web{i}" for i in range(5)]
            with pytest.raises(sp.ServerNotFound):
                await c.get_server("nope")
            with pytest.raises(sp.ServerExists):
                await c.create_server("web0", host="127.0.0.1", user="u", password="pw", accept_new_host_key=True)
            with pytest.raises(sp.InvalidArgumentError) as e:
                await c.update_server("web0", host="bad host!")
            assert "host" in e.value.violations and "origin" not in e.value.metadata
            with pytest.raises(sp.InvalidArgumentError) as e:
                await c.prepare("web0", docker_source="bogus")
            assert e.value.metadata == {"origin": "client"}
            with pytest.raises(sp.PreparationNotFound):
                async for _ in c.stream_logs("web0"):
                    pass
            updated = await c.update_server("web0", port=2222, sudo_password="x")
            assert (updated.port, updated.has_sudo_password) == (2222, True)
            await c.delete_server("web0")
            with pytest.raises(sp.ServerNotFound):
                await c.get_server("web0")
        async with AsyncClient("127.0.0.1:1", timeout=5) as nowhere:
            with pytest.raises(sp.ServiceUnavailable):
                await nowhere.health()

    asyncio.run(main())

"""The web gateway's fleet rows: when Status and the live stream disagree for a moment, and which servers a sweep asks about.

The service sends log entries to live readers before it stores them, so a Status asked right after
a transition can be older than what the stream showed. These tests drive the gateway's Fleet with a
scripted Status (a stand-in for the service, beside the browser and gateway tests that use the real
one) to prove the rule: an older Status is asked again until it catches up, and believed after a
grace period (entries a crashed service never stored must not freeze a row). A sweep asks Status
only for the servers whose brief in ListServers changed (all of them when the service sends none).
They prove the gateway's bookkeeping, not the service's timing.
"""

from __future__ import annotations

import asyncio

from serverprep.clients.errors import PreparationNotFound
from serverprep.clients.types import (
    LOG_STREAM_EVENT,
    PREPARATION_STATE_FAILED,
    PREPARATION_STATE_RUNNING,
    PREPARATION_STATE_SUCCEEDED,
    STEP_STATE_RUNNING,
    STEP_STATE_SUCCEEDED,
    LogEntry,
    Preparation,
    PreparationSummary,
    Server,
)
from serverprep.clients.web import fleet, sse
from serverprep.clients.web.convert import STEP_NAMES


def preparation(state: int, last_seq: int, done: int, message: str = "") -> Preparation:
    """Steps before ``done`` SUCCEEDED, step ``done`` RUNNING (none when done == 7)."""
    prep = Preparation(id="p1", server="web1", state=state, last_seq=last_seq, attempt=1)
    prep.create_time.FromSeconds(1_800_000_000)
    for i, name in enumerate(STEP_NAMES):
        step = prep.steps.add(name=name, state=STEP_STATE_SUCCEEDED if i < done else STEP_STATE_RUNNING if i == done else 0)
        if i < done:
            step.message = message
    return prep


class ScriptedStatus:
    """Answers Status with the next preparation of a script, repeating the last one."""

    def __init__(self, *answers: Preparation):
        self.answers = list(answers)
        self.calls = 0

    async def status(self, name: str) -> Preparation:
        self.calls += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def event(seq: int, step: str = "", step_state: int = 0, prep_state: int = 0) -> LogEntry:
    return LogEntry(seq=seq, stream=LOG_STREAM_EVENT, step=step, step_state=step_state, preparation_state=prep_state)


def bare_fleet(client) -> fleet.Fleet:  # type: ignore[no-untyped-def]
    """A Fleet of ``client`` that follows no stream and sweeps only when a test says so."""
    return fleet.Fleet(client, sse.Hub(max_subscribers=1, backlog=10), refresh=60, max_streams=0)


def fleet_of(client: ScriptedStatus) -> fleet.Fleet:
    f = bare_fleet(client)
    f.rows["web1"] = fleet.Row("web1", "10.0.0.5")
    return f


def copied(prep: Preparation) -> Preparation:
    """A message of its own, as from the wire."""
    answer = Preparation()
    answer.CopyFrom(prep)
    return answer


async def settle(f: fleet.Fleet, until, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not until():
            await asyncio.sleep(0.05)


def test_a_status_older_than_the_stream_is_asked_again_until_it_catches_up():
    """The stream shows verify_docker SUCCEEDED and the end; the first Status is from before they were
    stored. The row ends with the stored preparation (its messages), not the stale one."""
    fresh = preparation(PREPARATION_STATE_SUCCEEDED, 12, 7, message="exit 0")
    client = ScriptedStatus(preparation(PREPARATION_STATE_RUNNING, 10, 6), preparation(PREPARATION_STATE_RUNNING, 10, 6), fresh)

    async def go() -> fleet.Fleet:
        f = fleet_of(client)
        f.apply_status("web1", preparation(PREPARATION_STATE_RUNNING, 10, 6))
        f.apply_entry("web1", "p1", event(11, "verify_docker", STEP_STATE_SUCCEEDED))
        f.apply_entry("web1", "p1", event(12, prep_state=PREPARATION_STATE_SUCCEEDED))
        await settle(f, lambda: f.rows["web1"].prep == fresh)
        await f.close()
        return f

    f = asyncio.run(go())
    assert client.calls >= 3 and f.rows["web1"].seq == 12


def test_a_status_that_stays_behind_is_believed_after_the_grace_period(monkeypatch):
    """A service that crashed before storing what the stream showed comes back with a lower last_seq and
    ends the preparation FAILED: the row shows that, and the next transition (a Retry) applies again."""
    monkeypatch.setattr(fleet, "BEHIND_GRACE", 0.4)
    after_crash = preparation(PREPARATION_STATE_FAILED, 8, 5)
    client = ScriptedStatus(after_crash)

    async def go() -> fleet.Fleet:
        f = fleet_of(client)
        f.apply_status("web1", preparation(PREPARATION_STATE_RUNNING, 8, 5))
        f.apply_entry("web1", "p1", event(9, "start_docker", STEP_STATE_SUCCEEDED))
        f.apply_entry("web1", "p1", event(10, "configure_user", STEP_STATE_RUNNING))
        await settle(f, lambda: f.rows["web1"].prep == after_crash)
        f.apply_entry("web1", "p1", event(9, "", prep_state=PREPARATION_STATE_RUNNING))  # a Retry's first transition
        await f.close()
        return f

    f = asyncio.run(go())
    assert client.calls >= 2 and f.rows["web1"].seq == 9 and f.rows["web1"].prep.state == PREPARATION_STATE_RUNNING
    assert f.rows["web1"].prep.attempt == 2  # a FAILED preparation RUNNING again is its next attempt


class ListingClient:
    """Lists servers with the briefs given (``None``: a server never prepared) and answers Status
    with each server's preparation, counting the calls per server."""

    def __init__(self, preps: dict[str, Preparation | None], briefs: bool = True):
        self.preps = preps
        self.briefs = briefs
        self.asked: list[str] = []

    async def list_servers(self, page_size: int):  # type: ignore[no-untyped-def]
        for name, prep in self.preps.items():
            server = Server(name=name, host="10.0.0.5")
            server.create_time.FromSeconds(1_700_000_000)
            if prep is not None and self.briefs:
                server.latest_preparation.CopyFrom(PreparationSummary(id=prep.id, state=prep.state, attempt=prep.attempt,
                                                                      last_seq=prep.last_seq))
            yield server

    async def status(self, name: str) -> Preparation:
        self.asked.append(name)
        prep = self.preps[name]
        if prep is None:
            raise PreparationNotFound(f"server {name!r} has not been prepared yet")
        return copied(prep)


def test_a_sweep_asks_status_only_for_the_servers_whose_brief_changed():
    """1,000 servers, 3 prepared: the first sweep asks for those 3; the next asks for none; then one
    is retried and one more is prepared elsewhere: it asks for those 2 and their rows show them."""
    names = [f"n{i:04d}" for i in range(1000)]
    preps: dict[str, Preparation | None] = dict.fromkeys(names)
    for name in names[:3]:
        preps[name] = preparation(PREPARATION_STATE_SUCCEEDED, 12, 7)
        preps[name].id, preps[name].server = f"p-{name}", name
    client = ListingClient(preps)

    async def go() -> tuple[list[str], list[str], list[str], fleet.Fleet]:
        f = bare_fleet(client)
        await f.sweep()
        first, client.asked = client.asked, []
        await f.sweep()
        second, client.asked = client.asked, []
        retried = copied(preps[names[1]])
        retried.attempt, retried.state, retried.last_seq = 2, PREPARATION_STATE_RUNNING, 13
        elsewhere = preparation(PREPARATION_STATE_RUNNING, 2, 0)
        elsewhere.id, elsewhere.server = "p-new", names[500]
        preps[names[1]], preps[names[500]] = retried, elsewhere
        await f.sweep()
        await f.close()
        return first, second, client.asked, f

    first, second, third, f = asyncio.run(go())
    assert sorted(first) == names[:3] and second == [] and sorted(third) == [names[1], names[500]]
    assert f.rows[names[1]].prep.attempt == 2 and f.rows[names[500]].prep.id == "p-new"
    assert f.rows[names[999]].prep is None


def test_each_field_of_the_brief_alone_makes_a_sweep_ask():
    """A preparation not followed that only logs (last_seq), only changes state, only gets a new
    attempt, or is replaced (id): each alone is a change the next sweep asks Status about."""
    base = preparation(PREPARATION_STATE_RUNNING, 5, 2)
    preps: dict[str, Preparation | None] = {}
    for name in ("seq", "state", "attempt", "id", "same"):
        preps[name] = copied(base)
        preps[name].id, preps[name].server = f"p-{name}", name
    client = ListingClient(preps)

    async def go() -> list[str]:
        f = bare_fleet(client)
        await f.sweep()
        client.asked = []
        preps["seq"].last_seq = 6
        preps["state"].state = PREPARATION_STATE_SUCCEEDED
        preps["attempt"].attempt = 2
        preps["id"].id = "p-id-2"
        await f.sweep()
        await f.close()
        return client.asked

    assert sorted(asyncio.run(go())) == ["attempt", "id", "seq", "state"]


def test_without_any_brief_a_sweep_asks_status_for_every_server_as_before():
    """A service older than the brief (or a fleet never prepared): Status for each server, so that a
    preparation started by another client is still found."""
    prep = preparation(PREPARATION_STATE_SUCCEEDED, 12, 7)
    client = ListingClient({"web1": prep, "web2": None}, briefs=False)

    async def go() -> fleet.Fleet:
        f = bare_fleet(client)
        await f.sweep()
        await f.sweep()
        await f.close()
        return f

    f = asyncio.run(go())
    assert sorted(client.asked) == ["web1", "web1", "web2", "web2"] and f.rows["web1"].prep == prep

"""Mistakes mypy --strict must find in a consumer of serverprep-client; each line marked ``# error: CODE`` is one."""

from __future__ import annotations

from serverprep.clients import AsyncClient, Client, PreparationActive


def mistakes(sp: Client) -> None:
    sp.prepare(42)  # error: arg-type
    sp.prepare("web1", docker_sauce="distro")  # error: call-arg
    sp.update_server("web1", hots="10.0.0.6")  # error: call-arg
    sp.update_server("web1", port="22")  # error: arg-type
    sp.create_server("web1", host="10.0.0.5")  # error: call-arg
    sp.stream_logs("web1", after_seq="5")  # error: arg-type
    for server in sp.list_servers():
        server.port.upper()  # error: attr-defined
    count: int = PreparationActive("x").preparation_id  # error: assignment
    print(count)


async def async_mistakes(sp: AsyncClient) -> None:
    for entry in sp.stream_logs("web1"):  # error: attr-defined
        print(entry)
    prep = sp.status("web1")
    print(prep.id)  # error: attr-defined

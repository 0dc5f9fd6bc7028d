"""ServerService against a real gRPC server on a free port with a fresh SQLite database."""

import grpc
import pytest

from conftest import wait_done
from harness.targets import free_port
from serverprep.clients.client import ServerprepClientError

KEY_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ"


def add(client, name="web1", **kw):
    args = dict(host="10.0.0.5", user="admin", password="pw-123456", host_key=KEY_LINE)
    args.update(kw)
    return client.create_server(name, **args)


def test_create_get_list_delete(client):
    created = add(client, sudo_password="sudo-secret-1")
    assert (created.name, created.port, created.has_password, created.has_sudo_password, created.has_private_key) == ("web1", 22, True, True, False)
    assert created.host_key == KEY_LINE and created.host_key_fingerprint.startswith("SHA256:")
    assert client.get_server("web1") == created
    assert [s.name for s in client.list_servers()] == ["web1"]
    client.delete_server("web1")
    with pytest.raises(ServerprepClientError) as e:
        client.get_server("web1")
    assert (e.value.code, e.value.reason) == (grpc.StatusCode.NOT_FOUND, "SERVER_NOT_FOUND")


def test_secrets_are_never_returned(client):
    server = add(client, password="very-secret-pw", sudo_password="very-secret-sudo")
    assert "very-secret" not in str(server) + str(list(client.list_servers()))


def test_duplicate_name_is_already_exists(client):
    add(client)
    with pytest.raises(ServerprepClientError) as e:
        add(client)
    assert (e.value.code, e.value.reason) == (grpc.StatusCode.ALREADY_EXISTS, "SERVER_EXISTS")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"name": "bad name"}, "name"),
        ({"name": "-leading"}, "name"),
        ({"host": "bad host!"}, "host"),
        ({"host": ""}, "host"),
        ({"port": 70000}, "port"),
        ({"user": "$(touch /tmp/pwned)"}, "user"),
        ({"user": "-oProxyCommand=x"}, "user"),
        ({"password": "", "private_key": ""}, "credentials"),
        ({"private_key": "not a key"}, "credentials.private_key"),
        ({"sudo_password": "two\nlines"}, "credentials.sudo_password"),
        ({"host_key": "ssh-ed25519 garbage"}, "host_key"),
        ({"host_key": ""}, "host_key"),
        ({"accept_new_host_key": True}, "host_key"),
    ],
)
def test_invalid_input_names_the_field(client, kwargs, field):
    name = kwargs.pop("name", "web1")
    with pytest.raises(ServerprepClientError) as e:
        add(client, name, **kwargs)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.reason == "INVALID_ARGUMENT"
    assert field in e.value.violations, e.value.violations


def test_list_paginates_in_name_order(client):
    for i in range(7):
        add(client, f"s{i}")
    seen = [s.name for s in client.list_servers(page_size=3)]
    assert seen == [f"s{i}" for i in range(7)]


def test_garbage_page_token_is_invalid_argument(client):
    from serverprep.v1 import servers_pb2 as spb

    with pytest.raises(grpc.RpcError) as e:
        client.servers.ListServers(spb.ListServersRequest(page_token="%%%"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_update_changes_only_the_named_fields(client):
    add(client, sudo_password="old-sudo-pw")
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFsJX6Mg0bvmTHe3LUNQbnLxlOSsdIq1vUP4N0DxIK8P"
    updated = client.update_server("web1", host="10.0.0.6", host_key=other, sudo_password="")
    assert (updated.host, updated.port, updated.user, updated.host_key) == ("10.0.0.6", 22, "admin", other)
    assert updated.has_password and not updated.has_sudo_password
    reset = client.update_server("web1", accept_new_host_key=True)
    assert (reset.host_key, reset.accept_new_host_key) == ("", True)


def test_update_is_validated(client):
    add(client)
    for changes, field in (({"host": "bad host!"}, "host"), ({"password": ""}, "credentials"), ({}, "update_mask")):
        with pytest.raises(ServerprepClientError) as e:
            client.update_server("web1", **changes)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and field in e.value.violations
    with pytest.raises(ServerprepClientError) as e:
        client.update_server("nope", host="h")
    assert e.value.reason == "SERVER_NOT_FOUND"


def test_get_and_list_carry_the_newest_preparation_in_brief(client):
    """The brief is the preparation Status returns without an id, and changes with it: a new
    preparation (its id), a Retry (attempt, last_seq); a server never prepared has none.
    Preparations of an SSH port that refuses connections (they fail at once, for real)."""
    for name in ("down1", "fresh1"):
        client.create_server(name, host="127.0.0.1", port=free_port(), user="nobody", password="not-used", host_key=KEY_LINE)

    def briefs() -> dict[str, tuple]:
        listed = {s.name: s for s in client.list_servers(page_size=1)}  # one per page: the brief on every page
        for name, server in listed.items():
            assert client.get_server(name) == server
        return {n: (s.latest_preparation.id, s.latest_preparation.state, s.latest_preparation.attempt,
                    s.latest_preparation.last_seq) if s.HasField("latest_preparation") else None for n, s in listed.items()}

    def of(prep) -> tuple:
        return (prep.id, prep.state, prep.attempt, prep.last_seq)

    assert briefs() == {"down1": None, "fresh1": None}
    first = wait_done(client, "down1", client.prepare("down1", docker_source="distro").id, timeout=30)
    assert first.failure.reason == "CONNECTION_REFUSED" and first.last_seq > 0
    assert briefs() == {"down1": of(client.status("down1")), "fresh1": None} == {"down1": of(first), "fresh1": None}
    client.retry("down1", first.id)
    again = wait_done(client, "down1", first.id, timeout=30)
    assert (again.attempt, again.last_seq > first.last_seq) == (2, True)
    assert briefs()["down1"] == of(again)
    second = wait_done(client, "down1", client.prepare("down1", docker_source="distro").id, timeout=30)
    assert second.id != first.id and briefs()["down1"] == of(second) == of(client.status("down1"))
    updated = client.update_server("down1", host="127.0.0.2")  # every answer that returns the server carries it
    assert of(updated.latest_preparation) == of(second) and not client.create_server(
        "new1", host="127.0.0.1", user="nobody", password="not-used", host_key=KEY_LINE).HasField("latest_preparation")

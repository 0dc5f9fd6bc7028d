"""What a CONNECTION_LOST error says about why the connection closed (service/ssh.py).

Proves the wording on asyncssh's own exception types, with no connection: the reason asyncssh
gave when the connection closed is added once to the error of a call that only heard "SSH
connection closed", and a server's long or raw disconnect text is cut and cleaned. That asyncssh
calls ``connection_lost`` with its reason is proved by the real case (an sshd session frozen until
the keepalives run out): tests/service/test_faults.py's session-lost test.
"""

from __future__ import annotations

import asyncssh

from serverprep.service.errors import ConnectionLost
from serverprep.service.ssh import REASON_CHARS, Connection, _Client


def _closed(reason: Exception | None) -> Connection:
    client = _Client("")
    client.connection_lost(reason)
    return Connection(None, "", client)  # type: ignore[arg-type]  # never used: no call goes out


def test_a_call_that_heard_only_connection_closed_is_told_why() -> None:
    conn = _closed(asyncssh.ConnectionLost("Server not responding to keepalive"))
    error = conn.lost(asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "SSH connection closed"))
    assert isinstance(error, ConnectionLost)
    assert error.message == "SSH connection lost: SSH connection closed (Server not responding to keepalive)"
    assert conn.closed_while("the step ran") == "the SSH connection closed while the step ran (Server not responding to keepalive)"
    # The reason is not said twice when the error is asyncssh's own.
    assert conn.lost(asyncssh.ConnectionLost("Server not responding to keepalive")).message == (
        "SSH connection lost: Server not responding to keepalive")


def test_a_clean_close_adds_nothing_and_a_servers_long_or_raw_text_is_cut_and_cleaned() -> None:
    assert _closed(None).closed_while("the command ran") == "the SSH connection closed while the command ran"
    text = "bye\n\x1b[2J" + "x" * 100_000
    server = asyncssh.DisconnectError(asyncssh.DISC_PROTOCOL_ERROR, text)
    conn = _closed(server)
    assert conn.closed_because() == ("bye  [2J" + "x" * 100_000)[:REASON_CHARS]
    # The same text as the error a call raised: cut and cleaned there too, and not said twice.
    assert conn.lost(server).message == "SSH connection lost: " + conn.closed_because()
    assert "\n" not in conn.closed_while("the step ran") and len(conn.closed_while("the step ran")) < REASON_CHARS + 50


def test_the_client_keeps_the_reason_as_text_not_the_exception() -> None:
    """asyncssh raises the same exception again in every call that waited on the connection; kept,
    its traceback would hold those calls' frames and the connection until a full collection."""
    client = _Client("")
    client.connection_lost(asyncssh.ConnectionLost("Connection lost"))
    assert client.lost == "Connection lost"

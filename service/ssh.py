"""SSH to the servers being prepared: the only module that imports asyncssh."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable
from dataclasses import dataclass, field

import asyncssh

from serverprep.service.aio import checkpoint
from serverprep.service.domain import Secrets, Stream
from serverprep.service.errors import (
    AuthFailed,
    ConnectFailed,
    ConnectionLost,
    HostKeyMismatch,
    RemoteError,
    StepTimeout,
)
from serverprep.service.lines import Budget, LineHandler, LinesHandler, per_line
from serverprep.service.lines import pump as read_lines

PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
                     "aes128-ctr", "aes192-ctr", "aes256-ctr")



@dataclass(frozen=True)
class Target:
    host: str
    port: int
    user: str
    secrets: Secrets = field(default_factory=Secrets, repr=False)
    #: Pinned key ("ssh-ed25519 AAAA..."); empty to accept (and report) the first one seen.
    host_key: str = ""
    connect_timeout: float = 15.0
    keepalive_interval: float = 10.0
    keepalive_count_max: int = 3


def fingerprint(host_key: str) -> str:
    """SHA256 fingerprint of an OpenSSH public key line, as ssh-keygen -l shows it."""
    try:
        return asyncssh.import_public_key(host_key).get_fingerprint("sha256")
    except (asyncssh.KeyImportError, ValueError):
        return ""


def normalize_host_key(text: str) -> str:
    """Return "TYPE BASE64" for a public key line, or raise ValueError."""
    try:
        key = asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError) as e:
        raise ValueError(f"not an OpenSSH public key: {e}") from None
    return _openssh(key)


def _openssh(key: asyncssh.SSHKey) -> str:
    kind, data = key.export_public_key("openssh").decode().split()[:2]
    return f"{kind} {data}"


def check_private_key(text: str, passphrase: str) -> None:
    """Raise ValueError when a private key cannot be read (bad text, wrong passphrase)."""
    try:
        asyncssh.import_private_key(text, passphrase or None)
    except (asyncssh.KeyImportError, ValueError) as e:
        raise ValueError(f"cannot read the private key: {e}") from None


def _host_key_algs(pinned: str) -> list[str] | str:
    kind = pinned.split()[0]
    if kind == "ssh-rsa":
        return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
    return [kind]


#: The most of a reason for a closed connection that goes into an error message.
REASON_CHARS = 200


def _reason(text: str) -> str:
    """asyncssh's or the server's words for a closed connection, fit for a one-line message: a
    server's disconnect text is its own, so control characters go and at most REASON_CHARS stay."""
    return "".join(c if c.isprintable() else " " for c in text[:REASON_CHARS])


class _Client(asyncssh.SSHClient):
    def __init__(self, pinned: str):
        self.pinned = asyncssh.import_public_key(pinned) if pinned else None
        self.presented: asyncssh.SSHKey | None = None
        #: Why the connection closed when it did not close cleanly (no keepalive answer, a reset):
        #: a call waiting on it hears only "SSH connection closed", so its error adds this. The
        #: text only: the exception is raised again in the calls that waited, and its traceback
        #: would hold their frames (and this connection) until a full collection.
        self.lost = ""

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.presented = key
        return self.pinned is None or key == self.pinned

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = _reason(str(exc)) if exc is not None else ""


class Connection:
    """One SSH connection; commands run on it one after another or concurrently."""

    def __init__(self, conn: asyncssh.SSHClientConnection, host_key: str, client: _Client):
        self._conn = conn
        self._client = client
        #: The host key the server presented ("TYPE BASE64").
        self.host_key = host_key

    def closed_because(self) -> str:
        """Why the connection closed, in asyncssh's words ("" while open, when it closed cleanly,
        or when serverprep closed it)."""
        return self._client.lost

    def lost(self, e: BaseException) -> RemoteError:
        """The error for a call that failed because the connection went away, with why it did."""
        if isinstance(e, RemoteError):
            return e
        return ConnectionLost(self._because(f"SSH connection lost: {_reason(str(e))}"))

    def closed_while(self, what: str) -> str:
        """The message for a connection that closed while ``what`` happened, with why when known."""
        return self._because(f"the SSH connection closed while {what}")

    def _because(self, message: str) -> str:
        why = self.closed_because()
        return f"{message} ({why})" if why and why not in message else message

    async def run(
        self,
        command: str,
        *,
        on_line: LineHandler,
        stdin: str | None = None,
        timeout: float | None = None,
        max_output: int | None = None,
    ) -> int:
        """Run ``command``, passing each output line to ``on_line`` as it arrives.

        Returns the exit status (255 when the remote killed it with a signal). More than
        ``max_output`` bytes of output stop it with OutputTooLarge.
        """
        try:
            process = await self._conn.create_process(command, encoding=None, stdin=asyncssh.PIPE)
        except (OSError, asyncssh.Error) as e:
            raise self.lost(e) from e
        budget = Budget(max_output)
        pumps = [
            asyncio.ensure_future(read_lines(process.stdout, Stream.STDOUT, per_line(on_line), budget)),
            asyncio.ensure_future(read_lines(process.stderr, Stream.STDERR, per_line(on_line), budget)),
        ]
        try:
            if stdin is not None:
                process.stdin.write(stdin.encode())
            process.stdin.write_eof()
            done, pending = await asyncio.wait(pumps, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION)
            failed = [p for p in pumps if p in done and not p.cancelled() and p.exception() is not None]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
            if pending:
                raise StepTimeout(f"no end after {timeout:.0f} s", exit_code=None)
            for pump in pumps:
                pump.result()
            async with asyncio.timeout(30):  # not wait_for: on 3.11 it can swallow a Cancel that lands as it ends
                completed = await process.wait()
        except TimeoutError:
            raise ConnectionLost("the command closed its output but no exit status came within 30 s") from None
        except (OSError, asyncssh.Error) as e:
            raise self.lost(e) from e
        finally:
            process.close()
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            # A pump's error raised here carries this frame, whose names hold the pumps, which hold
            # the error: without them, what the handlers refer to goes without a full collection.
            pumps = done = pending = failed = pump = None  # type: ignore[assignment]
        if completed.exit_status is None:
            if self._conn.is_closed():
                raise ConnectionLost(self.closed_while("the command ran"))
            return 255
        return completed.exit_status

    async def open_session(self, command: str, stdin: str = "") -> Session:
        """Start ``command`` and keep it open: lines go to the session's ``on_lines``, input can follow."""
        try:
            process = await self._conn.create_process(command, encoding=None, stdin=asyncssh.PIPE)
        except (OSError, asyncssh.Error) as e:
            raise self.lost(e) from e
        session = Session(self, process)
        if stdin:
            session.write(stdin)
        return session

    async def close(self) -> None:
        self._conn.close()
        try:
            async with asyncio.timeout(5):
                await self._conn.wait_closed()
        except (TimeoutError, OSError, asyncssh.Error):
            pass

    def is_closed(self) -> bool:
        return self._conn.is_closed()


def _ignore(stream: Stream, texts: list[str]) -> None:
    return None


class Session:
    """A remote command that stays open: its output, the complete lines of each read at once, goes
    to ``on_lines`` (which the caller may change between requests), and more input may be written
    at any time."""

    def __init__(self, conn: Connection, process: asyncssh.SSHClientProcess[bytes]):
        self.conn = conn
        self.process = process
        self.on_lines: LinesHandler = _ignore
        budget = Budget(None)
        self._pumps = [
            asyncio.ensure_future(read_lines(process.stdout, Stream.STDOUT, self._dispatch, budget)),
            asyncio.ensure_future(read_lines(process.stderr, Stream.STDERR, self._dispatch, budget)),
        ]
        #: Done when the command's output has ended (it exited, or the connection is gone).
        self.ended: asyncio.Future[None] = asyncio.ensure_future(self._end())

    def _dispatch(self, stream: Stream, texts: list[str]) -> Awaitable[None] | None:
        return self.on_lines(stream, texts)

    async def _end(self) -> None:
        await asyncio.gather(*self._pumps, return_exceptions=True)

    def write(self, text: str) -> None:
        try:
            self.process.stdin.write(text.encode())
        except (OSError, asyncssh.Error) as e:
            raise self.conn.lost(e) from e

    async def close(self, timeout: float = 10) -> int | None:
        """End the input, wait up to ``timeout`` for the command to exit, and return its exit status."""
        try:
            self.process.stdin.write_eof()
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.ended)
                completed = await self.process.wait()
            return completed.exit_status
        except (TimeoutError, OSError, asyncssh.Error):
            return None
        finally:
            self.process.close()
            for pump in self._pumps:
                pump.cancel()
            await asyncio.gather(*self._pumps, return_exceptions=True)


async def connect(target: Target) -> Connection:
    """Open a connection, verifying the server's key against the pinned one."""
    client = _Client(target.host_key)
    secrets = target.secrets
    keys = [asyncssh.import_private_key(secrets.private_key, secrets.private_key_passphrase or None)] if secrets.private_key else None
    where = f"{target.host}:{target.port}"
    try:
        conn, _ = await asyncssh.create_connection(
            lambda: client,
            target.host,
            target.port,
            username=target.user,
            client_keys=keys,
            password=secrets.password or None,
            agent_path=None,
            config=[],
            # Trust nothing by default: every key goes to _Client.validate_host_public_key.
            known_hosts=([], [], []),
            server_host_key_algs=_host_key_algs(target.host_key) if target.host_key else "default",
            connect_timeout=target.connect_timeout,
            login_timeout=target.connect_timeout,
            keepalive_interval=target.keepalive_interval,
            keepalive_count_max=target.keepalive_count_max,
            kbdint_auth=False,
            # AES-GCM first: one AEAD call per packet (with AES-NI on both ends), where asyncssh's
            # chacha20-poly1305 builds a cipher per packet; the rest of asyncssh's defaults follow.
            encryption_algs=PREFERRED_CIPHERS,
            compression_algs=None,
        )
    except asyncssh.HostKeyNotVerifiable as e:
        raise _mismatch(target, client.presented) from e
    except asyncssh.KeyExchangeFailed as e:
        if target.host_key:
            raise HostKeyMismatch(
                f"{where} offers no {target.host_key.split()[0]} host key, the pinned key's type: {e.reason}",
                metadata={"expected_fingerprint": fingerprint(target.host_key)},
            ) from e
        raise ConnectFailed(f"SSH key exchange with {where} failed: {e.reason}") from e
    except asyncssh.PermissionDenied as e:
        raise AuthFailed(
            f"{where} refused the login of {target.user!r}: {e.reason}", metadata={"user": target.user}
        ) from e
    except socket.gaierror as e:
        raise ConnectFailed(f"cannot resolve {target.host!r}: {e.strerror}", reason="HOST_UNKNOWN") from e
    except ConnectionRefusedError as e:
        raise ConnectFailed(f"{where} refused the connection (is sshd running on that port?)", reason="CONNECTION_REFUSED") from e
    except TimeoutError as e:
        raise ConnectFailed(f"no SSH answer from {where} within {target.connect_timeout:.0f} s", reason="CONNECT_TIMEOUT") from e
    except asyncssh.Error as e:
        raise ConnectFailed(f"SSH connection to {where} failed: {e.reason}") from e
    except OSError as e:
        raise ConnectFailed(f"cannot connect to {where}: {e.strerror or e}", reason="HOST_UNREACHABLE") from e
    try:
        checkpoint()  # a Cancel that asyncssh's wait_for dropped as the connection completed
    except asyncio.CancelledError:
        conn.close()
        raise
    key = conn.get_server_host_key()
    return Connection(conn, _openssh(key) if key else "", client)


def _mismatch(target: Target, presented: asyncssh.SSHKey | None) -> HostKeyMismatch:
    expected = fingerprint(target.host_key)
    got = presented.get_fingerprint("sha256") if presented else "unknown"
    return HostKeyMismatch(
        f"host key of {target.host}:{target.port} changed: expected {expected}, presented {got}. "
        "If the server was reinstalled, check the new key and pin it: serverprep servers update NAME --host-key KEY.",
        metadata={"expected_fingerprint": expected, "presented_fingerprint": got},
    )

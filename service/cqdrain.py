"""grpc.aio's completion queue, drained of all its wake-up bytes at each wake-up instead of one.

grpcio (1.85) hands each completion event (a call arrived, a message was read or sent) from its
poller thread to the event loop by queueing the event and writing one byte to a socket pair. The
loop's reader reads **one** byte and then handles every queued event. So whenever more than one
event arrives per pass of the loop, unread bytes pile up. The socket pair holds about 265 one-byte
writes; then the poller thread blocks in ``write`` and takes the next event from gRPC's core only
after the loop has read one more byte: from then on every call, message and answer of the whole
server waits for its own pass of the event loop. With a thousand preparations' SSH traffic on the
same loop a pass takes tens of milliseconds, so the server's gRPC side crawls: calls queued in
gRPC's core for 30 s are cancelled by it (``CANCELLED``), and a ``Status`` call waited minutes
while the loop itself was never more than 2.5 s late (issue 9's "stall", bench/README.md).

:func:`drain_wakeups` replaces that reader with one that first reads every byte but one, then runs
grpcio's own reader, which reads the last byte and handles every queued event. It is safe because
the poller queues an event before it writes its byte: a byte in the socket always belongs to an
event already queued, and each event queued before grpcio's reader looks at the queue is handled
by it. An event queued later has its byte still unread, so the loop wakes again.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import functools
import socket
import termios
from collections.abc import Callable

#: The grpcio class and method whose reader this replaces (checked by name: they are private).
POLLER, READER = "PollerCompletionQueue", "_handle_events"


def drain_wakeups(loop: asyncio.AbstractEventLoop) -> bool:
    """Make grpc.aio's completion-queue reader on ``loop`` drain its socket; False if none is found.

    Call it after a ``grpc.aio`` server or channel exists (grpcio creates the queue with the first).
    Calling it again does nothing more.
    """
    selector = getattr(loop, "_selector", None)
    if selector is None:
        return False
    for key in list(selector.get_map().values()):
        reader = key.data[0] if isinstance(key.data, tuple) else None
        if reader is None:
            continue
        callback, args = reader._callback, reader._args
        if getattr(callback, "__wrapped_reader__", False):
            return True
        method = callback.func if isinstance(callback, functools.partial) else callback
        if getattr(method, "__name__", "") != READER or type(getattr(method, "__self__", None)).__name__ != POLLER:
            continue
        sock = key.fileobj
        if not isinstance(sock, socket.socket):
            return False
        loop.remove_reader(sock)
        loop.add_reader(sock, _draining(sock, functools.partial(callback, *args)))
        return True
    return False


def _draining(sock: socket.socket, grpc_reader: Callable[[], None]) -> Callable[[], None]:
    def read_all_then_handle() -> None:
        waiting = unread_bytes(sock)
        if waiting > 1:
            try:
                sock.recv(waiting - 1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
        grpc_reader()  # reads the byte left (the loop woke us: at least one is there) and every event queued

    read_all_then_handle.__wrapped_reader__ = True  # type: ignore[attr-defined]
    return read_all_then_handle


def unread_bytes(sock: socket.socket) -> int:
    """Bytes waiting to be read on ``sock`` (FIONREAD)."""
    count = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, count, True)
    return count[0]

"""Ctrl-C while a command talks to the service: the calls end, and no KeyboardInterrupt lands inside grpc.

A KeyboardInterrupt raised in the middle of grpcio's own code (a log stream being set up, say)
can leave one of its locks held; the ``Channel.close()`` that follows then waits for good
(grpc/grpc#19973), and the command hangs without a word. So while a command has a client,
Ctrl-C wakes a thread that closes the channel, and raises KeyboardInterrupt only where no grpc
code is running (at a password prompt, while printing, between two attempts of a stream).
Inside grpc it raises nothing: the call in flight ends ``CANCELLED``, any later one is refused,
and the command reports the interruption from where it stands (``--follow`` says how to follow
again). A second Ctrl-C ends the process at once, should anything still hang.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import grpc

from serverprep.clients.cli.common import EXIT_INTERRUPTED, CliError
from serverprep.clients.client import Client
from serverprep.clients.errors import ServerprepClientError

AGAIN = b"serverprep: interrupted again; quitting now\n"
#: How long the end of a command waits for the thread that closes the channel.
CLOSER_WAIT = 5.0
GRPC_CODE = os.path.dirname(grpc.__file__) + os.sep


def unsafe_to_raise(frame: FrameType | None) -> bool:
    """Whether grpc's Python code (a call, or a grpc object's finalizer) or the guard's own setup or
    cleanup is on the stack from ``frame`` down: a KeyboardInterrupt there could leave things half done."""
    while frame is not None:
        if frame.f_code.co_filename.startswith(GRPC_CODE) or frame.f_code in GUARD_CODE:
            return True
        frame = frame.f_back
    return False


def interrupted() -> CliError:
    return CliError("interrupted", EXIT_INTERRUPTED, reason="INTERRUPTED")


class CtrlC:
    """Whether Ctrl-C was pressed while the current command had its client; the one instance is :data:`ctrl_c`."""

    def __init__(self) -> None:
        self.requested = False

    def closing(self, client: Client) -> Closing:
        """Use ``client``, then close it. Ctrl-C inside closes it from another thread, and the command ends
        with :func:`interrupted` (exit 130) unless it raised its own :class:`CliError` (``--follow``'s hint).

        Only the main thread receives signals: in any other (a program running the CLI in a thread),
        or when SIGINT is ignored (``cmd &`` in a script), this only closes the client at the end.
        """
        return Closing(self, client)


class Closing:
    """The context of :meth:`CtrlC.closing`."""

    def __init__(self, state: CtrlC, client: Client) -> None:
        self.state = state
        self.client = client
        self.previous = signal.getsignal(signal.SIGINT)
        self.active = threading.current_thread() is threading.main_thread() and self.previous is not signal.SIG_IGN

    def __enter__(self) -> Client:
        if not self.active:
            return self.client
        self.state.requested = False
        # The handler runs between two bytecodes of the main thread, perhaps inside grpc or inside
        # threading's own code: it takes no lock, so it wakes the closer through a pipe.
        self.wake_r, self.wake_w = os.pipe()
        signal.signal(signal.SIGINT, self.handle)
        self.closer = threading.Thread(target=self.close_when_asked, name="serverprep-ctrl-c", daemon=True)
        self.closer.start()
        return self.client

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.state.requested:
            os.write(2, AGAIN)
            os._exit(EXIT_INTERRUPTED)
        self.state.requested = True
        os.write(self.wake_w, b"!")
        if not unsafe_to_raise(frame):  # a password prompt, printing, a pause between two attempts
            raise KeyboardInterrupt

    def close_when_asked(self) -> None:
        os.read(self.wake_r, 1)
        if self.state.requested:
            self.client.close()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> bool:
        if not self.active:
            self.client.close()
            return False
        try:
            os.write(self.wake_w, b".")  # lets the closer end when nobody pressed Ctrl-C
            self.closer.join(CLOSER_WAIT)
            self.client.close()
        finally:
            signal.signal(signal.SIGINT, self.previous)
            requested, self.state.requested = self.state.requested, False
            if not self.closer.is_alive():
                os.close(self.wake_r)
            os.close(self.wake_w)
        # After Ctrl-C the call in flight ended CANCELLED, or the next was refused (ValueError): the
        # command failed, or went on without what it could not read (the log tail of a status).
        if requested and (kind is None or issubclass(kind, (KeyboardInterrupt, ServerprepClientError, ValueError))):
            raise interrupted() from None
        return False


GUARD_CODE = frozenset({Closing.__enter__.__code__, Closing.__exit__.__code__})

#: The process's one Ctrl-C state: signals are the process's, not a command's.
ctrl_c = CtrlC()

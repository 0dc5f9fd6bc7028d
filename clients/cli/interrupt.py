"""Ctrl-C in the ``serverprep`` command: the calls end, and no KeyboardInterrupt lands inside grpc.

A KeyboardInterrupt raised in the middle of grpcio's own code (a log stream being set up, say)
can leave one of its locks held; the ``Channel.close()`` that follows then waits for good
(grpc/grpc#19973), and the command hangs without a word. So while a command that talks to the
service runs (``commands.bind``; other commands, such as ``serve``, keep their own handling),
Ctrl-C is recorded, wakes the thread that closes the current command's channel (if it has
one), and raises KeyboardInterrupt only where no grpc code is running (at a password prompt,
while printing, between two attempts of a stream). Inside grpc it raises nothing: the call in
flight ends ``CANCELLED``, any later one is refused, and the command reports the interruption
from where it stands (``--follow`` says how to follow again). A Ctrl-C that Python swallows (in
a finalizer, say) still ends the command with 130. A second Ctrl-C ends the process at once,
should anything still hang.
"""

from __future__ import annotations

import inspect
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import grpc

from serverprep.clients.cli.common import EXIT_INTERRUPTED, CliError
from serverprep.clients.client import Client
from serverprep.clients.errors import ServerprepClientError

AGAIN = b"serverprep: interrupted again; quitting now\n"
#: How long the end of a command waits for the thread that closes the channel.
CLOSER_WAIT = 5.0
GRPC_CODE = os.path.dirname(grpc.__file__) + os.sep


#: Frames that Python may be running as a generator's close or a finalizer, where it would print a
#: KeyboardInterrupt as "Exception ignored" and go on.
SWALLOWING = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def unsafe_to_raise(frame: FrameType | None) -> bool:
    """Whether a KeyboardInterrupt raised at ``frame`` could leave things half done or be swallowed: grpc's
    Python code on the stack (a call, or a grpc object's finalizer), the guard's own setup or cleanup, a
    generator or a ``__del__``. Then the request is only recorded; the channel's close ends the command."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(GRPC_CODE) or code in GUARD_CODE or code.co_flags & SWALLOWING or code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def interrupted() -> CliError:
    return CliError("interrupted", EXIT_INTERRUPTED, reason="INTERRUPTED")


class CtrlC:
    """The process's Ctrl-C: whether it was pressed during a command, and what it wakes; one instance, :data:`ctrl_c`."""

    def __init__(self) -> None:
        self.requested = False
        self.wake_w: int | None = None  # the current command's closer waits on this pipe

    def interrupted(self) -> bool:
        """Whether Ctrl-C was pressed during this thread's command (only the main thread's is watched)."""
        return self.requested and threading.current_thread() is threading.main_thread()

    @contextmanager
    def watching(self) -> Iterator[None]:
        """While inside, Ctrl-C goes through :meth:`handle`, in the main thread, unless SIGINT is ignored
        (``cmd &`` in a script); in any other thread (a program running the CLI in one) nothing changes.
        A Ctrl-C recorded where raising was unsafe ends the command with :func:`interrupted`."""
        previous = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is not threading.main_thread() or previous is signal.SIG_IGN:
            yield
            return
        self.requested = False
        signal.signal(signal.SIGINT, self.handle)
        try:
            yield
            if self.requested:  # the command went on: it was a finalizer or a generator that swallowed it
                raise interrupted()
        finally:
            signal.signal(signal.SIGINT, previous)
            self.requested = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            os.write(2, AGAIN)
            os._exit(EXIT_INTERRUPTED)
        self.requested = True
        # Runs between two bytecodes of the main thread, perhaps inside grpc or threading's own
        # code: no lock, and the closer is woken through a pipe.
        if self.wake_w is not None:
            os.write(self.wake_w, b"!")
        if not unsafe_to_raise(frame):  # a password prompt, printing, a pause between two attempts
            raise KeyboardInterrupt

    def closing(self, client: Client) -> Closing:
        """Use ``client``, then close it. Ctrl-C inside closes it from another thread, and the command ends
        with :func:`interrupted` (exit 130) unless it raised its own :class:`CliError` (``--follow``'s hint).
        Outside :meth:`watching` (a program calling the commands itself), it only closes the client."""
        return Closing(self, client)


class Closing:
    """The context of :meth:`CtrlC.closing`."""

    def __init__(self, state: CtrlC, client: Client) -> None:
        self.state = state
        self.client = client
        self.active = signal.getsignal(signal.SIGINT) == state.handle and threading.current_thread() is threading.main_thread()

    def __enter__(self) -> Client:
        if not self.active:
            return self.client
        self.wake_r, wake_w = os.pipe()
        self.state.wake_w = wake_w
        if self.state.requested:  # pressed before the pipe was open (as the client was made)
            os.write(wake_w, b"!")
        self.closer = threading.Thread(target=self.close_when_asked, name="serverprep-ctrl-c", daemon=True)
        self.closer.start()
        return self.client

    def close_when_asked(self) -> None:
        os.read(self.wake_r, 1)
        if self.state.requested:
            self.client.close()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> bool:
        if not self.active:
            self.client.close()
            return False
        wake_w = self.state.wake_w
        assert wake_w is not None
        try:
            os.write(wake_w, b".")  # lets the closer end when nobody pressed Ctrl-C
            self.closer.join(CLOSER_WAIT)
            self.client.close()
        finally:
            self.state.wake_w = None
            if not self.closer.is_alive():
                os.close(self.wake_r)
            os.close(wake_w)
        # After Ctrl-C the call in flight ended CANCELLED, or the next was refused (ValueError): the
        # command failed, or went on without what it could not read (the log tail of a status).
        if self.state.requested and (kind is None or issubclass(kind, (KeyboardInterrupt, ServerprepClientError, ValueError))):
            raise interrupted() from None
        return False


GUARD_CODE = frozenset({Closing.__enter__.__code__, Closing.__exit__.__code__})

#: The process's one Ctrl-C state: signals are the process's, not a command's.
ctrl_c = CtrlC()

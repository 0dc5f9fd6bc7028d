"""Ctrl-C while a command talks to the service: the calls end, no KeyboardInterrupt lands inside grpc.

A KeyboardInterrupt raised in the middle of grpcio's own code (a log stream being set up, say)
can leave one of its locks held; the ``Channel.close()`` that follows then waits for good
(grpc/grpc#19973), and the command hangs without a word. So while a command has a client,
SIGINT raises nothing: the handler records it and wakes a thread that closes the channel.
Every call in flight then ends ``CANCELLED``, every later one is refused, and the command
reports the interruption from where it stands (``--follow`` says how to follow again). A
second Ctrl-C ends the process at once, should anything still hang.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from serverprep.clients.cli.common import EXIT_INTERRUPTED
from serverprep.clients.client import Client

AGAIN = b"serverprep: interrupted again; quitting now\n"
#: How long the end of a command waits for the thread that closes the channel.
CLOSER_WAIT = 5.0


class CtrlC:
    """Whether Ctrl-C was pressed while the current command had its client; the one instance is :data:`ctrl_c`."""

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def closing(self, client: Client) -> Iterator[Client]:
        """Use ``client``, then close it; while inside, Ctrl-C closes it from another thread instead of raising.

        Only the main thread receives signals: in any other (a program running the CLI in a
        thread) this only closes the client at the end.
        """
        if threading.current_thread() is not threading.main_thread():
            with client:
                yield client
            return
        self.requested = False
        # The handler runs between two bytecodes of the main thread, perhaps inside grpc or inside
        # threading's own code: it must not raise, nor take a lock, so it wakes the closer through a pipe.
        wake_r, wake_w = os.pipe()

        def handle(signum: int, frame: Any) -> None:
            if self.requested:
                os.write(2, AGAIN)
                os._exit(EXIT_INTERRUPTED)
            self.requested = True
            os.write(wake_w, b"!")

        def close_when_asked() -> None:
            os.read(wake_r, 1)
            if self.requested:
                client.close()

        previous = signal.signal(signal.SIGINT, handle)
        closer = threading.Thread(target=close_when_asked, name="serverprep-ctrl-c", daemon=True)
        try:
            closer.start()
            yield client
        finally:
            os.write(wake_w, b".")  # lets the closer end when nobody pressed Ctrl-C
            if closer.ident is not None:
                closer.join(CLOSER_WAIT)
            client.close()
            signal.signal(signal.SIGINT, previous)
            if not closer.is_alive():
                os.close(wake_r)
            os.close(wake_w)


#: The process's one Ctrl-C state: signals are the process's, not a command's.
ctrl_c = CtrlC()

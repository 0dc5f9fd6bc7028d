"""Output of remote commands read in chunks and handed over line by line, within a byte budget."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from serverprep.service.domain import MAX_LINE, Stream
from serverprep.service.errors import OutputTooLarge

LineHandler = Callable[[Stream, str], Awaitable[None] | None]

READ_CHUNK = 64 * 1024
#: Ends the part kept of a line longer than MAX_LINE.
CUT = f" [line cut: longer than {MAX_LINE} bytes]".encode()


class Reader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class Budget:
    """Bytes of output a command may still send before it is stopped (None: no limit)."""

    def __init__(self, limit: int | None):
        self.left = limit

    def spend(self, n: int) -> None:
        if self.left is None:
            return
        self.left -= n
        if self.left < 0:
            raise OutputTooLarge("the command printed more than its output limit")


async def pump(reader: Reader, stream: Stream, on_line: LineHandler, budget: Budget) -> None:
    """Read chunks, hand over complete lines, and cut a line longer than MAX_LINE without ever
    stopping to read (a writer blocked on a full channel would hang its command)."""
    line = bytearray()
    cutting = False  # inside a line already cut: its rest is read and dropped
    while True:
        chunk = await reader.read(READ_CHUNK)
        if not chunk:
            if line:
                await _deliver(on_line, stream, bytes(line))
            return
        budget.spend(len(chunk))
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            start = len(chunk) if end < 0 else end + 1
            if not cutting:
                line += piece
                if len(line) > MAX_LINE:
                    await _deliver(on_line, stream, bytes(line[: MAX_LINE - len(CUT)]) + CUT)
                    line.clear()
                    cutting = True
            if end >= 0:
                if not cutting:
                    await _deliver(on_line, stream, bytes(line))
                line.clear()
                cutting = False


async def _deliver(on_line: LineHandler, stream: Stream, raw: bytes) -> None:
    text = raw.decode("utf-8", "replace").rstrip("\r")
    result = on_line(stream, text)
    if result is not None:
        await result



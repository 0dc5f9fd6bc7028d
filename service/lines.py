"""Output of remote commands read in chunks and handed over in lines, within a byte budget."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from serverprep.service.domain import MAX_LINE, Stream
from serverprep.service.errors import OutputTooLarge

#: Takes one line; what it returns (when not None) is awaited before the next line is handed over.
LineHandler = Callable[[Stream, str], Awaitable[None] | None]
#: Takes the complete lines of one read at once, in order; what it returns is awaited before reading on.
LinesHandler = Callable[[Stream, list[str]], Awaitable[None] | None]

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


def per_line(on_line: LineHandler) -> LinesHandler:
    """A handler of lines that hands them to ``on_line`` one by one, awaiting what it returns
    before the next one."""

    def on_lines(stream: Stream, texts: list[str]) -> Awaitable[None] | None:
        for i, text in enumerate(texts, 1):
            result = on_line(stream, text)
            if result is not None:
                return result if i == len(texts) else _rest(result, on_line, stream, texts, i)
        return None

    return on_lines


async def _rest(first: Awaitable[None], on_line: LineHandler, stream: Stream, texts: list[str], start: int) -> None:
    await first
    for text in texts[start:]:
        result = on_line(stream, text)
        if result is not None:
            await result


async def pump(reader: Reader, stream: Stream, on_lines: LinesHandler, budget: Budget) -> None:
    """Read chunks, hand over complete lines, and cut a line longer than MAX_LINE without ever
    stopping to read (a writer blocked on a full channel would hang its command).

    The complete lines inside a chunk are split and decoded at once (in C) and handed over in one
    call; only the line that began in an earlier chunk, the unfinished one at the end, and
    overlong ones go piece by piece.
    """
    line = bytearray()
    cutting = False  # inside a line already cut: its rest is read and dropped

    async def add(piece: bytes, complete: bool) -> None:
        nonlocal cutting
        if not cutting:
            line.extend(piece)
            if len(line) > MAX_LINE:
                await _deliver(on_lines, stream, _text(bytes(line[: MAX_LINE - len(CUT)]) + CUT))
                line.clear()
                cutting = True
        if complete:
            if not cutting:
                await _deliver(on_lines, stream, _text(bytes(line)))
            line.clear()
            cutting = False

    while True:
        chunk = await reader.read(READ_CHUNK)
        if not chunk:
            if line:
                await _deliver(on_lines, stream, _text(bytes(line)))
            return
        budget.spend(len(chunk))
        start = 0
        if line or cutting:
            end = chunk.find(b"\n")
            await add(chunk if end < 0 else chunk[:end], end >= 0)
            if end < 0:
                continue
            start = end + 1
        last = chunk.rfind(b"\n")
        if last >= start:
            block = chunk[start:last]
            pieces = block.split(b"\n")
            if max(map(len, pieces)) <= MAX_LINE:
                # Decoding never makes or removes a newline, so the texts match the pieces one to one.
                text = block.decode("utf-8", "replace")
                texts = text.split("\n") if "\r" not in text else [t.rstrip("\r") for t in text.split("\n")]
                result = on_lines(stream, texts)
                if result is not None:
                    await result
            else:
                for piece in pieces:
                    await add(piece, True)
            start = last + 1
        if start < len(chunk):
            await add(chunk[start:], False)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").rstrip("\r")


async def _deliver(on_lines: LinesHandler, stream: Stream, text: str) -> None:
    result = on_lines(stream, [text])
    if result is not None:
        await result

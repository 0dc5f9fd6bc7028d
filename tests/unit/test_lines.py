"""Remote output cut into lines: the same lines however the SSH channel splits the bytes.

Checks lines.pump against a plain reference (split the whole output, cut long lines, decode)
over random chunkings of output with invalid UTF-8, multi-byte characters cut across chunks,
carriage returns, empty lines, overlong lines and an unfinished last line.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from serverprep.service.domain import MAX_LINE, Stream
from serverprep.service.errors import OutputTooLarge
from serverprep.service.lines import CUT, Budget, pump


class Chunks:
    def __init__(self, chunks: list[bytes]):
        self.chunks = list(chunks)

    async def read(self, n: int = -1) -> bytes:
        await asyncio.sleep(0)
        return self.chunks.pop(0) if self.chunks else b""


def reference(data: bytes) -> list[str]:
    def one(raw: bytes) -> str:
        if len(raw) > MAX_LINE:
            raw = raw[: MAX_LINE - len(CUT)] + CUT
        return raw.decode("utf-8", "replace").rstrip("\r")

    *complete, tail = data.split(b"\n")
    return [one(p) for p in complete] + ([one(tail)] if tail else [])


def run(chunks: list[bytes], limit: int | None = None) -> list[str]:
    got: list[str] = []

    def on_lines(stream: Stream, texts: list[str]) -> None:
        got.extend(texts)

    asyncio.run(pump(Chunks(chunks), Stream.STDOUT, on_lines, Budget(limit)))
    return got


def split_randomly(data: bytes, rng: random.Random) -> list[bytes]:
    chunks, at = [], 0
    while at < len(data):
        size = rng.choice((1, 2, 3, 7, 100, 4096, 40_000, 65_536))
        chunks.append(data[at : at + size])
        at += size
    return chunks


def sample_output(rng: random.Random) -> bytes:
    pieces = []
    for _ in range(rng.randint(0, 300)):
        kind = rng.random()
        if kind < 0.6:
            pieces.append(f"Get:{rng.randint(1, 99)} http://deb.debian.org/debian bookworm/main Packages".encode())
        elif kind < 0.7:
            pieces.append("déjà vu ✓ 日本語".encode() * rng.randint(1, 5))
        elif kind < 0.8:
            pieces.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))).replace(b"\n", b""))
        elif kind < 0.85:
            pieces.append(b"progress\r" * rng.randint(1, 3))
        elif kind < 0.9:
            pieces.append(b"")
        else:
            pieces.append(b"x" * rng.choice((MAX_LINE - 1, MAX_LINE, MAX_LINE + 1, 3 * MAX_LINE)))
    data = b"\n".join(pieces)
    return data + (b"\n" if rng.random() < 0.7 else b"")


@pytest.mark.parametrize("seed", range(40))
def test_lines_do_not_depend_on_how_the_output_is_chunked(seed):
    rng = random.Random(seed)
    data = sample_output(rng)
    assert run(split_randomly(data, rng)) == reference(data)


def test_a_character_cut_between_chunks_is_whole_and_invalid_bytes_are_replaced():
    data = "é日\n".encode() + b"\xff\xfe bad\n" + b"\xe2\x82\n"
    for at in range(1, len(data)):
        assert run([data[:at], data[at:]]) == ["é日", "\ufffd\ufffd bad", "\ufffd"]


def test_an_overlong_line_is_cut_once_and_the_next_line_follows():
    data = b"a" * (MAX_LINE * 5) + b"\nnext\n"
    lines = run([data[i : i + 1000] for i in range(0, len(data), 1000)])
    assert lines == [("a" * (MAX_LINE - len(CUT))) + CUT.decode(), "next"]


def test_the_byte_budget_stops_a_command_that_prints_without_end():
    with pytest.raises(OutputTooLarge):
        run([b"line\n" * 1000] * 10, limit=20_000)

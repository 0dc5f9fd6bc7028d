"""The lines of one read go into the log at once (``Journal.emit_lines``, the hot path): the log
must come out exactly as if each line had been emitted on its own (``Journal.emit``): the same
numbers, texts, redaction, cut of overlong lines, output budget and backlog. The store is a
stand-in that keeps what it is given (what is stored is the store tests' business)."""

from __future__ import annotations

import asyncio

import pytest

from serverprep.service.budgets import Backlog, OutputBudget
from serverprep.service.domain import MAX_LINE, Stream, redactor
from serverprep.service.journal import Journal


class Keeps:
    async def append_logs(self, prep_id, entries, changes=()):
        pass


CASES = {
    "plain": ["Get:1 http://deb.debian.org/debian bookworm InRelease", "", "  indented", "déjà ✓"],
    "secrets": ["token s3cr3t-value here", "no secret", "pw ab in a word: abc ab", "s3cr3t-value"],
    "a secret across two lines is not one": ["s3cr3t", "-value"],
    "NUL": ["a\x00b", "clean"],
    "overlong": ["x" * (MAX_LINE + 10), "short"],
    "the budget fills inside the block": [f"line {i} " + "y" * 20 for i in range(12)],
}


def log(texts: list[str], together: bool, max_lines: int, max_bytes: int) -> tuple:
    async def run():
        journal = Journal("p1", Keeps(), 7, redactor(["s3cr3t-value", "ab"]), OutputBudget(max_lines, max_bytes), 10_000,
                          4 << 20, Backlog(1 << 30))
        journal.emit("install_docker", Stream.EVENT, "$ apt-get install -y docker.io")
        if together:
            assert journal.emit_lines("install_docker", Stream.STDERR, texts) == len(texts)
        else:
            for text in texts:
                journal.emit("install_docker", Stream.STDERR, text)
        journal.report_dropped("install_docker")
        b = journal.budget
        entries = [(e.seq, e.step, e.stream, e.text) for e in journal.window]
        state = (entries, journal.seq, (b.lines, b.bytes, b.dropped_lines, b.dropped_bytes), journal.backlog.size,
                 journal.pending_chars, journal.window_chars)
        await journal.close()
        return state

    return asyncio.run(run())


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("limits", [(10**6, 10**9), (9, 10**9), (10**6, 150)], ids=["no limit", "9 lines", "150 bytes"])
def test_lines_together_are_logged_as_one_by_one(case, limits):
    texts = CASES[case]
    assert log(texts, True, *limits) == log(texts, False, *limits)


def test_what_the_comparison_sees():
    """The comparison above would pass on two empty logs: it does not."""
    entries, seq, budget, *_ = log(CASES["secrets"], True, 10**6, 10**9)
    assert [text for *_, text in entries][1:] == ["token ******** here", "no secret", "pw ******** in a word: abc ********", "********"]
    assert seq == 12
    entries, _, budget, *_ = log(CASES["the budget fills inside the block"], True, 9, 10**9)
    assert budget[2] == 3 and entries[-1][3] == "3 lines of output were not stored (output limit)"


def test_the_lines_stop_after_the_one_that_fills_the_backlog():
    async def run():
        backlog = Backlog(1000)
        journal = Journal("p1", Keeps(), 0, lambda text: text, OutputBudget(10**6, 10**9), 10_000, 4 << 20, backlog)
        backlog.add(500)
        taken = journal.emit_lines("s", Stream.STDOUT, ["a" * 50] * 10)  # 250 bytes each with what an entry costs
        held = journal.hold() is not None
        again = journal.emit_lines("s", Stream.STDOUT, ["b"])  # held already: one line, as one by one would
        seqs = [e.seq for e in journal.window]
        await journal.close()
        return taken, held, again, seqs

    assert asyncio.run(run()) == (2, True, 1, [1, 2, 3])

"""The live view of a preparation (``--follow``) and the printed log: steps counted, facts folded, failures explained."""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from serverprep.clients.cli import render
from serverprep.clients.cli.common import (
    EXIT_INTERRUPTED,
    CliError,
    option,
    preparation_exit,
    print_json,
    wants_json,
)
from serverprep.clients.cli.interrupt import ctrl_c
from serverprep.clients.cli.terminal import Style, visible
from serverprep.clients.client import Client
from serverprep.clients.errors import ServerprepClientError
from serverprep.clients.types import (
    LOG_STREAM_EVENT,
    LOG_STREAM_STDERR,
    LOG_STREAM_STDOUT,
    PREPARATION_STATE_FAILED,
    RETRYABLE,
    LogEntry,
    Preparation,
)

#: The step whose output is the raw facts (os-release, tools found): folded into its summary line.
FACTS_STEP = "detect_os"
#: Lines of a failed command's stderr shown with the failure.
TAIL_LINES = 5
MARKS = {"RUNNING": "▶", "SUCCEEDED": "✔", "SKIPPED": "⏭", "FAILED": "✘", "CANCELLED": "■"}


@dataclass
class TailCollector:
    """The last stderr (else stdout) lines of the command each step ran last, diagnostics excluded."""

    stderr: dict[str, deque[str]] = field(default_factory=dict)
    stdout: dict[str, deque[str]] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)

    def feed(self, e: LogEntry) -> None:
        if e.stream == LOG_STREAM_EVENT:
            if e.text.startswith("$ ") or e.step_state:
                # A new command (or a step starting again after Retry): its own output only.
                if not e.step_state or render.step_state(e.step_state) == "RUNNING":
                    self.stderr[e.step] = deque(maxlen=TAIL_LINES)
                    self.stdout[e.step] = deque(maxlen=TAIL_LINES)
                    self.closed.discard(e.step)
            elif e.text.startswith("command failed; diagnostics follow"):
                self.closed.add(e.step)  # what follows explains the failure; it is not the command's output
            return
        if e.step in self.closed:
            return
        target = self.stderr if e.stream == LOG_STREAM_STDERR else self.stdout if e.stream == LOG_STREAM_STDOUT else None
        if target is not None:
            target.setdefault(e.step, deque(maxlen=TAIL_LINES)).append(e.text)

    def tail(self, step: str) -> list[str]:
        return list(self.stderr.get(step) or ())


class LogView:
    """Prints log entries as text lines (or JSON lines), counting steps; ``fold_facts`` hides detect_os's raw lines."""

    def __init__(self, out: TextIO, style: Style, steps: Iterable[str], *, fold_facts: bool, as_json: bool):
        self.out = out
        self.style = style
        self.steps = list(steps)
        self.fold_facts = fold_facts
        self.as_json = as_json
        self.tails = TailCollector()
        self.last_seq = 0

    def __call__(self, e: LogEntry) -> None:
        self.last_seq = e.seq
        self.tails.feed(e)
        if self.as_json:
            print_json({"entry": render.entry_json(e)}, self.out, lines=True)
            return
        transition = bool(e.step_state or e.preparation_state)
        if self.fold_facts and e.step == FACTS_STEP and not transition and e.stream != LOG_STREAM_STDERR:
            return
        print(self.line(e), file=self.out, flush=True)

    def counter(self, step: str) -> str:
        if step in self.steps:
            return f"step {self.steps.index(step) + 1}/{len(self.steps)} "
        return ""

    def line(self, e: LogEntry) -> str:
        c = self.style
        stamp = time.strftime("%H:%M:%S", time.localtime(e.time.seconds))
        head = c("dim", f"{stamp} {e.seq:>5}")
        step = visible(e.step or "preparation")
        text = visible(e.text)
        if e.stream == LOG_STREAM_EVENT and (e.step_state or e.preparation_state):
            state = render.step_state(e.step_state) if e.step_state else render.prep_state(e.preparation_state)
            counter = self.counter(e.step) if e.step_state else ""
            body = c(render.STATE_COLOURS.get(state, "bold"), f"{MARKS.get(state, '·')} {counter}{text}")
        elif e.stream == LOG_STREAM_EVENT:
            body = c("bold", text)
        elif e.stream == LOG_STREAM_STDERR:
            body = c("red", f"! {text}")
        else:
            body = f"| {text}"
        return f"{head} {step:<20} {body}"


def step_names(prep: Preparation) -> list[str]:
    return [s.name for s in prep.steps]


def finish(client: Client, server: str, prep_id: str, view: LogView, out: TextIO) -> int:
    """After the stream ends: the final status (with the failed command's last stderr lines), exit by state."""
    final = client.status(server, prep_id)
    if view.as_json:
        print_json({"preparation": render.preparation_json(final)}, out, lines=True)
        return preparation_exit(final.state)
    tail = view.tails.tail(final.failure.step) if final.state == PREPARATION_STATE_FAILED and final.HasField("failure") else []
    render.print_status(final, out, view.style, tail)
    if final.state in RETRYABLE:
        where = f"at {final.failure.step}" if final.failure.step else "where it stopped"
        print(view.style("dim", f"retry: serverprep retry {server} --follow   (resumes {where})"), file=out)
    return preparation_exit(final.state)


def follow(client: Client, args: argparse.Namespace, server: str, prep: Preparation, out: TextIO, *,
           after_seq: int = 0, fold_facts: bool = True) -> int:
    """Stream ``prep``'s log to its end, then its status; Ctrl-C leaves it running and says how to come back."""
    view: LogView | None = None
    try:  # from the first line: a Ctrl-C anywhere here must say how to follow again
        style = Style.for_stream(out, option(args, "color", "auto"))
        view = LogView(out, style, step_names(prep), fold_facts=fold_facts and not option(args, "verbose", False),
                       as_json=wants_json(args))
        view.last_seq = after_seq
        for entry in client.stream_logs(server, prep.id, after_seq=after_seq):
            if entry.step and entry.step not in view.steps and entry.step != "preparation":
                view.steps = step_names(client.status(server, prep.id))
            view(entry)
    except (KeyboardInterrupt, ServerprepClientError, ValueError) as e:
        seen = view.last_seq if view is not None else after_seq
        # Ctrl-C closes the channel (interrupt.py): the stream ends CANCELLED, or a call after it is refused.
        if isinstance(e, KeyboardInterrupt) or ctrl_c.interrupted():
            raise stopped_following(args, server, prep.id, seen) from None
        if isinstance(e, ServerprepClientError) and not wants_json(args):
            print(f"serverprep: lost the log stream; {reattach_hint(args, server, prep.id, seen)}", file=sys.stderr, flush=True)
        raise
    if ctrl_c.interrupted():  # pressed as the stream ended: the channel is closing
        raise stopped_following(args, server, prep.id, view.last_seq)
    return finish(client, server, prep.id, view, out)


def stopped_following(args: argparse.Namespace, server: str, prep_id: str, last_seq: int) -> CliError:
    return CliError(f"stopped following; {reattach_hint(args, server, prep_id, last_seq)}", EXIT_INTERRUPTED,
                    reason="INTERRUPTED", metadata={"preparation_id": prep_id, "resume_after_seq": str(last_seq)})


def reattach_hint(args: argparse.Namespace, server: str, prep_id: str, last_seq: int) -> str:
    """The preparation goes on in the service: the commands that follow it again, or stop it."""
    flags = f" --address {option(args, 'address')}" if option(args, "address") else ""
    return (f"preparation {prep_id} of {server} goes on in the service.\n"
            f"  follow it again: serverprep logs {server} --id {prep_id} --follow --after-seq {last_seq}{flags}\n"
            f"  or stop it:      serverprep cancel {server} --id {prep_id}{flags}")


def failure_tail(client: Client, prep: Preparation) -> list[str]:
    """The last stderr lines of a FAILED preparation's failed command, read back from its stored log."""
    if prep.state != PREPARATION_STATE_FAILED or not prep.failure.step:
        return []
    tails = TailCollector()
    for entry in client.stream_logs(prep.server, prep.id, follow=False):
        if entry.step == prep.failure.step:
            tails.feed(entry)
    return tails.tail(prep.failure.step)

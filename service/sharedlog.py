"""The messages of a log batch, made once for all the live readers of a preparation that keep up.

Readers that keep up with a preparation are woken together and take the same batch from its
journal, about a thousand entries at a time in bench/logs.py; each entry is encoded once
(convert.log_entry_fields), but each reader still gathered, measured and joined those encodings
into its own copy of the same messages. Now the first reader's messages are kept, one batch per
preparation, for the others.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from serverprep.service import convert
from serverprep.service.domain import LogEntry, PrepState

Messages = list[tuple[bytes, PrepState]]


class SharedMessages:
    """The last batch's messages of each preparation read live, within ``max_bytes`` in all (the
    preparations read least recently go first); a batch over ``max_one`` bytes is not kept."""

    def __init__(self, max_bytes: int = 8 << 20, max_one: int = 1 << 20) -> None:
        self.max_bytes = max_bytes
        self.max_one = max_one
        self.size = 0
        self._kept: OrderedDict[str, tuple[tuple[int, int, int, PrepState, int], Messages, int]] = OrderedDict()

    def messages(self, prep_id: str, batch: Sequence[LogEntry], state: PrepState, limit: int) -> Messages:
        """What convert.stream_logs_messages makes of ``batch``: the messages and the state after each.

        A preparation's entries never change once numbered, so the first and last sequence numbers
        (with the count, the state before and the size limit) name the messages; one event loop
        calls this, so nothing is locked."""
        key = (batch[0].seq, batch[-1].seq, len(batch), state, limit)
        kept = self._kept.get(prep_id)
        if kept is not None and kept[0] == key:
            self._kept.move_to_end(prep_id)
            return kept[1]
        made = list(convert.stream_logs_messages(batch, state, limit))
        if kept is not None:
            del self._kept[prep_id]
            self.size -= kept[2]
        size = sum(len(message) for message, _ in made)
        if size <= self.max_one:
            self._kept[prep_id] = (key, made, size)
            self.size += size
            while self.size > self.max_bytes:
                _, (_, _, dropped) = self._kept.popitem(last=False)
                self.size -= dropped
        return made

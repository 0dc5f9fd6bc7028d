"""Text from the service made harmless for a terminal, and serverprep's own colours.

A server being prepared writes what it likes into its log, and a compromised one may write
escape sequences that retitle the operator's terminal, clear it, or set the clipboard
(OSC 52) with a command waiting to be pasted. Every text the CLI prints from the service
goes through :func:`visible` first: control characters are shown, not obeyed, so that
``ESC ] 52 ; c ; ... BEL`` reads ``^[]52;c;...^G``. JSON output keeps the raw text.
"""

from __future__ import annotations

import os
import re
from typing import TextIO

# C0 controls except TAB, DEL, C1 controls, and the Unicode controls that reorder or hide
# text (bidirectional overrides and isolates, line/paragraph separators).
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f\x80-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _show(match: re.Match[str]) -> str:
    c = ord(match.group())
    if c < 0x20:
        return "^" + chr(c + 0x40)  # caret notation, as cat -v: ESC is ^[, BEL is ^G
    if c == 0x7F:
        return "^?"
    if c <= 0x9F:
        return f"\\x{c:02x}"
    return f"<U+{c:04X}>"


def visible(text: str) -> str:
    """``text`` with every control character shown instead of obeyed (one CR before the end dropped)."""
    if text.endswith("\r"):
        text = text[:-1]  # CRLF line endings from the server: harmless, and noise if shown
    return _UNSAFE.sub(_show, text)


class Style:
    """serverprep's own colours: on a terminal unless $NO_COLOR is set, or as ``--color`` says."""

    CODES = {"dim": "\033[2m", "red": "\033[31m", "green": "\033[32m", "yellow": "\033[33m", "bold": "\033[1m"}

    def __init__(self, enabled: bool):
        self.enabled = enabled

    @classmethod
    def for_stream(cls, out: TextIO, mode: str = "auto") -> Style:
        if mode == "always":
            return cls(True)
        if mode == "never":
            return cls(False)
        isatty = getattr(out, "isatty", None)
        return cls(bool(isatty and isatty()) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb")

    def __call__(self, name: str, text: str) -> str:
        """``text`` (already made visible) in colour ``name``."""
        if not self.enabled or not text:
            return text
        return f"{self.CODES[name]}{text}\033[0m"

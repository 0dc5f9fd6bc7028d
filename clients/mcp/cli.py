"""``serverprep mcp``: serve the MCP tools over stdio or streamable HTTP."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any, client_options: argparse.ArgumentParser) -> None:
    """Add ``serverprep mcp`` to the ``serverprep`` parser's subcommands."""

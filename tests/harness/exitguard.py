"""A pytest plugin: a run whose process does not end after its last test fails, with every thread's stack.

A regression that left a gRPC server running made pytest hang after its summary, joining a thread
of grpcio's, instead of failing: the process never ended, and CI would have waited its 90 minutes.
Past ``SERVERPREP_TEST_EXIT_LIMIT`` seconds (120) from the end of the session, faulthandler's own
thread, which needs no GIL, writes every thread's stack to stderr and ends the process with status
1. A hung test is stopped the same way by ``faulthandler_timeout`` and
``faulthandler_exit_on_timeout`` in pyproject.toml.
"""

from __future__ import annotations

import faulthandler
import os

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    limit = float(os.environ.get("SERVERPREP_TEST_EXIT_LIMIT", "120"))
    # A descriptor of its own: pytest closes the one its faulthandler plugin writes to.
    faulthandler.dump_traceback_later(limit, exit=True, file=os.dup(2))

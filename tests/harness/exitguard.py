"""A pytest plugin: a run that hangs fails, with every thread's stack, instead of running into CI's limit.

A regression that left a gRPC server running made pytest hang after its summary, joining a thread
of grpcio's, instead of failing: the process never ended, and CI would have waited its 90 minutes.
faulthandler's own thread, which needs no GIL, ends such a run: it writes every thread's stack to
stderr and exits with status 1.

- A test (setup, call and teardown) past ``faulthandler_timeout`` (pyproject.toml, with
  ``faulthandler_exit_on_timeout``): pytest's own plugin arms that limit, but stops it as soon as a
  test fails (for the debugger); this plugin arms it again, so that a failed test whose teardown
  hangs ends the run too (unless ``--pdb``).
- The end of the session (the last fixtures' teardown, the summary) gets the same limit, and the
  process then has ``SERVERPREP_TEST_EXIT_LIMIT`` seconds (120; 0 turns this off) to be gone.
"""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Generator

import pytest

_stderr: int | None = None


def _arm(seconds: float) -> None:
    global _stderr
    if _stderr is None:
        _stderr = os.dup(2)  # its own descriptor: pytest closes the one its faulthandler plugin writes to
    faulthandler.dump_traceback_later(seconds, exit=True, file=_stderr)


def _test_limit(config: pytest.Config) -> float:
    if not config.getini("faulthandler_exit_on_timeout") or config.getoption("usepdb", False):
        return 0.0
    return float(config.getini("faulthandler_timeout") or 0.0)


@pytest.hookimpl(trylast=True)
def pytest_exception_interact(node: pytest.Item | pytest.Collector, call: pytest.CallInfo[object], report: object) -> None:
    limit = _test_limit(node.config)
    if isinstance(node, pytest.Item) and limit > 0:
        _arm(limit)  # pytest's runtest wrapper stops it again once the teardown is done


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Generator[None, None, None]:
    limit = _test_limit(session.config)
    if limit > 0:
        _arm(limit)
    try:
        return (yield)
    finally:
        exit_limit = float(os.environ.get("SERVERPREP_TEST_EXIT_LIMIT", "120"))
        if exit_limit > 0:
            _arm(exit_limit)
        else:
            faulthandler.cancel_dump_traceback_later()

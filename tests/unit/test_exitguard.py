"""The suite's guard against a run that never ends (tests/harness/exitguard.py, pyproject.toml).

Proves, with a real pytest process on a throwaway test file, that each of these ends the run with
status 1 and the stack of what hung on stderr, once its limit has passed:
- a run whose tests pass but which leaves a thread that never ends (as a gRPC server left running
  did; without the guard it waits on that thread for good, here until this test's own timeout);
- a test that hangs, by the per-test limit the suite's configuration sets;
- a test that fails and whose teardown then hangs (pytest's own limit stops at the failure).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

LEFT_BEHIND = """
import threading

def test_passes_and_leaves_a_thread_that_never_ends():
    threading.Thread(target=threading.Event().wait, name="left-behind").start()
"""

HANGS = """
import threading

def test_hangs():
    threading.Event().wait()
"""

FAILS_THEN_TEARDOWN_HANGS = """
import threading
import pytest

@pytest.fixture
def hangs_in_teardown():
    yield
    threading.Event().wait()

def test_fails(hangs_in_teardown):
    assert False
"""

PER_TEST_LIMIT = ("-o", "faulthandler_timeout=2", "-o", "faulthandler_exit_on_timeout=true")


def run(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_throwaway.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "SERVERPREP_TEST_EXIT_LIMIT": "2", "PYTEST_ADDOPTS": ""}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "harness.exitguard", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         *options, str(tmp_path / "test_throwaway.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )


def test_a_run_that_leaves_a_thread_behind_ends_with_its_stack(tmp_path):
    done = run(tmp_path, LEFT_BEHIND)
    assert "1 passed" in done.stdout, done.stdout
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Timeout (0:00:02)!" in done.stderr, done.stderr
    assert "in wait" in done.stderr, done.stderr  # the left-behind thread's stack


def test_a_hung_test_ends_the_run_by_the_suites_per_test_limit(tmp_path):
    settings = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert settings["faulthandler_exit_on_timeout"] is True
    assert 0 < float(settings["faulthandler_timeout"]) <= 1800
    done = run(tmp_path, HANGS, *PER_TEST_LIMIT)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "test_hangs" in done.stderr, done.stderr  # where it hung


def test_a_failed_test_whose_teardown_hangs_ends_the_run(tmp_path):
    done = run(tmp_path, FAILS_THEN_TEARDOWN_HANGS, *PER_TEST_LIMIT)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Timeout (0:00:02)!" in done.stderr and "hangs_in_teardown" in done.stderr, done.stderr

"""The suite's guard against a run that never ends (tests/harness/exitguard.py, pyproject.toml).

Proves, with a real pytest process on a throwaway test file: a run whose tests pass but which
leaves a thread that never ends (as a gRPC server left running did) ends all the same, with status
1 and that thread's stack on stderr, once the guard's limit has passed; and a test that hangs ends
the run the same way, by the per-test limit the suite's configuration sets. Without the guard the
first run would wait on that thread for good (here: until this test's own timeout).
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


def run(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_throwaway.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "SERVERPREP_TEST_EXIT_LIMIT": "2"}
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
    done = run(tmp_path, HANGS, "-o", "faulthandler_timeout=2", "-o", "faulthandler_exit_on_timeout=true")
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "test_hangs" in done.stderr, done.stderr  # where it hung

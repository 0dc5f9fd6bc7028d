"""Ctrl-C in the CLI wherever it lands: inside grpcio's own code it must not hang the command.

A KeyboardInterrupt raised inside grpcio (here, while its channel's lock is held as a log
stream is set up) left the lock held, and the ``Channel.close()`` after it waited for good: the
CLI printed nothing and never ended (grpc/grpc#19973; seen once in CI as a 30 s hang of
``test_ctrl_c_leaves_the_preparation_running_and_says_how_to_follow_it_again``). These tests
put the SIGINT at chosen places instead of at random times: a profile hook in the CLI's process
sends it from the K-th Python call made inside grpc or threading, for every K in a range, with
a real service, a real sshd target and a preparation that waits.

What they prove: the command ends, with status 130 and the way to follow again, wherever in
that range the signal lands. What they do not: places reached only through C code (the hook
sees Python calls), or other grpcio versions.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import register, wait_step
from harness.targets import behave
from serverprep.clients.cli import _run
from serverprep.clients.types import STEP_STATE_RUNNING

#: Places to interrupt: the calls of a `logs --follow` up to its first wait for the stream
#: (about 230 with grpcio 1.85; the run before the fix hung at the 163rd, in `with state.lock`
#: of grpc's channel as the stream was created).
PLACES = 240
#: Per place, how long the command may take to end before the run counts as hung.
HUNG_AFTER = 20

SCRIPT = textwrap.dedent("""
    import faulthandler, io, os, signal, sys, threading
    from contextlib import redirect_stderr
    from serverprep.clients.cli import _run

    address, name, prep_id, places, hung_after = sys.argv[1:4] + [int(a) for a in sys.argv[4:6]]
    GRPC = os.path.dirname(__import__("grpc").__file__) + os.sep
    THREADING = threading.__file__
    at = {"n": 0, "k": 0, "fired": None}

    def hook(frame, event, arg):
        if event != "call" or at["fired"]:
            return
        where = frame.f_code.co_filename
        if where.startswith(GRPC) or where == THREADING:
            at["n"] += 1
            if at["n"] == at["k"]:
                at["fired"] = f"{os.path.basename(where)}:{frame.f_code.co_name}:{frame.f_lineno}"
                print("place", at["k"], at["fired"], file=sys.__stderr__, flush=True)
                os.kill(os.getpid(), signal.SIGINT)

    for k in range(1, places + 1):
        at.update(n=0, k=k, fired=None)
        faulthandler.dump_traceback_later(hung_after, exit=True)  # a hang ends the run with every stack
        err = io.StringIO()
        sys.setprofile(hook)
        try:
            with redirect_stderr(err):
                code = _run(["--address", address, "logs", name, "--id", prep_id, "--follow"], io.StringIO())
        except KeyboardInterrupt:
            code = "KeyboardInterrupt escaped"
        finally:
            sys.setprofile(None)
        faulthandler.cancel_dump_traceback_later()
        if not at["fired"]:
            sys.exit(f"place {k}: no call inside grpc left to interrupt")
        said = err.getvalue()
        if code != 130 or "Traceback" in said or not ("stopped following" in said or said == "serverprep: interrupted\\n"):
            sys.exit(f"place {k} ({at['fired']}): exit {code}, said {said!r}")
    print("all", places, "ended with 130", flush=True)
""")


@pytest.fixture
def waiting(service, client, sim):  # type: ignore[no-untyped-def]
    """A preparation whose update_packages prints a line, then waits until the test ends."""
    register(client, sim)
    release = sim.extra["sim"] / "release"
    behave(sim, "apt-get", f'case "$*" in *update*) echo waiting; while [ ! -e {release} ]; do sleep 0.1; done;; esac')
    assert _run(["--address", service.address, "prepare", "sim", "--docker-source", "distro"], io.StringIO()) == 0
    wait_step(client, "sim", "update_packages", STEP_STATE_RUNNING)
    yield client.status("sim")
    release.touch()


def test_ctrl_c_anywhere_inside_grpc_ends_the_follow_with_130_and_the_hint(service, waiting, tmp_path):
    script = tmp_path / "places.py"
    script.write_text(SCRIPT)
    run = subprocess.run([sys.executable, str(script), service.address, "sim", waiting.id, str(PLACES), str(HUNG_AFTER)],
                         capture_output=True, text=True, timeout=PLACES * HUNG_AFTER)
    last = [line for line in run.stderr.splitlines() if line.startswith("place ")][-1:]
    assert run.returncode == 0, f"{last}\n{run.stdout}\n{run.stderr[-4000:]}"
    assert run.stdout.strip() == f"all {PLACES} ended with 130"


def test_a_second_ctrl_c_quits_even_when_closing_the_channel_hangs(service, waiting, tmp_path):
    """The way out when closing hangs anyway: here ``Client.close`` is made to block for good (a fake)."""
    script = tmp_path / "stuck.py"
    script.write_text(textwrap.dedent("""
        import sys, threading
        from serverprep.clients.client import Client
        def stuck(self):
            print("closing", file=sys.stderr, flush=True)
            threading.Event().wait()
        Client.close = stuck
        from serverprep.clients.cli import main
        sys.exit(main())
    """))
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, str(script), "--address", service.address, "logs", "sim", "--id", waiting.id,
                             "--follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        while "| waiting" not in proc.stdout.readline():  # type: ignore[union-attr]
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        proc.send_signal(signal.SIGINT)
        assert proc.stderr.readline() == "closing\n"  # type: ignore[union-attr]  # the first asked for the close, which never ends
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err == "serverprep: interrupted again; quitting now\n"


def test_ctrl_c_while_the_command_line_is_parsed_says_interrupted_without_a_traceback(tmp_path):
    script = tmp_path / "early.py"
    script.write_text(textwrap.dedent("""
        import os, signal, sys
        from serverprep.clients import cli
        build = cli.build_parser
        def interrupted():
            os.kill(os.getpid(), signal.SIGINT)  # the KeyboardInterrupt comes at the next bytecode, before the parser exists
            return build()
        cli.build_parser = interrupted
        sys.exit(cli.main(["version"]))
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stderr, run.stdout) == (130, "serverprep: interrupted\n", "")

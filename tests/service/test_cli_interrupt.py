"""Ctrl-C in the CLI wherever it lands: inside grpcio's own code it must not hang the command.

A KeyboardInterrupt raised inside grpcio (here, while its channel's lock is held as a log
stream is set up) left the lock held, and the ``Channel.close()`` after it waited for good: the
CLI printed nothing and never ended (grpc/grpc#19973; seen once in CI as a 30 s hang of
``test_ctrl_c_leaves_the_preparation_running_and_says_how_to_follow_it_again``). The first
tests put the SIGINT at chosen places instead of at random times: a profile hook in the CLI's
process sends it from the K-th Python call made inside grpc or threading (where the CLI must
raise nothing), or inside the CLI's own code (where it raises KeyboardInterrupt), for every K
while the command watches Ctrl-C, with a real service, a real sshd target and a preparation that
waits (or has failed).

What they prove: wherever the signal lands, the command ends with status 130 and no traceback,
and once ``follow()`` has started, with the way to follow again; ``status`` of a FAILED
preparation does not swallow it in the log read it makes as a courtesy. The others: a second
Ctrl-C quits even if closing hangs (a fake close that blocks); Ctrl-C at a password prompt on a
real pseudo-terminal ends the command and gives echo back; an ignored SIGINT stays ignored; a
Ctrl-C in one command does not mark the next ones in the same process. What they do not prove:
places reached only through C code (the hook sees Python calls), the instants before the command
installs its handler and after it gives Python's back (parsing the command line), or other grpcio versions.
"""

from __future__ import annotations

import io
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import textwrap
import time

import pytest

from conftest import register, wait_done
from harness.targets import behave
from serverprep.clients.cli import _run

#: Places to interrupt, inside grpc: the calls of a `logs --follow` up to its first wait for the
#: stream (about 230 with grpcio 1.85; the run before the fix hung at the 163rd, in
#: `with state.lock` of grpc's channel as the stream was created); in our own code, every call.
PLACES = {"grpc": 240, "ours": 1000}
#: Per place, how long the command may take to end before the run counts as hung.
HUNG_AFTER = 20

SCRIPT = textwrap.dedent("""
    import faulthandler, io, os, signal, sys, threading
    from contextlib import redirect_stderr
    from serverprep.clients.cli import follow, main

    places, hung_after, mode, *command = [int(a) for a in sys.argv[1:3]] + sys.argv[3:]
    GRPC = os.path.dirname(__import__("grpc").__file__) + os.sep
    THREADING = threading.__file__
    OURS = os.path.dirname(follow.__file__) + os.sep
    STREAM_WAIT = (GRPC + "_common.py", "wait")  # a log stream waiting for its next message
    at = {"n": 0, "k": 0, "fired": None, "following": False, "last": False}

    def hook(frame, event, arg):
        if event != "call" or at["fired"] or signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            return  # only while the command watches Ctrl-C: before and after, Python's own handler is in place
        where = frame.f_code.co_filename
        if where.startswith(GRPC) or where == THREADING if mode == "grpc" else where.startswith(OURS):
            at["n"] += 1
        # Our own code runs out of places once the stream waits: that wait is the last place.
        at["last"] = mode == "ours" and (where, frame.f_code.co_name) == STREAM_WAIT
        if at["n"] == at["k"] or at["last"]:
            at["fired"] = f"{os.path.basename(where)}:{frame.f_code.co_name}:{frame.f_lineno}"
            below = frame.f_back  # follow() itself just called: the signal lands before its first line
            while below is not None and below.f_code is not follow.follow.__code__:
                below = below.f_back
            at["following"] = below is not None
            print("place", at["k"], at["fired"], file=sys.__stderr__, flush=True)
            os.kill(os.getpid(), signal.SIGINT)

    for k in range(1, places + 1):
        at.update(n=0, k=k, fired=None, following=False, last=False)
        faulthandler.dump_traceback_later(hung_after, exit=True)  # a hang ends the run with every stack
        err = io.StringIO()
        sys.setprofile(hook)
        try:
            with redirect_stderr(err):
                code = main(command, io.StringIO())
        except KeyboardInterrupt:
            code = "KeyboardInterrupt escaped"
        finally:
            sys.setprofile(None)
        faulthandler.cancel_dump_traceback_later()
        if not at["fired"]:  # the command made fewer calls than k: every place was tried
            print("ended with 130 at", k - 1, "places", flush=True)
            sys.exit()
        said = err.getvalue()
        # Once the log is being followed, the way to follow it again must be said (before, the command
        # may still reach the log as the channel closes).
        hint = said.startswith("serverprep: stopped following")
        told = "Traceback" not in said and (hint or (not at["following"] and said == "serverprep: interrupted\\n"))
        if code != 130 or not told:
            sys.exit(f"place {k} ({at['fired']}, following: {at['following']}): exit {code}, said {said!r}")
        if at["last"]:
            print("ended with 130 at", k, "places", flush=True)
            sys.exit()
    print("ended with 130 at", places, "places", flush=True)
""")


def places(address: str, tmp_path, mode: str, *command: str, cap: int = 0) -> str:  # type: ignore[no-untyped-def]
    """Run ``command`` once per place (up to ``cap``, else PLACES), interrupted there; what the script printed at the end.

    The places are the Python calls inside grpc and threading (``mode="grpc"``), where Ctrl-C must
    raise nothing, or inside the CLI's own code (``"ours"``), where it raises KeyboardInterrupt."""
    script = tmp_path / "places.py"
    script.write_text(SCRIPT)
    cap = cap or PLACES[mode]
    run = subprocess.run([sys.executable, str(script), str(cap), str(HUNG_AFTER), mode, "--address", address, *command],
                         capture_output=True, text=True, timeout=cap * HUNG_AFTER)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-4000:]}"
    return run.stdout.strip()


@pytest.mark.parametrize("mode", ["grpc", "ours"])
def test_ctrl_c_anywhere_ends_the_follow_with_130_and_the_hint(service, waiting, tmp_path, mode):
    said = places(service.address, tmp_path, mode, "logs", "sim", "--id", waiting.id, "--follow")
    if mode == "grpc":
        assert said == f"ended with 130 at {PLACES[mode]} places"
    else:  # every call of ours up to the stream's first wait
        assert said.startswith("ended with 130 at ") and 20 < int(said.split()[4]) < PLACES[mode]


@pytest.mark.parametrize("mode", ["grpc", "ours"])
def test_ctrl_c_anywhere_ends_the_status_of_a_failed_preparation_with_130(service, client, sim, tmp_path, mode):
    """``status`` of a FAILED preparation also reads its log for the failed command's last lines: a
    Ctrl-C there must end the command, not just skip the lines."""
    register(client, sim)
    behave(sim, "apt-get", 'case "$*" in *install*) echo "E: Unable to locate package" >&2; exit 100;; esac')
    assert _run(["--address", service.address, "prepare", "sim", "--docker-source", "distro"], io.StringIO()) == 0
    wait_done(client, "sim")
    said = places(service.address, tmp_path, mode, "status", "sim", "--exit-code", cap=1000)
    assert said.startswith("ended with 130 at ") and 10 < int(said.split()[4]) < 1000  # every place of the command


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


def test_ctrl_c_at_a_password_prompt_ends_the_command_and_gives_the_terminal_back(tmp_path):
    """getpass on a real pseudo-terminal, Ctrl-C typed into it: no grpc call is running, so the
    KeyboardInterrupt comes at once, and getpass turns echo back on."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: exec at once
        os.environ["NO_COLOR"] = "1"
        os.execv(sys.executable, [sys.executable, "-m", "serverprep.clients.cli", "--address", "127.0.0.1:1", "servers",
                                  "add", "web1", "--host", "h", "--user", "u", "--password-stdin", "--accept-new-host-key"])
    try:
        said = read_until(terminal, b"password: ")
        assert not termios.tcgetattr(terminal)[3] & termios.ECHO  # getpass has turned echo off
        os.write(terminal, b"\x03")
        said += read_until(terminal, b"interrupted\r\n")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 130, said
        assert said.endswith(b"serverprep: interrupted\r\n") and b"Traceback" not in said
        assert termios.tcgetattr(terminal)[3] & termios.ECHO  # and back on
    finally:
        os.close(terminal)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def read_until(fd: int, text: bytes) -> bytes:
    """What the terminal shows up to ``text`` (bounded: the test fails instead of waiting for good)."""
    seen, deadline = b"", time.monotonic() + 60
    while text not in seen:
        assert time.monotonic() < deadline, f"never saw {text!r}: {seen!r}"
        if select.select([fd], [], [], 1)[0]:
            seen += os.read(fd, 1024)
    return seen


def test_an_ignored_sigint_stays_ignored(service, waiting, sim):
    """`cmd &` in a script starts the command with SIGINT ignored: a SIGINT then must not stop the follow."""
    follow = subprocess.Popen(["sh", "-c", 'trap "" INT; exec "$@"', "sh", sys.executable, "-m", "serverprep.clients.cli",
                               "--address", service.address, "logs", "sim", "--id", waiting.id, "--follow"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    try:
        while "| waiting" not in follow.stdout.readline():  # type: ignore[union-attr]
            assert follow.poll() is None, follow.stderr.read()  # type: ignore[union-attr]
        follow.send_signal(signal.SIGINT)
        (sim.extra["sim"] / "release").touch()
        out, err = follow.communicate(timeout=120)
    finally:
        follow.kill()
    assert follow.returncode == 0, err
    assert "✔ step 7/7 verify_docker SUCCEEDED" in out


def test_after_an_interrupted_command_the_next_ones_in_the_process_are_not_interrupted(service, waiting, sim, tmp_path):
    """A program may run several commands in one process, in threads too: Ctrl-C in one is not theirs."""
    script = tmp_path / "next.py"
    script.write_text(textwrap.dedent("""
        import io, os, pathlib, signal, sys, threading
        from contextlib import redirect_stderr
        from serverprep.clients.cli import main as _run  # as the command runs
        address, prep_id, release = sys.argv[1:]
        follow = ["--address", address, "logs", "sim", "--id", prep_id, "--follow"]

        def hook(frame, event, arg):  # Ctrl-C at the first call into grpc once the command has its client
            if event == "call" and "grpc" in frame.f_code.co_filename and signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
                sys.setprofile(None)
                os.kill(os.getpid(), signal.SIGINT)

        sys.setprofile(hook)
        first = _run(follow, io.StringIO())
        sys.setprofile(None)
        pathlib.Path(release).touch()
        said, codes = io.StringIO(), []
        with redirect_stderr(said):
            in_thread = threading.Thread(target=lambda: codes.append(_run(follow, io.StringIO())))  # to the end
            in_thread.start()
            in_thread.join()
            codes.append(_run(["--address", "127.0.0.1:1", "--timeout", "5", "health"], io.StringIO()))
        print(first, codes, said.getvalue().count("cannot reach the service at 127.0.0.1:1"))
    """))
    run = subprocess.run([sys.executable, str(script), service.address, waiting.id, str(sim.extra["sim"] / "release")],
                         capture_output=True, text=True, timeout=180)
    assert run.stdout == "130 [0, 1] 1\n", run.stderr

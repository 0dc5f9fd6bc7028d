"""Ctrl-C in a program that uses the Python library: wherever it lands in grpcio, the program ends.

The library installs no signal handler (the CLI's guard, clients/cli/interrupt.py, is the CLI's),
so Python's own handler raises KeyboardInterrupt at whatever Python call runs, grpcio's included.
Raised while grpcio sets up a log stream, it left the channel waiting for a call that never ends,
and ``Client.close()`` (the ``with`` block's end) waited for good: at the 25th place with grpcio
1.85 (grpc/grpc#19973). ``close`` now waits ``CLOSE_WAIT`` seconds at most and leaves such a close
to a daemon thread, with a warning.

What this proves, with a real service, a real sshd target and a preparation that waits: a SIGINT
at any of the first Python calls inside grpc or threading of ``with Client() as sp: for e in
sp.stream_logs(...)`` ends the ``with`` block, and the process then exits. What it does not prove:
that the exception the program sees is always KeyboardInterrupt (grpcio may turn it into another:
a ``RuntimeError`` from a lock it was releasing was seen at one place), places reached only through
C code, or later places in the stream's wait (each costs a tenth of a second more than the last).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading

from serverprep.clients import Client

#: Per place, how long the program may take to end before the run counts as hung.
HUNG_AFTER = 20

#: The first Python calls inside grpc and threading as the stream starts and waits (the run before
#: the fix hung at the 25th).
PLACES = 60

SCRIPT = textwrap.dedent("""
    import faulthandler, logging, os, signal, sys, threading
    from serverprep.clients import Client

    address, prep_id, places, hung_after = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    GRPC = os.path.dirname(__import__("grpc").__file__) + os.sep
    at = {"n": 0, "k": 0, "fired": None, "on": False}
    left = []
    logging.getLogger("serverprep.clients.client").addHandler(logging.Handler())  # count the warnings, not print them
    logging.getLogger("serverprep.clients.client").handlers[0].emit = left.append

    def hook(frame, event, arg):
        if event != "call" or at["fired"] or not at["on"]:
            return
        where = frame.f_code.co_filename
        if where.startswith(GRPC) or where == threading.__file__:
            at["n"] += 1
            if at["n"] == at["k"]:
                at["fired"] = f"{os.path.basename(where)}:{frame.f_code.co_name}:{frame.f_lineno}"
                os.kill(os.getpid(), signal.SIGINT)

    for k in range(1, places + 1):
        at.update(n=0, k=k, fired=None, on=False)
        faulthandler.dump_traceback_later(hung_after, exit=True)  # a hang ends the run with every stack
        sys.setprofile(hook)
        try:
            with Client(address) as sp:
                at["on"] = True
                for entry in sp.stream_logs("sim", prep_id):
                    pass
            sys.exit(f"place {k}: the stream ended")
        except BaseException as e:  # KeyboardInterrupt, or what grpcio made of it
            if isinstance(e, SystemExit):
                raise
        finally:
            at["on"] = False
            sys.setprofile(None)
        faulthandler.cancel_dump_traceback_later()
        if not at["fired"]:
            sys.exit(f"place {k}: no Ctrl-C, yet the stream ended")
    faulthandler.dump_traceback_later(hung_after, exit=True)  # the exit too, with the closes left behind
    print(f"ended at {places} places; {len(left)} closes left in the background", flush=True)
""")


def test_ctrl_c_anywhere_in_a_log_stream_ends_the_with_block_and_the_program(service, waiting, tmp_path):
    script = tmp_path / "library.py"
    script.write_text(SCRIPT)
    run = subprocess.run([sys.executable, str(script), service.address, waiting.id, str(PLACES), str(HUNG_AFTER)],
                         capture_output=True, text=True, timeout=PLACES * HUNG_AFTER)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-4000:]}"
    said, closes = run.stdout.strip().rsplit("; ", 1)
    assert said == f"ended at {PLACES} places"
    # Some places leave grpcio's close waiting for good, else this test proves nothing about them.
    assert int(closes.split()[0]) >= 1, f"{closes}: has this grpcio fixed grpc/grpc#19973? Then this check can go"


def test_close_ends_a_stream_in_flight_and_leaves_nothing_behind(service, waiting, caplog):
    """The usual close: a stream another thread is reading ends CANCELLED, and grpcio's close returns (no warning)."""
    sp = Client(service.address)
    reading, ended = threading.Event(), []

    def read() -> None:
        try:
            for _ in sp.stream_logs("sim", waiting.id):
                reading.set()
        except Exception as e:  # noqa: BLE001 - what the stream ended with is the result
            ended.append(e)

    reader = threading.Thread(target=read)
    reader.start()
    assert reading.wait(60)
    with caplog.at_level(logging.WARNING, logger="serverprep.clients.client"):
        sp.close()
    reader.join(30)
    assert not reader.is_alive() and len(ended) == 1
    assert getattr(ended[0], "code", None) is not None and ended[0].code.name == "CANCELLED", ended  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.name == "serverprep.clients.client"], caplog.text


def test_close_while_python_shuts_down_closes_directly(tmp_path):
    """No thread can start then (RuntimeError from 3.12 on), and in 3.11 one started from a finalizer never
    runs: close() from a finalizer or an ``atexit`` hook closes on the spot, and the program ends."""
    script = tmp_path / "shutdown.py"
    script.write_text(textwrap.dedent("""
        import atexit, sys
        from serverprep.clients import Client

        class Holder:  # a module global, finalized as the interpreter shuts down
            def __init__(self):
                self.client = Client("127.0.0.1:1")
            def __del__(self):
                self.client.close()
                print("closed in a finalizer", file=sys.stderr, flush=True)

        holder = Holder()
        late = Client("127.0.0.1:1")
        atexit.register(lambda: (late.close(), print("closed at exit", file=sys.stderr, flush=True)))
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stderr) == (0, "closed at exit\nclosed in a finalizer\n")

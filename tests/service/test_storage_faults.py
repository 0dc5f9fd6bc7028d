"""A full disk and a read-only database: clear errors, no corruption, recovery once space is back."""

import sqlite3
import subprocess
import sys

import pytest

from harness.service import wait_serving
from harness.targets import free_port
from serverprep.clients.client import Client, ServerprepClientError

pytestmark = pytest.mark.sshd  # needs root for mount namespaces


def start_in_namespace(data, script, address):
    """serverprep serve in a private mount namespace after ``script`` prepared ``data`` there."""
    serve = f'exec "{sys.executable}" -m serverprep.clients.cli serve --listen {address} --data-dir {data}'
    log = open(data.parent / "service.log", "ab")
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", f"set -e; {script}; {serve}"],
                            stdout=log, stderr=subprocess.STDOUT)
    return proc


def test_full_disk_is_a_clear_error_and_writes_resume_when_space_returns(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    address = f"127.0.0.1:{free_port()}"
    proc = start_in_namespace(data, f"mount -t tmpfs -o size=400k tmpfs {data}", address)
    try:
        wait_serving(address, proc)
        with Client(address) as client:
            error = None
            for i in range(500):
                try:
                    client.create_server(f"s{i}", host="127.0.0.1", user="u", password="p" * 1000, accept_new_host_key=True)
                except ServerprepClientError as e:
                    error = e
                    break
            assert error is not None, "the disk never filled"
            assert error.reason == "STORAGE_ERROR" and "full" in error.message, error
            stored = len(list(client.list_servers()))  # reads still work
            assert stored == i
            # Space comes back: writes work again, without a restart.
            subprocess.run(["nsenter", f"--target={proc.pid}", "--mount", "mount", "-o", "remount,size=8m", str(data)], check=True)
            client.create_server("after", host="127.0.0.1", user="u", password="p", accept_new_host_key=True)
            assert len(list(client.list_servers())) == stored + 1
            db = f"/proc/{proc.pid}/root{data}/serverprep.db"
            check = sqlite3.connect(db)
            assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            check.close()
    finally:
        proc.terminate()
        proc.wait(30)


def test_read_only_database_refuses_to_start_with_a_clear_message(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    address = f"127.0.0.1:{free_port()}"
    # A first start creates the database.
    proc = start_in_namespace(data, "true", address)
    wait_serving(address, proc)
    with Client(address) as client:
        client.create_server("web1", host="127.0.0.1", user="u", password="p", accept_new_host_key=True)
    proc.terminate()
    proc.wait(30)
    out = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'mount --bind -o ro {data} {data} && exec "{sys.executable}" -m serverprep.clients.cli serve --listen {address} --data-dir {data}'],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1
    assert "cannot run the service" in out.stderr and "database" in out.stderr and "read" in out.stderr.lower()
    assert "Traceback" not in out.stderr
    check = sqlite3.connect(data / "serverprep.db")
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert check.execute("SELECT name FROM server").fetchall() == [("web1",)]

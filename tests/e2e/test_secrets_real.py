"""Secrets on a real target: real sudo with a password, real apt through a real proxy that asks for one.

Debian 12 booted with systemd under systemd-nspawn; the proxy is a small forward proxy on
loopback (in this test) that requires Basic authentication and relays to Debian's archive. While
the preparation runs, every /proc/*/cmdline of the machine is read; afterwards sudo's own log on
the target (the journal, where sudo writes COMMAND=) is searched. Proves that neither the proxy
password nor the sudo password is ever in a command line or in sudo's log, and that both still
reach apt and sudo.
"""

from __future__ import annotations

import base64
import http.server
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import wait_done
from harness.targets import nspawn_debian
from serverprep.v1 import preparations_pb2 as pb

pytestmark = pytest.mark.e2e

PROXY_USER, PROXY_PW, SUDO_PW = "builder", "Prx-Real-S3cret-5150", "Sudo-Real-S3cret-5151"


class AuthProxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.authorized = 0
        self.refused = 0


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: AuthProxy
    expected = "Basic " + base64.b64encode(f"{PROXY_USER}:{PROXY_PW}".encode()).decode()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.headers.get("Proxy-Authorization") != self.expected:
            self.server.refused += 1
            self.send_response(407)
            self.send_header("Proxy-Authenticate", 'Basic realm="test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.server.authorized += 1
        request = urllib.request.Request(self.path, headers={"User-Agent": self.headers.get("User-Agent", "apt")})
        try:
            with urllib.request.urlopen(request, timeout=60) as upstream:
                status, headers, body = upstream.status, upstream.headers, upstream.read()
        except urllib.error.HTTPError as e:
            status, headers, body = e.code, e.headers, e.read()
        self.send_response(status)
        for name in ("Content-Type", "Last-Modified", "ETag"):
            if headers.get(name):
                self.send_header(name, headers[name])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def scan_cmdlines(secrets: tuple[str, ...], stop: threading.Event, found: set[str], scans: list[int]) -> None:
    while not stop.is_set():
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(s in text for s in secrets):
                found.add(text[:300])
        scans[0] += 1
        time.sleep(0.002)


def test_proxy_and_sudo_passwords_never_in_a_command_line_or_sudo_log(client):
    proxy = AuthProxy()
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    url = f"http://{PROXY_USER}:{PROXY_PW}@127.0.0.1:{proxy.server_address[1]}"
    try:
        with nspawn_debian("bookworm", sudo="password", password=SUDO_PW) as target:
            client.create_server("secrets", host=target.host, user=target.user, private_key=target.key.private,
                                 host_key=target.host_key, sudo_password=SUDO_PW)
            found: set[str] = set()
            scans, stop = [0], threading.Event()
            watcher = threading.Thread(target=scan_cmdlines, args=((PROXY_PW, SUDO_PW), stop, found, scans))
            watcher.start()
            try:
                prep = client.prepare("secrets", docker_source="distro", http_proxy=url, https_proxy=url)
                done = wait_done(client, "secrets", prep.id, timeout=600)
            finally:
                stop.set()
                watcher.join()
            logs = [e.text for e in client.stream_logs("secrets", prep.id, follow=False)]
            assert done.state == pb.PREPARATION_STATE_SUCCEEDED, (done.failure, logs[-20:])
            sudo_log = _sudo_journal(target)
    finally:
        proxy.shutdown()
    print(f"\nreal sudo + proxy: /proc scanned {scans[0]} times; proxy requests with the right password: "
          f"{proxy.authorized}, refused: {proxy.refused}; sudo log lines: {sudo_log.count('COMMAND=')}")
    assert not found, found
    assert proxy.authorized > 0  # the password reached apt, through its environment
    assert "COMMAND=" in sudo_log and PROXY_PW not in sudo_log and SUDO_PW not in sudo_log
    assert not any(PROXY_PW in t or SUDO_PW in t for t in logs)


def _sudo_journal(target) -> str:  # type: ignore[no-untyped-def]
    """What sudo logged on the target (journald keeps it under _COMM=sudo), read with sudo, the password on stdin."""
    import asyncio

    import asyncssh

    async def go() -> str:
        key = asyncssh.import_private_key(target.key.private)
        async with asyncssh.connect(target.host, target.port, username=target.user, client_keys=[key],
                                    known_hosts=None, agent_path=None, config=[]) as conn:
            result = await conn.run("sudo -S -p '' journalctl --no-pager -q _COMM=sudo", input=SUDO_PW + "\n", check=False)
            return str(result.stdout)

    return asyncio.run(go())

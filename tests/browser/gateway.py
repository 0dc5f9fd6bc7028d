"""Run ``serverprep web`` as its own process, as a person would, and talk to it over HTTP."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

URL_LINE = re.compile(r"serverprep web: (https?://\S+/) \(service (\S+)\)")


@dataclass
class WebGateway:
    url: str
    proc: subprocess.Popen[str]
    log: Path
    csrf: str = ""
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
        """One request; the answer's status, headers (lower-case names) and body."""
        h = {"Host": f"127.0.0.1:{self.port}", **self._cookie_header(), **(headers or {})}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        status, _, data = self.request(method, path, body, headers)
        return status, json.loads(data) if data else None

    def action(self, server: str, action: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """An action as the page sends it: JSON, the CSRF token, our own Origin."""
        if not self.csrf:
            self.csrf = self.json("GET", "/api/session")[1]["csrf"]
        return self.json("POST", f"/api/servers/{server}/{action}", body or {},
                         {"X-CSRF-Token": self.csrf, "Origin": f"http://127.0.0.1:{self.port}"})

    def _cookie_header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}

    def events(self, path: str, headers: dict[str, str] | None = None, timeout: float = 30) -> Iterator[tuple[str, str, Any]]:
        """Read a server-sent event stream: (event, id, data) as they come."""
        conn = self.connection(timeout)
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{self.port}", "Accept": "text/event-stream",
                                           **self._cookie_header(), **(headers or {})})
        r = conn.getresponse()
        assert r.status == 200, (r.status, r.read())
        name, ident, data = "message", "", []
        try:
            while True:
                raw = r.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\n")
                if not line:
                    if data:
                        yield name, ident, json.loads("\n".join(data))
                    name, data = "message", []
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("id: "):
                    ident = line[4:]
                elif line.startswith("data: "):
                    data.append(line[6:])
        finally:
            conn.close()


@contextlib.contextmanager
def web_gateway(address: str, *extra: str, workdir: Path, env: dict[str, str] | None = None,
                listen: str = "127.0.0.1:0") -> Iterator[WebGateway]:
    """``serverprep web --address ADDRESS --listen 127.0.0.1:0 EXTRA...``, until the block ends."""
    log = workdir / "web.log"
    cmd = [sys.executable, "-m", "serverprep.clients.cli", "web", "--address", address, "--listen", listen, *extra]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, **(env or {})})
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                line = proc.stdout.readline()
                break
        match = URL_LINE.search(line)
        if not match:
            raise RuntimeError(f"serverprep web did not start (exit {proc.poll()}): {line!r}\n{log.read_text()[-3000:]}")
        yield WebGateway(match.group(1).replace("0.0.0.0", "127.0.0.1"), proc, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

"""serverprep web against a real service: its JSON endpoints, its event streams, and what it refuses.

The gateway runs as its own process (the real CLI); the service is real (gRPC on a port, SQLite);
servers are either unreachable addresses (preparations fail at once, no root needed) or the
simulated target (real sshd, stand-in package tools). What a browser does with all this is in
tests/browser.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import pytest
from browser.gateway import web_gateway

from conftest import register, wait_done
from harness.targets import behave, free_port
from serverprep.clients.client import Client

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJlYWxseSBub3QgYSByZWFsIGtleSBqdXN0IGJ5dGVz"
SECURITY_HEADERS = {"x-frame-options": "DENY", "x-content-type-options": "nosniff"}


def unreachable(client: Client, name: str) -> None:
    """A server whose SSH port refuses connections: a preparation of it fails at once with CONNECTION_REFUSED."""
    client.create_server(name, host="127.0.0.1", port=free_port(), user="nobody", password="not-used", host_key=HOST_KEY)


@pytest.fixture
def web(service, tmp_path):  # type: ignore[no-untyped-def]
    with web_gateway(service.address, "--refresh", "0.5", workdir=tmp_path) as gw:
        yield gw


def wait_for(check, timeout: float = 20, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what} not reached after {timeout}s")


def fleet_row(web, name):  # type: ignore[no-untyped-def]
    status, data = web.json("GET", "/api/fleet")
    assert status == 200
    return next((r for r in data["rows"] if r["name"] == name), None)


# -- pages, headers, the session -----------------------------------------------------


def test_page_and_files_carry_security_headers_and_no_inline_script(web):
    for path in ("/", "/static/app.js", "/static/style.css", "/api/session", "/api/fleet", "/nope"):
        status, headers, body = web.request("GET", path)
        assert status == (404 if path == "/nope" else 200), path
        for name, value in SECURITY_HEADERS.items():
            assert headers.get(name) == value, (path, name)
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    _, headers, page = web.request("GET", "/")
    assert headers["content-type"].startswith("text/html")
    text = page.decode()
    # Every script is a file of ours (the CSP would block an inline one anyway): none inline, none from elsewhere.
    assert "<script>" not in text and "onclick" not in text.lower() and "http" not in text.split("<body>")[0]
    _, headers, _ = web.request("GET", "/static/app.js")
    assert headers["content-type"].startswith("text/javascript")
    # Only the page's own files are served: nothing else from the package or the disk.
    for path in ("/static/../cli.py", "/static/cli.py", "/static/%2e%2e%2fapp.py", "/static/index.html.bak"):
        assert web.request("GET", path)[0] == 404, path


def test_session_gives_a_csrf_token_and_no_credential(service, tmp_path):
    """With the service behind a token, the gateway holds it: no answer to the browser contains it."""
    from harness.service import ServiceThread

    secret = "svc-token-" + "x" * 24
    svc = ServiceThread(tmp_path / "data2", token=secret).start()
    try:
        token_file = tmp_path / "token"
        token_file.write_text(secret + "\n")
        with Client(svc.address, token=secret) as c:
            unreachable(c, "web1")
        with web_gateway(svc.address, "--token-file", str(token_file), "--refresh", "0.5", workdir=tmp_path) as web:
            wait_for(lambda: fleet_row(web, "web1"), what="web1 in the fleet")
            status, session = web.json("GET", "/api/session")
            assert status == 200 and len(session["csrf"]) >= 32 and session["login"] is False
            seen = b""
            for path in ("/", "/api/session", "/api/fleet", "/api/gateway", "/api/servers/web1", "/static/app.js"):
                status, headers, body = web.request("GET", path)
                assert status == 200, (path, body)
                seen += body + repr(headers).encode()
            events = web.events("/api/events")
            seen += repr(next(events)).encode()
            events.close()
            assert secret.encode() not in seen
    finally:
        svc.stop()


# -- JSON endpoints and actions -------------------------------------------------------


def test_fleet_and_server_endpoints_show_latest_preparation_and_failure(client, web):
    unreachable(client, "down1")
    unreachable(client, "fresh1")
    prep = client.prepare("down1", docker_source="distro")
    done = wait_done(client, "down1", prep.id, timeout=30)
    # The state comes from the stream at once, the failure's details from the Status call it triggers.
    row = wait_for(lambda: (r := fleet_row(web, "down1")) and r["state"] == "FAILED" and r["failure"] and r,
                   what="down1 FAILED in the fleet, with its reason")
    assert row["id"] == prep.id and row["failure"]["reason"] == done.failure.reason == "CONNECTION_REFUSED"
    assert row["steps"][0] == "FAILED" and row["steps"][1:] == ["PENDING"] * 6
    # (a sweep may have listed the servers between the two registrations: the next one finds fresh1)
    assert wait_for(lambda: fleet_row(web, "fresh1"), what="fresh1 in the fleet")["state"] == "NONE"
    status, data = web.json("GET", "/api/servers/down1")
    assert status == 200
    assert data["server"]["name"] == "down1" and "private_key" not in data["server"] and data["server"]["has_password"]
    assert [p["id"] for p in data["preparations"]] == [prep.id]
    detail = data["preparations"][0]
    assert detail["steps"][0]["name"] == "detect_os" and detail["steps"][0]["state"] == "FAILED"
    assert detail["failure"]["reason"] == "CONNECTION_REFUSED" and detail["options"]["docker_source"] == "DISTRO"
    status, one = web.json("GET", f"/api/servers/down1/preparations/{prep.id}")
    assert status == 200 and one["preparation"]["id"] == prep.id
    # The API's errors, as JSON with their reason, and an HTTP status that fits.
    status, body = web.json("GET", "/api/servers/nosuch")
    assert status == 404 and body["error"]["reason"] == "SERVER_NOT_FOUND" and body["error"]["message"]
    status, body = web.json("GET", "/api/servers/down1/preparations/0123456789abcdef0123456789abcdef")
    assert status == 404 and body["error"]["reason"] == "PREPARATION_NOT_FOUND"
    status, body = web.json("GET", "/api/servers/down1/preparations/not-an-id")
    assert status == 400 and body["error"]["reason"] == "INVALID_ARGUMENT"


def test_actions_return_the_preparation_or_the_api_error(client, web):
    unreachable(client, "down1")
    status, body = web.action("down1", "prepare", {"docker_source": "distro", "request_id": "click-1"})
    assert status == 200 and body["preparation"]["state"] == "PENDING", body
    prep_id = body["preparation"]["id"]
    wait_done(client, "down1", prep_id, timeout=30)
    status, body = web.action("down1", "cancel", {"preparation_id": prep_id})
    assert status == 409 and body["error"]["reason"] == "NOT_CANCELLABLE", body
    status, body = web.action("down1", "retry", {"preparation_id": prep_id})
    assert status == 200 and body["preparation"]["id"] == prep_id and body["preparation"]["state"] in ("PENDING", "RUNNING")
    wait_done(client, "down1", prep_id, timeout=30)
    # The same click sent twice (request_id) is one preparation; other options with it are refused.
    status, again = web.action("down1", "prepare", {"docker_source": "distro", "request_id": "click-1"})
    assert status == 200 and again["preparation"]["id"] == prep_id
    status, body = web.action("down1", "prepare", {"docker_source": "official", "request_id": "click-1"})
    assert status == 409 and body["error"]["reason"] == "REQUEST_ID_REUSED", body
    status, body = web.action("nosuch", "retry")
    assert status == 404 and body["error"]["reason"] == "SERVER_NOT_FOUND"
    status, body = web.action("down1", "prepare", {"docker_source": "floppy"})
    assert status == 400 and body["error"]["reason"] == "INVALID_ARGUMENT"
    status, body = web.json("POST", "/api/servers/down1/prepare", b"{}", {"X-CSRF-Token": web.csrf, "Content-Type": "text/plain"})
    assert status == 415


def test_actions_without_the_csrf_token_or_from_another_site_are_refused(client, web):
    unreachable(client, "down1")
    csrf = web.json("GET", "/api/session")[1]["csrf"]
    own = f"http://127.0.0.1:{web.port}"
    refused = [
        {},                                                              # no token (a form or fetch from another site)
        {"X-CSRF-Token": "guess"},                                       # a wrong one
        {"X-CSRF-Token": csrf, "Origin": "http://evil.example"},         # the right one, sent from another origin
        {"X-CSRF-Token": csrf, "Origin": own, "Sec-Fetch-Site": "cross-site"},
    ]
    for headers in refused:
        status, body = web.json("POST", "/api/servers/down1/prepare", {"docker_source": "distro"}, headers)
        assert status == 403 and body["error"]["reason"] == "CSRF_REFUSED", headers
    status, _ = web.json("POST", "/logout", {}, {})
    assert status == 403
    assert not list(client.list_preparations("down1"))  # nothing was started
    status, body = web.json("POST", "/api/servers/down1/prepare", {"docker_source": "distro"},
                            {"X-CSRF-Token": csrf, "Origin": own, "Sec-Fetch-Site": "same-origin"})
    assert status == 200, body


def test_a_foreign_host_name_is_refused_on_loopback(web):
    """A DNS-rebinding page (evil.example resolving to 127.0.0.1) reaches the port but not the gateway."""
    status, _, body = web.request("GET", "/api/session", headers={"Host": f"evil.example:{web.port}"})
    assert status == 421 and b"HOST_NOT_ALLOWED" in body
    status, _, _ = web.request("GET", "/api/fleet", headers={"Host": f"localhost:{web.port}"})
    assert status == 200


def test_the_page_learns_when_the_service_goes_away(tmp_path):
    """The gateway outlives the service: its sweeps fail, and the fleet stream says why (reason and message)."""
    from harness.service import ServiceThread

    svc = ServiceThread(tmp_path / "data").start()
    with web_gateway(svc.address, "--refresh", "0.3", "--timeout", "2", workdir=tmp_path) as web:
        wait_for(lambda: web.json("GET", "/api/gateway")[1]["reachable"] is True, what="the first sweep")
        events = web.events("/api/events", timeout=30)
        assert next(events)[0] == "fleet"
        svc.stop()
        data = next(d for kind, _, d in events if kind == "rows" and d["gateway"]["reachable"] is False)
        events.close()
        assert data["gateway"]["error"]["reason"] == "SERVICE_UNAVAILABLE", data
        assert data["gateway"]["error"]["message"]
        assert web.json("GET", "/api/session")[0] == 200  # the gateway itself still answers
        status, body = web.json("GET", "/api/servers/web1")
        assert status == 503 and body["error"]["reason"] == "SERVICE_UNAVAILABLE"


# -- listening beyond loopback ---------------------------------------------------------


def test_a_non_loopback_listen_is_refused_without_a_login(service, tmp_path):
    run = subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "web", "--address", service.address,
                          "--listen", "0.0.0.0:0"], capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 2
    assert "refusing to serve the web view on 0.0.0.0 without a login" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "web", "--listen", "nonsense"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "--listen must be HOST:PORT" in run.stderr


def test_with_a_web_token_people_log_in_and_get_a_strict_cookie(service, client, tmp_path):
    unreachable(client, "down1")
    token = "web-login-" + "y" * 24
    (tmp_path / "web-token").write_text(token)
    with web_gateway(service.address, "--web-token-file", str(tmp_path / "web-token"), workdir=tmp_path,
                     listen="0.0.0.0:0") as web:
        assert "unencrypted" in web.log.read_text()  # warned: no TLS in front
        status, body = web.json("GET", "/api/fleet")
        assert status == 401 and body["error"]["reason"] == "LOGIN_REQUIRED"
        status, headers, _ = web.request("GET", "/")
        assert status == 303 and headers["location"] == "/login"
        assert web.request("GET", "/login")[0] == 200
        # A wrong token: back to the form, no cookie (and it cost a second).
        began = time.monotonic()
        status, headers, _ = web.request("POST", "/login", f"token={token}x".encode(),
                                         {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 303 and headers["location"] == "/login?failed=1" and "set-cookie" not in headers
        assert time.monotonic() - began >= 0.9
        # The login form sent from another site is refused.
        status, _, _ = web.request("POST", "/login", f"token={token}".encode(),
                                   {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"})
        assert status == 403
        status, headers, _ = web.request("POST", "/login", f"token={token}".encode(),
                                         {"Content-Type": "application/x-www-form-urlencoded",
                                          "Origin": f"http://127.0.0.1:{web.port}"})
        assert status == 303 and headers["location"] == "/"
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        name, value = cookie.split(";")[0].split("=", 1)
        assert token not in value and len(value) >= 32  # a session id, not the token
        web.cookies[name] = value
        status, data = web.json("GET", "/api/session")
        assert status == 200 and data["login"] is True and token not in repr(data)
        status, body = web.action("down1", "prepare", {"docker_source": "distro"})
        assert status == 200, body
        # Logged out: the session id is worth nothing any more.
        status, _ = web.json("POST", "/logout", {}, {"X-CSRF-Token": web.csrf, "Origin": f"http://127.0.0.1:{web.port}"})
        assert status == 200
        assert web.json("GET", "/api/fleet")[0] == 401


def test_https_with_a_login_sets_a_secure_host_only_cookie(service, tmp_path):
    import http.client
    import ssl

    from harness.tls import make_pki

    pki = make_pki(tmp_path)
    token = "web-login-" + "z" * 24
    (tmp_path / "web-token").write_text(token)
    with web_gateway(service.address, "--web-token-file", str(tmp_path / "web-token"), "--web-tls-cert", str(pki["server_cert"]),
                     "--web-tls-key", str(pki["server_key"]), workdir=tmp_path, listen="0.0.0.0:0") as web:
        assert web.url.startswith("https://") and "unencrypted" not in web.log.read_text()
        conn = http.client.HTTPSConnection("127.0.0.1", web.port, timeout=30,
                                           context=ssl.create_default_context(cafile=str(pki["ca"])))
        conn.request("POST", "/login", body=f"token={token}", headers={
            "Content-Type": "application/x-www-form-urlencoded", "Origin": f"https://127.0.0.1:{web.port}"})
        r = conn.getresponse()
        cookie = r.getheader("Set-Cookie") or ""
        conn.close()
        assert r.status == 303 and cookie.startswith("__Host-serverprep_session=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


# -- event streams ---------------------------------------------------------------------


@pytest.mark.sshd
def test_fleet_events_show_cells_running_then_succeeded(client, sim, web):
    for name in ("sim1", "sim2", "sim3"):
        register(client, sim, name)
    behave(sim, "apt-get", "sleep 1.5")
    events = web.events("/api/events", timeout=60)
    kind, _, first = next(events)
    assert kind == "fleet" and first["steps"][1] == "update_packages"
    assert {r["name"] for r in first["rows"]} <= {"sim1", "sim2", "sim3"}
    preps = {name: client.prepare(name, docker_source="distro").id for name in ("sim1", "sim2", "sim3")}
    seen: dict[str, list[str]] = {name: [] for name in preps}
    deadline = time.monotonic() + 60
    for kind, _, data in events:
        assert kind == "rows"
        for row in data["rows"]:
            if row["name"] in seen and row["id"] == preps[row["name"]]:
                cell = row["steps"][1]
                if not seen[row["name"]] or seen[row["name"]][-1] != cell:
                    seen[row["name"]].append(cell)
        if all(s and s[-1] == "SUCCEEDED" for s in seen.values()) or time.monotonic() > deadline:
            break
    events.close()
    for name, cells in seen.items():
        # update_packages was seen RUNNING (apt-get sleeps), then SUCCEEDED, in that order.
        assert "RUNNING" in cells and cells[-1] == "SUCCEEDED" and cells.index("RUNNING") < cells.index("SUCCEEDED"), (name, cells)
    status, stats = web.json("GET", "/api/gateway")
    assert stats["servers"] == 3 and stats["reachable"] is True


@pytest.mark.sshd
def test_log_stream_follows_then_resumes_after_the_last_event_id(client, sim, web):
    register(client, sim)
    behave(sim, "apt-get", 'for i in 1 2 3 4 5; do echo "line $i"; sleep 0.1; done; printf "\\033]0;owned\\007\\n"')
    prep = client.prepare("sim", docker_source="distro")
    entries, ends, last_id = [], [], ""
    for kind, ident, data in web.events(f"/api/servers/sim/preparations/{prep.id}/log", timeout=60):
        if kind == "entries":
            entries.extend(data)
            last_id = ident
            assert int(ident) == data[-1][0]
        elif kind in ("end", "failed"):
            ends.append((kind, data))
            break
    assert ends == [("end", {"state": "SUCCEEDED"})]
    seqs = [e[0] for e in entries]
    assert seqs == list(range(1, len(seqs) + 1))
    texts = [e[4] for e in entries]
    assert "line 5" in texts
    # The gateway relays the text as the service stored it (JSON is safe); the page shows controls visibly.
    assert "\x1b]0;owned\x07" in texts
    assert any(e[3] == "EVENT" and e[5] == "RUNNING" and e[2] == "update_packages" for e in entries)
    # A browser reconnecting with Last-Event-ID gets only what came after.
    middle = str(seqs[len(seqs) // 2])
    rest = []
    for kind, _, data in web.events(f"/api/servers/sim/preparations/{prep.id}/log", headers={"Last-Event-ID": middle}):
        if kind == "entries":
            rest.extend(data)
        else:
            break
    assert [e[0] for e in rest] == seqs[len(seqs) // 2:][1:]
    assert last_id == str(seqs[-1])


@pytest.mark.sshd
def test_a_browser_that_does_not_read_the_log_is_dropped(client, sim, service, tmp_path):
    """A log of about 24 MB relayed to a client that reads nothing: cut off after --write-timeout, not buffered."""
    register(client, sim)
    behave(sim, "apt-get", 'case "$*" in *update) i=0; while [ $i -lt 24000 ]; do printf "%01000d\\n" $i; i=$((i+1)); done;; esac')
    prep = client.prepare("sim", docker_source="distro")
    wait_done(client, "sim", prep.id, timeout=90)
    with web_gateway(service.address, "--write-timeout", "2", workdir=tmp_path) as web:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", web.port))
        sock.sendall(f"GET /api/servers/sim/preparations/{prep.id}/log?after=0 HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n\r\n".encode())
        stats = wait_for(lambda: (s := web.json("GET", "/api/gateway")[1])["dropped_log_streams"] and s, timeout=30,
                         what="the slow reader dropped")
        assert stats["log_streams"] == 0
        # The connection was closed under it: reading what is left ends, well short of the whole log.
        sock.settimeout(10)
        received = 0
        while chunk := sock.recv(1 << 16):
            received += len(chunk)
        sock.close()
        assert received < 20_000_000, received
        # A reader that keeps up gets all of it.
        count = 0
        for kind, _, data in web.events(f"/api/servers/sim/preparations/{prep.id}/log?after=0", timeout=60):
            if kind != "entries":
                break
            count += sum(1 for e in data if e[4].startswith("0000"))
        assert count == 24000


def test_the_fleet_hub_drops_a_subscriber_that_falls_behind():
    """The bound on one browser's queue, shown on the Hub itself (the socket side is the test above)."""
    from serverprep.clients.web import sse

    async def scenario() -> None:
        hub = sse.Hub(max_subscribers=2, backlog=3)
        fast, slow = hub.join(b"snapshot"), hub.join(b"snapshot")
        assert fast is not None and slow is not None and hub.join(b"x") is None  # the cap on browsers
        for i in range(5):
            hub.publish(sse.event("rows", {"i": i}))
            while not fast.queue.empty():
                fast.queue.get_nowait()
        assert slow.dropped.is_set() and slow not in hub.subscribers and hub.dropped_total == 1
        assert fast in hub.subscribers and not fast.dropped.is_set()
        assert slow.queue.qsize() == 3  # never more than the backlog

    asyncio.run(scenario())

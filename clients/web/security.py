"""Who may use the web view, and how: loopback or a login, checked Host names, CSRF tokens, and security headers."""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from serverprep.clients.web import convert
from serverprep.clients.web.options import is_loopback

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: No inline script or style, nothing from elsewhere, no framing: what the page needs and nothing more.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), clipboard-read=()",
}
CSRF_HEADER = "X-CSRF-Token"
#: Pages and files a person who has not logged in may fetch: the login form and what it is made of.
PUBLIC = frozenset({"/login", "/static/login.js", "/static/style.css", "/static/icon.svg"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)


class Guard:
    """Sessions and the checks every request goes through.

    Without a web token (loopback only) there is one session, and browsers must name a loopback
    host (so a DNS-rebinding page cannot reach the gateway). With one, a person logs in once and
    gets a random session id in an HttpOnly, SameSite=Strict cookie; the token never leaves the form.
    """

    def __init__(self, token: str | None, *, tls: bool, allowed_hosts: frozenset[str], listen_host: str,
                 max_sessions: int = 1000, session_seconds: float = 12 * 3600):
        self.token = token
        self.tls = tls
        self.cookie = "__Host-serverprep_session" if tls else "serverprep_session"
        self.max_sessions = max_sessions
        self.session_seconds = session_seconds
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.open_session = Session()
        hosts = set(allowed_hosts)
        if token is None or is_loopback(listen_host):
            hosts |= LOOPBACK_NAMES | {listen_host}
        # With a login and no --allow-host, any Host name may be used: the cookie is what protects.
        self.allowed_hosts: frozenset[str] | None = frozenset(h.lower() for h in hosts) if hosts or token is None else None
        self._login_lock = asyncio.Lock()

    @property
    def login(self) -> bool:
        return self.token is not None

    def session(self, request: web.Request) -> Session | None:
        if not self.login:
            return self.open_session
        sid = request.cookies.get(self.cookie, "")
        found = self.sessions.get(sid) if sid else None
        if found is None or time.monotonic() - found.created > self.session_seconds:
            return None
        return found

    async def log_in(self, given: str) -> str | None:
        """A new session id for the right token; a wrong one costs a second, one attempt at a time."""
        assert self.token is not None
        async with self._login_lock:
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                await asyncio.sleep(1.0)
                return None
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session()
        while len(self.sessions) > self.max_sessions:
            self.sessions.popitem(last=False)
        return sid

    def log_out(self, request: web.Request) -> None:
        self.sessions.pop(request.cookies.get(self.cookie, ""), None)

    def set_cookie(self, response: web.StreamResponse, sid: str) -> None:
        response.set_cookie(self.cookie, sid, path="/", httponly=True, samesite="Strict", secure=self.tls,
                            max_age=int(self.session_seconds))

    def host_allowed(self, request: web.Request) -> bool:
        if self.allowed_hosts is None:
            return True
        host = (request.url.host or "").lower().strip("[]")
        return host in self.allowed_hosts

    def same_origin(self, request: web.Request) -> bool:
        """The request came from our own pages: Origin (when sent) is ours, and the browser did not call it cross-site."""
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return False
        return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")

    def csrf_ok(self, request: web.Request, session: Session) -> bool:
        given = request.headers.get(CSRF_HEADER, "")
        return bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode()) and self.same_origin(request)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.host_allowed(request):
            return refuse(421, "HOST_NOT_ALLOWED", f"this gateway does not answer to the host name {request.host!r} "
                                                   "(serverprep web --allow-host NAME adds one)")
        if request.path in PUBLIC:
            return await handler(request)
        session = self.session(request)
        if session is None:
            if request.path.startswith("/api/"):
                return refuse(401, "LOGIN_REQUIRED", "log in first (the session is missing or has expired)")
            raise web.HTTPSeeOther("/login")
        if request.method not in ("GET", "HEAD") and not self.csrf_ok(request, session):
            return refuse(403, "CSRF_REFUSED", "refused: the request did not come from this gateway's page "
                                               f"(missing or wrong {CSRF_HEADER}, or a foreign Origin)")
        request["session"] = session
        return await handler(request)


def refuse(status: int, reason: str, message: str) -> web.Response:
    code, body = convert.gateway_error(status, reason, message)
    return web.json_response(body, status=code)


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer, errors and event streams included, carries the security headers."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = "serverprep"  # not which aiohttp and Python answer
    if request.path.startswith("/api/") or request.path in ("/", "/login"):
        response.headers.setdefault("Cache-Control", "no-store")


def attach(app: web.Application, guard: Guard) -> None:
    app.middlewares.append(guard.middleware)
    app.on_response_prepare.append(add_headers)


def client_view(guard: Guard, request: web.Request) -> dict[str, Any]:
    """What the page learns about its session: the CSRF token for its actions, never a credential."""
    session = request["session"]
    return {"csrf": session.csrf, "login": guard.login}

"""The gateway's HTTP side: the page, its JSON endpoints, the fleet's event stream and a preparation's log stream."""

from __future__ import annotations

import contextlib
import json
import logging
from importlib import resources
from typing import Any

from aiohttp import web

from serverprep.clients.aio import AsyncClient
from serverprep.clients.errors import ServerprepClientError
from serverprep.clients.types import Preparation
from serverprep.clients.web import convert, logs, security, sse
from serverprep.clients.web.fleet import Fleet
from serverprep.clients.web.options import WebOptions

log = logging.getLogger("serverprep.web")

STATIC = resources.files("serverprep.clients.web") / "static"
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
#: Files the gateway serves, and nothing else from the package.
STATIC_FILES = ("app.js", "fleet.js", "server.js", "text.js", "style.css", "login.js", "icon.svg")


class Gateway:
    """The web gateway: one AsyncClient to the service, the fleet it follows, and the HTTP server for browsers."""

    def __init__(self, options: WebOptions):
        self.options = options
        self.guard = security.Guard(options.web_token, tls=options.ssl_context is not None,
                                    allowed_hosts=options.allowed_hosts, listen_host=options.listen_host)
        self.client: AsyncClient | None = None
        self.fleet: Fleet | None = None
        self.logs: logs.LogStreams | None = None
        self.runner: web.AppRunner | None = None
        self.port = options.listen_port

    async def start(self) -> None:
        """Connect to the service (inside the running loop, as grpc.aio wants), start following, listen."""
        o = self.options
        self.client = AsyncClient(**o.connection)
        self.fleet = Fleet(self.client, sse.Hub(o.max_browsers, o.browser_backlog), refresh=o.refresh, max_streams=o.max_streams)
        self.logs = logs.LogStreams(self.client, max_streams=o.max_log_streams, write_timeout=o.write_timeout,
                                    keepalive=o.keepalive, tail=o.log_tail)
        self.fleet.start()
        # Event streams never end on their own: at shutdown they get a second, then are cut.
        self.runner = web.AppRunner(self.application(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, o.listen_host, o.listen_port, ssl_context=o.ssl_context).start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.fleet is not None:
            await self.fleet.close()
        if self.client is not None:
            await self.client.close()

    @property
    def url(self) -> str:
        scheme = "https" if self.options.ssl_context else "http"
        host = f"[{self.options.listen_host}]" if ":" in self.options.listen_host else self.options.listen_host
        return f"{scheme}://{host}:{self.port}/"

    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        security.attach(app, self.guard)
        r = app.router
        r.add_get("/", self.page)
        r.add_get("/login", self.login_page)
        r.add_post("/login", self.login)
        r.add_post("/logout", self.logout)
        r.add_get("/static/{file}", self.static)
        r.add_get("/api/session", self.session)
        r.add_get("/api/gateway", self.gateway)
        r.add_get("/api/fleet", self.fleet_json)
        r.add_get("/api/events", self.fleet_events)
        r.add_get("/api/servers/{name}", self.server)
        r.add_get("/api/servers/{name}/preparations/{id}", self.preparation)
        r.add_get("/api/servers/{name}/preparations/{id}/log", self.log_events)
        r.add_post("/api/servers/{name}/{action:prepare|retry|cancel}", self.action)
        return app

    # -- pages --------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        return _file("index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return _file(name)

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        if not self.guard.login:
            raise web.HTTPSeeOther("/")
        return _file("login.html")

    async def login(self, request: web.Request) -> web.StreamResponse:
        if not self.guard.login:
            raise web.HTTPSeeOther("/")
        if not self.guard.same_origin(request):
            return security.refuse(403, "CSRF_REFUSED", "refused: the login form was not sent from this gateway's page")
        form = await request.post()
        token = form.get("token")
        sid = await self.guard.log_in(token) if isinstance(token, str) else None
        if sid is None:
            raise web.HTTPSeeOther("/login?failed=1")
        response = web.HTTPSeeOther("/")
        self.guard.set_cookie(response, sid)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        self.guard.log_out(request)
        response = web.json_response({"logged_out": True})
        response.del_cookie(self.guard.cookie, path="/")
        return response

    # -- JSON ---------------------------------------------------------------

    async def session(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({**security.client_view(self.guard, request), "service": self._client().address})

    async def gateway(self, request: web.Request) -> web.StreamResponse:
        assert self.fleet is not None and self.logs is not None
        return web.json_response({**self.fleet.stats(), "log_streams": self.logs.open, "max_log_streams": self.logs.max_streams,
                                  "dropped_log_streams": self.logs.dropped, "service": self._client().address})

    async def fleet_json(self, request: web.Request) -> web.StreamResponse:
        assert self.fleet is not None
        return web.json_response(self.fleet.snapshot())

    async def server(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        client = self._client()
        try:
            server = await client.get_server(name)
            preps: list[Preparation] = []
            listing = client.list_preparations(name, page_size=50)
            async with contextlib.aclosing(listing):
                async for prep in listing:
                    preps.append(prep)
                    if len(preps) == 50:
                        break
        except ServerprepClientError as e:
            return _error(e)
        return web.json_response({"server": convert.server(server),
                                  "preparations": [convert.preparation(p) for p in preps]})

    async def preparation(self, request: web.Request) -> web.StreamResponse:
        try:
            prep = await self._client().status(request.match_info["name"], request.match_info["id"])
        except ServerprepClientError as e:
            return _error(e)
        return web.json_response({"preparation": convert.preparation(prep)})

    async def action(self, request: web.Request) -> web.StreamResponse:
        name, action = request.match_info["name"], request.match_info["action"]
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        client = self._client()
        prep_id = body.get("preparation_id", "")
        if not isinstance(prep_id, str):
            return security.refuse(400, "INVALID_ARGUMENT", "preparation_id must be a string")
        try:
            if action == "prepare":
                source, request_id = body.get("docker_source", "official"), body.get("request_id", "")
                if source not in ("official", "distro") or not isinstance(request_id, str):
                    return security.refuse(400, "INVALID_ARGUMENT", "docker_source must be official or distro, request_id a string")
                prep = await client.prepare(name, docker_source=source, request_id=request_id)
            elif action == "retry":
                prep = await client.retry(name, prep_id)
            else:
                prep = await client.cancel(name, prep_id)
        except ServerprepClientError as e:
            return _error(e)
        assert self.fleet is not None
        self.fleet.apply_preparation(name, prep)
        return web.json_response({"preparation": convert.preparation(prep)})

    # -- event streams ------------------------------------------------------

    async def fleet_events(self, request: web.Request) -> web.StreamResponse:
        assert self.fleet is not None
        hub = self.fleet.hub
        sub = hub.join(sse.event("fleet", self.fleet.snapshot()))
        if sub is None:
            return security.refuse(503, "TOO_MANY_BROWSERS", f"this gateway already streams to {self.options.max_browsers} "
                                                             "browsers (serverprep web --max-browsers)")
        try:
            response = await sse.open_stream(request)
            await sse.pump(response, sub, deadline=self.options.write_timeout, keepalive=self.options.keepalive)
        except TimeoutError:
            hub.dropped_total += 1
            sub.dropped.set()
        finally:
            hub.leave(sub)
        if sub.dropped.is_set():
            # A browser that does not read is cut off, its unsent events discarded; it reconnects to a fresh snapshot.
            log.info("dropped a browser that did not keep up with the fleet's events")
            if request.transport is not None:
                request.transport.abort()
        return response

    async def log_events(self, request: web.Request) -> web.StreamResponse:
        assert self.logs is not None
        return await self.logs.serve(request, request.match_info["name"], request.match_info["id"])

    def _client(self) -> AsyncClient:
        assert self.client is not None
        return self.client


def _file(name: str) -> web.Response:
    data = (STATIC / name).read_bytes()
    suffix = name[name.rfind("."):]
    return web.Response(body=data, content_type=CONTENT_TYPES[suffix], charset="utf-8" if suffix != ".svg" else None)


def _error(e: ServerprepClientError) -> web.Response:
    status, body = convert.error(e)
    return web.json_response(body, status=status)


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    if request.content_type != "application/json":
        return security.refuse(415, "INVALID_ARGUMENT", "send the action as application/json")
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError):
        return security.refuse(400, "INVALID_ARGUMENT", "the body is not JSON")
    if not isinstance(body, dict):
        return security.refuse(400, "INVALID_ARGUMENT", "the body must be a JSON object")
    return body

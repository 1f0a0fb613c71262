"""The web layer's server: aiohttp in the owner's loop, its own assets, a guard, a push hub.

- Binds to 127.0.0.1 unless told otherwise. On a loopback address, requests must name a loopback
  Host (a page on another site cannot reach it through DNS rebinding). On any other address a
  token is required: printed at start, given once in the URL (?token=…), then kept in an
  HttpOnly, SameSite=Strict cookie; without it every page and the socket answer 403.
- WebSocket messages that change anything must come from the page's own origin.
- The hub pushes to every browser without ever waiting for one: each client has its own sender
  task that sends the latest state (older frames are dropped, not queued) at most
  MAX_FRAMES_PER_S, and a bounded list of events; a client that does not take a send within
  SEND_TIMEOUT_S is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from pitill.web.bind import BindAddress
from pitill.web.guard import loopback_host, same_origin, security_headers
from pitill.web.site import start_site

log = logging.getLogger("pitill.web")

MAX_FRAMES_PER_S = 20
SEND_TIMEOUT_S = 5.0
MAX_QUEUED_EVENTS = 200  # per client; older ones are dropped for a client that lags
MAX_MESSAGE_BYTES = 4096  # what a browser may send us in one WebSocket message
COOKIE = "pitill_token"
CONTENT_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript"}
SECURITY_HEADERS = security_headers()

Snapshot = Callable[[], dict[str, Any]]
CommandHandler = Callable[[dict[str, Any]], Awaitable[str | None]]


def _asset(name: str) -> bytes:
    return resources.files("pitill.web").joinpath("static", name).read_bytes()


class Client:
    """One browser: the latest frame and the events it has not seen yet."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_QUEUED_EVENTS)
        self.frame_version = -1
        self.wake = asyncio.Event()
        self.dropped_events = 0


class WebServer:
    """Serves a page and its assets, and pushes the owner's state to every open page."""

    def __init__(
        self,
        bind: BindAddress,
        page: str,
        extra_routes: Mapping[str, tuple[str, Callable[[], bytes]]] = {},
        *,
        snapshot: Snapshot,
        on_command: CommandHandler | None = None,
        hello: Mapping[str, Any] = {},
        token: str | None = None,
    ) -> None:
        self.bind = bind
        self.page = page
        self.extra_routes = dict(extra_routes)
        self.snapshot = snapshot
        self.on_command = on_command
        self.hello = dict(hello)
        self.token = token if token is not None else (None if bind.loopback else _new_token())
        self.clients: set[Client] = set()
        self.port = bind.port
        self.frame_version = 0
        self._cached: tuple[int, str] = (-1, "")
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.counts: dict[str, int] = {"frames_sent": 0, "frames_skipped": 0, "clients_closed": 0}

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_get("/socket", self._socket)
        for name in ("mirror.css", "mirror.js"):
            app.router.add_get(f"/{name}", self._static(name))
        for path, (content_type, make) in self.extra_routes.items():
            app.router.add_get(path, self._generated(content_type, make))
        self._runner, self.port = await start_site(app, self.bind)

    @property
    def url(self) -> str:
        base = self.bind.url(self.port)
        return f"{base}?token={self.token}" if self.token else base

    async def close(self) -> None:
        for client in list(self.clients):
            with contextlib.suppress(Exception):
                await client.ws.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    # --- pushing ---------------------------------------------------------------------------

    def changed(self) -> None:
        """The owner's state changed: every client sends the newest frame when it can."""
        self.frame_version += 1
        for client in self.clients:
            client.wake.set()

    def event(self, item: dict[str, Any]) -> None:
        """One line for every page's events log (bounded per client)."""
        for client in self.clients:
            if len(client.events) == client.events.maxlen:
                client.dropped_events += 1
            client.events.append(item)
            client.wake.set()

    def _frame_json(self) -> str:
        """The snapshot as JSON, computed once per version whatever the number of clients."""
        if self._cached[0] != self.frame_version:
            self._cached = (self.frame_version, json.dumps(self.snapshot()))
        return self._cached[1]

    async def _sender(self, client: Client) -> None:
        interval_s = 1.0 / MAX_FRAMES_PER_S
        loop = asyncio.get_running_loop()
        try:
            while not client.ws.closed:
                await client.wake.wait()
                client.wake.clear()
                started = loop.time()
                parts = []
                if client.frame_version != self.frame_version:
                    skipped = self.frame_version - client.frame_version - 1
                    self.counts["frames_skipped"] += max(0, skipped)
                    client.frame_version = self.frame_version
                    parts.append(f'"frame":{self._frame_json()}')
                    self.counts["frames_sent"] += 1
                if client.events:
                    events = list(client.events)
                    client.events.clear()
                    parts.append(f'"events":{json.dumps(events)}')
                if parts:
                    message = '{"type":"update",' + ",".join(parts) + "}"
                    await asyncio.wait_for(client.ws.send_str(message), SEND_TIMEOUT_S)
                # at most MAX_FRAMES_PER_S: what changes meanwhile is coalesced into the next
                await asyncio.sleep(max(0.0, interval_s - (loop.time() - started)))
        except (TimeoutError, ConnectionError, RuntimeError):
            self.counts["clients_closed"] += 1
            with contextlib.suppress(Exception):
                await client.ws.close()

    # --- handlers --------------------------------------------------------------------------

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self.bind.loopback and not loopback_host(request.host):
            raise web.HTTPForbidden(text="this page answers only at a loopback address\n")
        if self.token is not None:
            given = request.query.get("token")
            if given is not None and hmac.compare_digest(given, self.token):
                if request.path == "/":
                    found = web.HTTPFound("./")
                    found.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
                    raise found
            elif not hmac.compare_digest(request.cookies.get(COOKIE, ""), self.token):
                raise web.HTTPForbidden(
                    text="pitill: open the address printed at start (it carries the token)\n"
                )
        response = await handler(request)
        if not isinstance(response, web.WebSocketResponse):
            response.headers.update(SECURITY_HEADERS)
        return response

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(body=_asset(self.page), content_type="text/html", charset="utf-8")

    def _static(self, name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        body = _asset(name)
        content_type = CONTENT_TYPES[name[name.rfind(".") :]]

        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type, charset="utf-8")

        return handler

    def _generated(
        self, content_type: str, make: Callable[[], bytes]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=make(), content_type=content_type, charset="utf-8")

        return handler

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        if not same_origin(request.headers.get("Origin"), request.host):
            raise web.HTTPForbidden(text="the socket answers only the page's own origin\n")
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_MESSAGE_BYTES)
        await ws.prepare(request)
        client = Client(ws)
        self.clients.add(client)
        task = asyncio.ensure_future(self._sender(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            control = self.on_command is not None
            await ws.send_str(json.dumps({"type": "hello", "control": control, **self.hello}))
            client.wake.set()  # the current frame at once
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                await self._command(message.data)
                await asyncio.sleep(0)  # a burst of buffered clicks never holds the loop
        finally:
            self.clients.discard(client)
            task.cancel()
        return ws

    async def _command(self, data: str) -> None:
        if self.on_command is None:
            return  # a read-only mirror: the page shows no controls, and we take none
        try:
            command = json.loads(data)
        except (json.JSONDecodeError, RecursionError):  # "[[[[…": too deep for the decoder
            return
        if isinstance(command, dict):
            refused = await self.on_command(command)
            if refused:
                log.warning("web command refused: %s", refused)


def _new_token() -> str:
    return secrets.token_urlsafe(18)

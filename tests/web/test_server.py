"""The web layer's guard and push hub, in process over real loopback sockets (no browser)."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pitill.errors import ConfigError
from pitill.web import server as web_server
from pitill.web.bind import BindAddress, parse_bind
from pitill.web.server import WebServer
from pitill.web.site import start_site


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        (None, "127.0.0.1", 8580, True),
        ("127.0.0.1:9000", "127.0.0.1", 9000, True),
        ("9001", "127.0.0.1", 9001, True),
        ("[::1]:8581", "::1", 8581, True),
        ("localhost", "localhost", 8580, True),
        ("0.0.0.0:8580", "0.0.0.0", 8580, False),
        ("192.168.4.1:80", "192.168.4.1", 80, False),
    ],
)
def test_bind_addresses(text: str | None, host: str, port: int, loopback: bool) -> None:
    bind = parse_bind(text)
    assert (bind.host, bind.port, bind.loopback) == (host, port, loopback)


@pytest.mark.parametrize("text", ["127.0.0.1:99999", "host:port", "[::1", "a b:80", "x:-1"])
def test_bad_bind_addresses_are_one_line_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="--web"):
        parse_bind(text)


def make_server(bind: BindAddress, **kwargs: Any) -> WebServer:
    state = {"n": 0}

    def snapshot() -> dict[str, Any]:
        state["n"] += 1
        return {"n": state["n"]}

    return WebServer(bind, "mirror.html", snapshot=snapshot, **kwargs)


async def _status(url: str, **kwargs: Any) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as response:
        return response.status


def test_loopback_answers_only_loopback_host_names() -> None:
    async def main() -> None:
        server = make_server(BindAddress("127.0.0.1", 0))
        await server.start()
        try:
            base = f"http://127.0.0.1:{server.port}/"
            assert server.token is None
            assert await _status(base) == 200
            assert await _status(base, headers={"Host": f"localhost:{server.port}"}) == 200
            # DNS rebinding: a page on another site that resolves its name to 127.0.0.1
            assert await _status(base, headers={"Host": f"evil.example:{server.port}"}) == 403
        finally:
            await server.close()

    asyncio.run(main())


def test_any_other_address_needs_the_token_then_a_cookie() -> None:
    async def main() -> None:
        server = make_server(BindAddress("0.0.0.0", 0))
        await server.start()
        try:
            token = server.token
            assert token and token in server.url
            base = f"http://127.0.0.1:{server.port}/"
            assert await _status(base) == 403
            assert await _status(base + "mirror.js") == 403
            assert await _status(base + "?token=wrong") == 403
            # unsafe: the jar keeps cookies of an IP address (a browser does anyway)
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                async with session.get(base + "socket") as response:
                    assert response.status == 403
                async with session.get(f"{base}?token={token}", allow_redirects=False) as response:
                    assert response.status == 302
                    cookie = response.cookies["pitill_token"]
                    assert cookie["httponly"] and cookie["samesite"] == "Strict"
                async with session.get(base) as response:  # the cookie now
                    assert response.status == 200
                    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
                async with session.ws_connect(base + "socket") as ws:
                    hello = await ws.receive_json(timeout=5)
                    assert hello["type"] == "hello"
        finally:
            await server.close()

    asyncio.run(main())


@pytest.mark.parametrize("control", [True, False])
def test_the_socket_refuses_another_origin_and_takes_commands_only_when_allowed(
    control: bool,
) -> None:
    commands: list[dict[str, Any]] = []

    async def record(command: dict[str, Any]) -> str | None:
        commands.append(command)
        return None

    async def main() -> None:
        server = make_server(BindAddress("127.0.0.1", 0), on_command=record if control else None)
        await server.start()
        try:
            base = f"http://127.0.0.1:{server.port}/"
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(
                        base + "socket", headers={"Origin": "http://evil.example"}
                    )
                assert refused.value.status == 403
                async with session.ws_connect(
                    base + "socket", headers={"Origin": f"http://127.0.0.1:{server.port}"}
                ) as ws:
                    assert (await ws.receive_json(timeout=5))["control"] is control
                    await ws.send_str("not json")
                    await ws.send_str("[" * 4000)  # nested past the decoder's recursion limit
                    await ws.send_str(json.dumps(["not", "an", "object"]))
                    await ws.send_str(json.dumps({"type": "press", "key": "OK"}))
                    update = await ws.receive_json(timeout=5)
                    assert update["type"] == "update" and "frame" in update
                    await asyncio.sleep(0.2)
        finally:
            await server.close()

    asyncio.run(main())
    assert commands == ([{"type": "press", "key": "OK"}] if control else [])


def _stalled_socket(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads a byte."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        (
            f"GET /socket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


def test_a_stalled_browser_is_dropped_and_never_slows_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(web_server, "SEND_TIMEOUT_S", 0.5)
    big = "x" * 60_000  # frames big enough to fill a stalled socket's buffers quickly

    async def main() -> None:
        n = {"v": 0}

        def snapshot() -> dict[str, Any]:
            return {"n": n["v"], "pad": big}

        server = WebServer(BindAddress("127.0.0.1", 0), "mirror.html", snapshot=snapshot)
        await server.start()
        stalled = _stalled_socket(server.port)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"http://127.0.0.1:{server.port}/socket") as ws,
            ):
                await ws.receive_json(timeout=5)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 10
                while server.counts["clients_closed"] == 0 and loop.time() < deadline:
                    n["v"] += 1
                    server.changed()  # never blocks, whatever the stalled client does
                    await asyncio.sleep(0.01)
                assert server.counts["clients_closed"] == 1, "the stalled client was kept"
                n["v"] += 1
                last = n["v"]
                server.changed()
                seen = -1
                while seen != last:  # the healthy page still gets the newest frame
                    message = await ws.receive_json(timeout=5)
                    seen = message.get("frame", {}).get("n", seen)
                # coalesced: far fewer frames sent than changes made
                assert server.counts["frames_skipped"] > 0
        finally:
            stalled.close()
            await server.close()

    asyncio.run(main())


def test_a_port_in_use_is_one_line_naming_it_and_port_0_learns_its_port() -> None:
    """web/site.py, for the workshop page and the host's dashboard alike."""

    async def main() -> tuple[int, str]:
        runner, port = await start_site(web.Application(), BindAddress("127.0.0.1", 0))
        try:
            with pytest.raises(ConfigError) as caught:
                await start_site(web.Application(), BindAddress("127.0.0.1", port))
            return port, str(caught.value)
        finally:
            await runner.cleanup()

    port, message = asyncio.run(main())
    assert port > 0
    assert message.startswith(f"--web 127.0.0.1:{port}: cannot listen there (")
    assert "\n" not in message

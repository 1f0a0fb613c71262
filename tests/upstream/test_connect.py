"""open_stream: name, then connect, within one deadline; each failure names its reason."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream.connect import close_stream, open_stream
from pitill.upstream.failures import LinkReason, UnreachableError


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reason(resolver: SimResolver, port: int, timeout_s: float = 1.0) -> LinkReason:
    async def scenario() -> None:
        await open_stream(resolver, SIM_HOST, port, timeout_s)

    with pytest.raises(UnreachableError) as caught:
        asyncio.run(scenario())
    return caught.value.reason


def test_connects_by_name() -> None:
    async def scenario() -> bytes:
        async def hello(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hi")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(hello, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await open_stream(SimResolver(), SIM_HOST, port, 1.0)
            data = await reader.read()
            await close_stream(writer)
        return data

    assert asyncio.run(scenario()) == b"hi"


def test_refused() -> None:
    assert _reason(SimResolver(), _free_port()) is LinkReason.REFUSED


def test_name_that_does_not_resolve() -> None:
    resolver = SimResolver()
    resolver.set_failing(True)
    assert _reason(resolver, _free_port()) is LinkReason.DNS


def test_resolver_slower_than_the_deadline_is_dns() -> None:
    assert _reason(SimResolver(delay_s=1.0), _free_port(), timeout_s=0.05) is LinkReason.DNS

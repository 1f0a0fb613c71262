"""open_stream / connect / connect_first: name, then connect, within one deadline; each failure
names its reason; remembered addresses and later hosts are tried before giving up."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream.connect import (
    Connection,
    Endpoint,
    close_stream,
    connect,
    connect_first,
    open_stream,
)
from pitill.upstream.failures import LinkReason, UnreachableError
from pitill.upstream.resolver_cache import CachingResolver


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


async def _listening() -> asyncio.Server:
    async def idle(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return await asyncio.start_server(idle, "127.0.0.1", 0)


def _remembering(tmp_path: Path) -> tuple[SimResolver, CachingResolver]:
    """A cache that has seen SIM_HOST resolve to 127.0.0.1, and whose name now fails."""
    sim = SimResolver()
    cache = CachingResolver(sim, tmp_path / "resolved-hosts.json")
    asyncio.run(cache.resolve(SIM_HOST, 1))
    sim.set_failing(True)
    return sim, cache


def test_a_remembered_address_connects_and_carries_the_dns_error(tmp_path: Path) -> None:
    _, cache = _remembering(tmp_path)

    async def scenario() -> Connection:
        server = await _listening()
        async with server:
            port = server.sockets[0].getsockname()[1]
            connection = await connect(cache, Endpoint(SIM_HOST, port), 1.0)
            await close_stream(connection.writer)
            return connection

    connection = asyncio.run(scenario())
    assert connection.address[0] == "127.0.0.1"
    assert connection.dns_error is not None and connection.dns_error.reason is LinkReason.DNS


def test_remembered_addresses_that_do_not_answer_fail_as_dns(tmp_path: Path) -> None:
    _, cache = _remembering(tmp_path)

    async def scenario() -> None:
        await connect(cache, Endpoint(SIM_HOST, _free_port()), 1.0)

    with pytest.raises(UnreachableError) as caught:
        asyncio.run(scenario())
    assert caught.value.reason is LinkReason.DNS
    assert "remembered addresses did not answer" in str(caught.value)
    assert "refused" in str(caught.value)


def test_connect_first_takes_the_first_host_that_answers(tmp_path: Path) -> None:
    resolver = SimResolver({"primary.test": "127.0.0.1", "secondary.test": "127.0.0.1"})

    async def scenario() -> tuple[Connection, list[UnreachableError]]:
        server = await _listening()
        async with server:
            port = server.sockets[0].getsockname()[1]
            endpoints = [Endpoint("primary.test", _free_port()), Endpoint("secondary.test", port)]
            connection, failures = await connect_first(resolver, endpoints, 1.0)
            await close_stream(connection.writer)
            return connection, failures

    connection, failures = asyncio.run(scenario())
    assert connection.endpoint.host == "secondary.test"
    assert [f.reason for f in failures] == [LinkReason.REFUSED]


def test_connect_first_fails_with_the_primary_reason_naming_each() -> None:
    resolver = SimResolver({"secondary.test": "127.0.0.1"})
    endpoints = [Endpoint("primary.test", 1), Endpoint("secondary.test", _free_port())]

    async def scenario() -> None:
        await connect_first(resolver, endpoints, 1.0)

    with pytest.raises(UnreachableError) as caught:
        asyncio.run(scenario())
    assert caught.value.reason is LinkReason.DNS  # the primary's name is unknown
    message = str(caught.value)
    assert "primary.test:1" in message and "secondary.test" in message and "refused" in message


def test_endpoint_text() -> None:
    assert str(Endpoint("bank.test", 8583)) == "bank.test:8583"
    assert str(Endpoint("::1", 8583)) == "[::1]:8583"

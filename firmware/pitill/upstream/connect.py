"""Resolve a name and open a TCP (optionally TLS) connection to it within one deadline; try the
configured hosts in order; close a connection, bounded.

Shared by the client (one persistent connection) and the monitor (a fresh one per probe), so
both name the same reason for the same failure.

With TLS the certificate is checked against the configured host NAME, also when the address
dialled is a remembered one (the name did not resolve) or the name is given as an address.
When the name did not resolve and remembered addresses were used, the Connection carries that
DNS error; when those addresses do not answer either, the failure's reason is DNS, the cause.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import NamedTuple

from pitill.upstream.failures import (
    LinkReason,
    ResolveError,
    UnreachableError,
    reason_for_os_error,
)
from pitill.upstream.resolver import Address, Remembered, Resolver

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Endpoint(NamedTuple):
    """One upstream host as configured: a name (or an address) and a port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    endpoint: Endpoint
    address: Address  # the address that answered
    dns_error: ResolveError | None = None  # set when the name failed and a remembered address won

    @property
    def streams(self) -> Streams:
        return self.reader, self.writer


async def connect(
    resolver: Resolver, endpoint: Endpoint, timeout_s: float, tls: ssl.SSLContext | None = None
) -> Connection:
    """Connect to the first address of `endpoint` that accepts, all within timeout_s.

    Raises ResolveError (reason DNS) when the name does not resolve in time and nothing is
    remembered, or UnreachableError with the reason of the last failed connect (DNS when the
    addresses were remembered ones). Nothing was sent either way.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    host, port = endpoint
    try:
        async with asyncio.timeout_at(deadline):
            addresses = await resolver.resolve(host, port)
    except TimeoutError:
        raise ResolveError(host, f"no answer from the resolver within {timeout_s:g} s") from None
    dns_error = addresses.error if isinstance(addresses, Remembered) else None
    try:
        reader, writer, address = await _connect_any(host, addresses, deadline, timeout_s, tls)
    except UnreachableError as exc:
        if dns_error is None:
            raise
        raise UnreachableError(
            LinkReason.DNS, f"{dns_error}; its remembered addresses did not answer either: {exc}"
        ) from None
    return Connection(reader, writer, endpoint, address, dns_error)


async def connect_first(
    resolver: Resolver,
    endpoints: Sequence[Endpoint],
    timeout_s: float,
    tls: ssl.SSLContext | None = None,
) -> tuple[Connection, list[UnreachableError]]:
    """Connect to the first of `endpoints` (primary first) that accepts, each within timeout_s.

    Returns the connection and the failures of the endpoints tried before it. When every one
    fails, raises an UnreachableError with the primary's reason, naming each failure.
    """
    if not endpoints:
        raise ValueError("connect_first needs at least one endpoint")
    failures: list[UnreachableError] = []
    for endpoint in endpoints:
        try:
            return await connect(resolver, endpoint, timeout_s, tls), failures
        except UnreachableError as exc:
            failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    pairs = zip(endpoints, failures, strict=True)
    each = "; ".join(f"{endpoint}: {failure}" for endpoint, failure in pairs)
    raise UnreachableError(failures[0].reason, f"no upstream host answered ({each})")


async def open_stream(resolver: Resolver, host: str, port: int, timeout_s: float) -> Streams:
    """connect() to one plain-TCP endpoint, for callers that only want the streams."""
    return (await connect(resolver, Endpoint(host, port), timeout_s)).streams


async def _connect_any(
    host: str,
    addresses: Sequence[Address],
    deadline: float,
    timeout_s: float,
    tls: ssl.SSLContext | None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Address]:
    failure = UnreachableError(LinkReason.UNREACHABLE, f"{host} resolved to no address")
    for address in addresses:
        ip, ip_port = address
        where = f"{host} ({ip}:{ip_port})"
        try:
            async with asyncio.timeout_at(deadline):
                reader, writer = await asyncio.open_connection(
                    ip, ip_port, ssl=tls, server_hostname=host if tls is not None else None
                )
            return reader, writer, address
        except TimeoutError:  # before OSError: TimeoutError is one
            raise UnreachableError(
                LinkReason.TIMEOUT, f"connecting to {where} took longer than {timeout_s:g} s"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            failure = UnreachableError(
                LinkReason.TLS,
                f"{where} presented a certificate not valid for {host!r} "
                f"({exc.verify_message}); check upstream.tls_ca_file and the host name",
            )
        except OSError as exc:
            reason = reason_for_os_error(exc)
            failure = UnreachableError(
                reason, f"cannot connect to {where}: {reason.lower()} ({exc}); is the host up?"
            )
    raise failure


async def close_stream(writer: asyncio.StreamWriter, timeout_s: float = 0.5) -> None:
    """Close and wait a bounded time for the transport to go: a dead peer must not hold us."""
    writer.close()
    with suppress(OSError, TimeoutError):
        async with asyncio.timeout(timeout_s):
            await writer.wait_closed()

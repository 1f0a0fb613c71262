"""Resolve a name and open a TCP connection to it within one deadline; close one, bounded.

Shared by the client (one persistent connection) and the monitor (a fresh one per probe), so
both name the same reason for the same failure.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

from pitill.upstream.failures import (
    LinkReason,
    ResolveError,
    UnreachableError,
    reason_for_os_error,
)
from pitill.upstream.resolver import Resolver

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_stream(resolver: Resolver, host: str, port: int, timeout_s: float) -> Streams:
    """Connect to the first address of `host` that accepts, all within timeout_s.

    Raises ResolveError (reason DNS) when the name does not resolve in time, or
    UnreachableError with the reason of the last failed connect. Nothing was sent either way.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        async with asyncio.timeout_at(deadline):
            addresses = await resolver.resolve(host, port)
    except TimeoutError:
        raise ResolveError(host, f"no answer from the resolver within {timeout_s:g} s") from None
    failure = UnreachableError(LinkReason.UNREACHABLE, f"{host} resolved to no address")
    for address, address_port in addresses:
        where = f"{host} ({address}:{address_port})"
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.open_connection(address, address_port)
        except TimeoutError:  # before OSError: TimeoutError is one
            raise UnreachableError(
                LinkReason.TIMEOUT, f"connecting to {where} took longer than {timeout_s:g} s"
            ) from None
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

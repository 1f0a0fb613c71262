"""Name resolution for the upstream host, behind a Protocol so the simulator can make DNS fail.

A failed lookup raises ResolveError (an UnreachableError with reason DNS), so the monitor can
tell "the name is gone" (the October 2025 outage) from "the host refuses connections". A resolver
that remembers earlier answers (upstream/resolver_cache.py) may instead return them as
`Remembered` addresses, which carry the ResolveError: the caller can use them and still report
that the name does not resolve.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from typing import Protocol

from pitill.upstream.failures import ResolveError

Address = tuple[str, int]


class Remembered(list[Address]):
    """Addresses the name resolved to earlier, handed out because resolving it now failed."""

    def __init__(self, addresses: Iterable[Address], error: ResolveError) -> None:
        super().__init__(addresses)
        self.error = error  # why the name did not resolve this time


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[Address]:
        """The addresses to try, in order; raises ResolveError when there are none."""
        ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo on the loop's executor)."""

    async def resolve(self, host: str, port: int) -> list[Address]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ResolveError(host, exc.strerror or str(exc)) from None
        except UnicodeError as exc:  # a name the IDNA codec rejects
            raise ResolveError(host, f"not a valid host name: {exc}") from None
        addresses: list[Address] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            address = (str(sockaddr[0]), int(sockaddr[1]))
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise ResolveError(host, "no addresses")
        return addresses

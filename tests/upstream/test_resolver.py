"""SystemResolver: getaddrinfo on the loop; a failed lookup is a ResolveError with reason DNS."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from pitill.errors import UpstreamError
from pitill.upstream.failures import LinkReason, ResolveError, UnreachableError
from pitill.upstream.resolver import SystemResolver


def test_ip_literal_resolves_without_dns() -> None:
    addresses = asyncio.run(SystemResolver().resolve("127.0.0.1", 8583))
    assert addresses == [("127.0.0.1", 8583)]


def test_lookup_failure_is_a_dns_resolve_error() -> None:
    """The loop's getaddrinfo is made to fail as it does for NXDOMAIN (no real DNS query)."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def nxdomain(*_args: Any, **_kwargs: Any) -> Any:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        loop.getaddrinfo = nxdomain  # type: ignore[method-assign]
        await SystemResolver().resolve("acquirer.pitill.test", 8583)

    with pytest.raises(ResolveError) as caught:
        asyncio.run(scenario())
    error = caught.value
    assert error.reason is LinkReason.DNS
    assert isinstance(error, UnreachableError) and isinstance(error, UpstreamError)
    assert "acquirer.pitill.test" in str(error) and "Name or service not known" in str(error)

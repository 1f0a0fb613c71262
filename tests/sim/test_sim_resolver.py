"""SimResolver: a hosts table that can be switched to fail like NXDOMAIN."""

from __future__ import annotations

import asyncio

import pytest

from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream.failures import LinkReason, ResolveError


def _resolve(resolver: SimResolver, name: str) -> list[tuple[str, int]]:
    return asyncio.run(resolver.resolve(name, 8583))


def test_default_table_maps_the_sim_host_to_loopback() -> None:
    assert _resolve(SimResolver(), SIM_HOST) == [("127.0.0.1", 8583)]
    assert _resolve(SimResolver(), SIM_HOST.upper()) == [("127.0.0.1", 8583)]


def test_unknown_name_is_nxdomain() -> None:
    with pytest.raises(ResolveError, match="not in the simulator's hosts table"):
        _resolve(SimResolver(), "elsewhere.test")


def test_failing_switch() -> None:
    resolver = SimResolver({"bank.test": "::1"})
    assert _resolve(resolver, "bank.test") == [("::1", 8583)]
    resolver.set_failing(True)
    with pytest.raises(ResolveError) as caught:
        _resolve(resolver, "bank.test")
    assert caught.value.reason is LinkReason.DNS and "NXDOMAIN" in str(caught.value)
    assert _resolve(resolver, "127.0.0.1") == [("127.0.0.1", 8583)]  # literals need no DNS
    resolver.set_failing(False)
    resolver.add("other.test", "127.0.0.2")
    assert _resolve(resolver, "other.test") == [("127.0.0.2", 8583)]
    assert resolver.lookups == 4

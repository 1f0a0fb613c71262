"""SimResolver: a hosts table for the simulator, with a switch that makes lookups fail like
NXDOMAIN (the simulator's dns-fail mode; the acquirer itself stays up).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping

from pitill.upstream.failures import ResolveError
from pitill.upstream.resolver import Address

SIM_HOST = "acquirer.pitill.test"  # the default upstream.host, see pitill.config


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class SimResolver:
    """Names map to loopback addresses; set_failing(True) makes every name lookup fail.

    IP literals always "resolve" to themselves, as getaddrinfo does without asking DNS.
    """

    def __init__(self, hosts: Mapping[str, str] | None = None, delay_s: float = 0.0) -> None:
        table = hosts if hosts is not None else {SIM_HOST: "127.0.0.1"}
        self._hosts = {name.lower(): address for name, address in table.items()}
        self._failing = False
        self.delay_s = delay_s  # a slow resolver, as DNS was while it recovered
        self.lookups = 0

    @property
    def failing(self) -> bool:
        return self._failing

    def set_failing(self, failing: bool) -> None:
        self._failing = failing

    def add(self, name: str, address: str) -> None:
        self._hosts[name.lower()] = address

    async def resolve(self, host: str, port: int) -> list[Address]:
        self.lookups += 1
        if _is_ip_literal(host):
            return [(host, port)]
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        if self._failing:
            raise ResolveError(host, "NXDOMAIN (simulated DNS failure)")
        address = self._hosts.get(host.lower())
        if address is None:
            raise ResolveError(host, "NXDOMAIN (not in the simulator's hosts table)")
        return [(address, port)]

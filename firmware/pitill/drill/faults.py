"""Plays a timeline segment on the simulated world: the host's mode and the faults on top of it.

The mode goes through SimWorld.set_upstream (the sandbox host and its name). Faults per connection
come from FaultyResolver, which stands in for the world's resolver: for a share of lookups it fails
the name, or hands out a loopback port where nothing listens (a real ECONNREFUSED) or where a
listener resets the connection as soon as the first request arrives (a real RST). Faults per
message (91/96 answers, slow answers, lost answers) are the host's own ChaosPlan, redrawn every
CHAOS_TICK_S of real time so that "slow" comes and goes like a loaded host's latency.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections import Counter
from collections.abc import Mapping
from contextlib import suppress

from pitill.core.responses import ISSUER_INOPERATIVE, SYSTEM_MALFUNCTION
from pitill.drill.timeline import Faults, Segment
from pitill.sim.acquirer import FINANCIAL_MTIS, ChaosPlan
from pitill.sim.resolver import SimResolver
from pitill.sim.world import SimWorld
from pitill.upstream.failures import ResolveError
from pitill.upstream.messages import ECHO_REQUEST
from pitill.upstream.resolver import Address

CHAOS_TICK_S = 0.25  # how often the host's fault plan is redrawn (real seconds)
RETRY_CODES = (ISSUER_INOPERATIVE, SYSTEM_MALFUNCTION)  # what a loaded host answers, at random
LOOPBACK = "127.0.0.1"
_RESET_WAIT_S = 2.0  # a reset listener gives up waiting for a first byte after this
# Echoes are touched too: a loaded host answers probes slowly and loses some answers.
_CHAOS_MTIS = FINANCIAL_MTIS | {ECHO_REQUEST}


class FaultyResolver(SimResolver):
    """SimResolver plus per-lookup faults: each lookup draws one fate from the current Faults."""

    def __init__(self, hosts: Mapping[str, str], rng: random.Random) -> None:
        super().__init__(hosts)
        self.faults = Faults()
        self.refused_port = 0  # set by UpstreamFaults.start
        self.reset_port = 0
        self.counts: Counter[str] = Counter()
        self._rng = rng

    async def resolve(self, host: str, port: int) -> list[Address]:
        addresses = await super().resolve(host, port)  # raises when the mode is dns-fail
        faults = self.faults
        if not faults.active:
            return addresses
        if faults.dns > 0 and self._rng.random() < faults.dns:
            self.counts["dns"] += 1
            raise ResolveError(host, "NXDOMAIN (drill: a share of lookups fail)")
        roll = self._rng.random()
        if roll < faults.refuse:
            self.counts["refused"] += 1
            return [(LOOPBACK, self.refused_port)]
        if roll < faults.refuse + faults.reset:
            self.counts["reset"] += 1
            return [(LOOPBACK, self.reset_port)]
        return addresses


async def _reset_after_first_bytes(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Wait for the request, then send RST (SO_LINGER 0): the client sees ECONNRESET."""
    with suppress(TimeoutError, OSError):
        async with asyncio.timeout(_RESET_WAIT_S):
            await reader.read(1)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class UpstreamFaults:
    """Owns the fault machinery of one drill; create it before world.start()."""

    def __init__(self, world: SimWorld, seed: int) -> None:
        self._world = world
        self._rng = random.Random(seed)
        self.resolver = FaultyResolver({world.config.upstream.host: LOOPBACK}, self._rng)
        world.resolver = self.resolver  # the terminal is built with this one at start()
        self.segment: Segment | None = None
        self.counts: Counter[str] = Counter()  # slow quarters drawn
        self._refused: socket.socket | None = None
        self._reset_server: asyncio.Server | None = None
        self._chaos_on = False

    async def start(self) -> None:
        # Bound but never listening: a connect to it is refused, and the port stays ours.
        self._refused = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._refused.bind((LOOPBACK, 0))
        self.resolver.refused_port = self._refused.getsockname()[1]
        self._reset_server = await asyncio.start_server(_reset_after_first_bytes, LOOPBACK, 0)
        self.resolver.reset_port = self._reset_server.sockets[0].getsockname()[1]

    def apply(self, segment: Segment) -> None:
        """Switch to `segment`: the host's mode at once, its faults from now on."""
        self.segment = segment
        self._world.set_upstream(segment.mode)
        self.resolver.faults = segment.faults
        self.tick()

    def tick(self) -> None:
        """Redraw the host's fault plan; call every CHAOS_TICK_S."""
        faults = self.segment.faults if self.segment is not None else Faults()
        if not (faults.retry or faults.slow or faults.lost_answer):
            if self._chaos_on:
                self._world.host.set_chaos(None)
                self._chaos_on = False
            return
        slow = faults.slow > 0 and self._rng.random() < faults.slow
        self.counts["slow_quarters"] += slow
        self._world.host.set_chaos(
            ChaosPlan(
                retry=faults.retry,
                retry_code=self._rng.choice(RETRY_CODES),
                drop_reply=faults.lost_answer,
                delay_s=faults.slow_s if slow else 0.0,
                seed=self._rng.randrange(1 << 30),
                mtis=_CHAOS_MTIS,
            )
        )
        self._chaos_on = True

    def injected(self) -> dict[str, int]:
        """What was injected so far, by kind (lookups failed, connections refused or reset...)."""
        host = self._world.host.counts
        return {
            "lookups_failed": self.resolver.counts["dns"],
            "connections_refused": self.resolver.counts["refused"],
            "connections_reset": self.resolver.counts["reset"],
            "answers_lost": host["dropped_replies"],
            "slow_quarters": self.counts["slow_quarters"],
        }

    async def close(self) -> None:
        if self._reset_server is not None:
            self._reset_server.close()
            with suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._reset_server.wait_closed()
        if self._refused is not None:
            self._refused.close()

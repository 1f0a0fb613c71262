"""The drill's faults are real: refused and reset connections on loopback, failed lookups, chaos."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pitill.config import Config
from pitill.drill.faults import UpstreamFaults
from pitill.drill.timeline import Faults, Segment
from pitill.sim.world import SimWorld
from pitill.upstream.connect import open_stream
from pitill.upstream.failures import LinkReason, ResolveError, UnreachableError

HOST = Config().upstream.host


async def _with_faults(tmp_path: Path, faults: Faults) -> tuple[SimWorld, UpstreamFaults]:
    world = SimWorld(Config(), tmp_path)
    injector = UpstreamFaults(world, seed=1)
    await injector.start()
    injector.resolver.faults = faults
    return world, injector


def test_a_refused_share_of_one_refuses_every_connection(tmp_path: Path) -> None:
    async def main() -> None:
        _, injector = await _with_faults(tmp_path, Faults(refuse=1.0))
        try:
            with pytest.raises(UnreachableError) as info:
                await open_stream(injector.resolver, HOST, 8583, 1.0)
            assert info.value.reason is LinkReason.REFUSED
            assert injector.injected()["connections_refused"] == 1
        finally:
            await injector.close()

    asyncio.run(main())


def test_a_reset_share_resets_the_connection_when_the_request_arrives(tmp_path: Path) -> None:
    async def main() -> None:
        _, injector = await _with_faults(tmp_path, Faults(reset=1.0))
        try:
            reader, writer = await open_stream(injector.resolver, HOST, 8583, 1.0)
            writer.write(b"\x00\x04ping")
            with pytest.raises(ConnectionResetError):
                async with asyncio.timeout(3.0):
                    await reader.read(10)
                    await reader.read(10)  # an EOF first would be a polite close, not a reset
            writer.close()
            assert injector.injected()["connections_reset"] == 1
        finally:
            await injector.close()

    asyncio.run(main())


def test_a_dns_share_fails_the_lookup(tmp_path: Path) -> None:
    async def main() -> None:
        _, injector = await _with_faults(tmp_path, Faults(dns=1.0))
        try:
            with pytest.raises(ResolveError):
                await injector.resolver.resolve(HOST, 8583)
            injector.resolver.faults = Faults()
            assert await injector.resolver.resolve(HOST, 8583) == [("127.0.0.1", 8583)]
        finally:
            await injector.close()

    asyncio.run(main())


def test_a_segment_sets_the_host_mode_and_its_chaos(tmp_path: Path) -> None:
    async def main() -> None:
        world, injector = await _with_faults(tmp_path, Faults())
        try:
            injector.apply(Segment("dns", 60, "dns-fail"))
            assert injector.resolver.failing and world.host.mode == "up"
            injector.apply(Segment("degraded", 60, "up", Faults(retry=0.3, slow=1.0, slow_s=0.7)))
            assert not injector.resolver.failing
            assert world.host.chaos.retry == 0.3 and world.host.chaos.delay_s == 0.7
            assert world.host.chaos.retry_code in ("91", "96")
            assert "0800" in world.host.chaos.mtis  # probes see the slowness too
            injector.apply(Segment("healthy", 60))
            assert world.host.chaos.retry == 0 and world.host.chaos.delay_s == 0
        finally:
            await injector.close()
            await world.host.close()

    asyncio.run(main())

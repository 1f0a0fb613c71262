"""CachingResolver: the last addresses of each name, kept in a file, used when the name fails."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream.failures import LinkReason, ResolveError
from pitill.upstream.resolver import Address, Remembered
from pitill.upstream.resolver_cache import MAX_NAMES, RESOLVED_HOSTS_NAME, CachingResolver


class Rotating:
    """A round-robin DNS stand-in: the same addresses, in a new order each time."""

    def __init__(self, ips: list[str]) -> None:
        self.ips = ips
        self.lookups = 0

    async def resolve(self, host: str, port: int) -> list[Address]:
        self.lookups += 1
        shift = self.lookups % len(self.ips)
        return [(ip, port) for ip in self.ips[shift:] + self.ips[:shift]]


class Hanging:
    """A resolver that answers only when released, like one waiting on a dead DNS server."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.lookups = 0

    async def resolve(self, host: str, port: int) -> list[Address]:
        self.lookups += 1
        await self.release.wait()
        return [("127.0.0.9", port)]


def test_remembers_and_answers_for_a_failing_name_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / RESOLVED_HOSTS_NAME
    sim = SimResolver({SIM_HOST: "127.0.0.7"})

    async def scenario() -> list[Address]:
        first = CachingResolver(sim, path)
        assert await first.resolve(SIM_HOST, 8583) == [("127.0.0.7", 8583)]
        sim.set_failing(True)
        again = CachingResolver(sim, path)  # a restart: only the file remembers
        return await again.resolve(SIM_HOST.upper(), 9000)

    addresses = asyncio.run(scenario())
    assert addresses == [("127.0.0.7", 9000)]  # the port is the request's, not the stored one
    assert isinstance(addresses, Remembered)
    assert addresses.error.reason is LinkReason.DNS and "NXDOMAIN" in str(addresses.error)
    stored = json.loads(path.read_text())
    assert stored == {"version": 1, "hosts": {SIM_HOST: ["127.0.0.7"]}}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_a_name_never_resolved_still_fails(tmp_path: Path) -> None:
    sim = SimResolver()
    sim.set_failing(True)
    cache = CachingResolver(sim, tmp_path / RESOLVED_HOSTS_NAME)
    with pytest.raises(ResolveError):
        asyncio.run(cache.resolve(SIM_HOST, 8583))
    assert not (tmp_path / RESOLVED_HOSTS_NAME).exists()


def test_rewrites_the_file_only_when_the_addresses_change(tmp_path: Path) -> None:
    rotating = Rotating(["127.0.0.1", "127.0.0.2", "127.0.0.3"])
    cache = CachingResolver(rotating, tmp_path / RESOLVED_HOSTS_NAME)

    async def scenario() -> None:
        for _ in range(5):
            await cache.resolve("pool.test", 8583)
        rotating.ips = ["127.0.0.4"]
        await cache.resolve("pool.test", 8583)

    asyncio.run(scenario())
    assert rotating.lookups == 6
    assert cache.counts["saves"] == 2  # the first answer and the change, not the reorderings
    assert cache.remembered("POOL.test") == ["127.0.0.4"]


def test_addresses_are_not_remembered_for_ip_literals(tmp_path: Path) -> None:
    cache = CachingResolver(SimResolver(), tmp_path / RESOLVED_HOSTS_NAME)
    assert asyncio.run(cache.resolve("127.0.0.1", 8583)) == [("127.0.0.1", 8583)]
    assert cache.counts["saves"] == 0 and cache.remembered("127.0.0.1") == []


def test_a_hanging_lookup_falls_back_and_is_shared(tmp_path: Path) -> None:
    """Past lookup_timeout_s the remembered addresses answer; the lookup keeps running (one for
    all callers, not one thread per probe) and its late answer refreshes the cache."""
    path = tmp_path / RESOLVED_HOSTS_NAME
    path.write_text(json.dumps({"version": 1, "hosts": {SIM_HOST: ["127.0.0.8"]}}))
    hanging = Hanging()
    cache = CachingResolver(hanging, path, lookup_timeout_s=0.05)

    async def scenario() -> list[list[Address]]:
        answers = await asyncio.gather(*(cache.resolve(SIM_HOST, 1) for _ in range(3)))
        hanging.release.set()
        for _ in range(100):  # the shared lookup finishes, then its callback remembers
            if cache.remembered(SIM_HOST) != ["127.0.0.8"]:
                break
            await asyncio.sleep(0)
        return list(answers)

    answers = asyncio.run(scenario())
    assert answers == [[("127.0.0.8", 1)]] * 3
    assert all(isinstance(a, Remembered) and "0.05 s" in str(a.error) for a in answers)
    assert hanging.lookups == 1
    assert cache.remembered(SIM_HOST) == ["127.0.0.9"]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps(["127.0.0.1"]),
        json.dumps({"version": 99, "hosts": {SIM_HOST: ["127.0.0.1"]}}),
        json.dumps({"version": 1, "hosts": {SIM_HOST: ["not an address", 7]}}),
    ],
)
def test_a_damaged_file_means_an_empty_cache(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / RESOLVED_HOSTS_NAME
    path.write_text(content)
    sim = SimResolver()
    sim.set_failing(True)
    with caplog.at_level(logging.WARNING):
        cache = CachingResolver(sim, path)
    assert cache.remembered(SIM_HOST) == []
    with pytest.raises(ResolveError):
        asyncio.run(cache.resolve(SIM_HOST, 8583))
    sim.set_failing(False)
    asyncio.run(cache.resolve(SIM_HOST, 8583))  # a good answer replaces the damaged file
    assert json.loads(path.read_text())["hosts"] == {SIM_HOST: ["127.0.0.1"]}


def test_a_file_that_cannot_be_written_keeps_the_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "missing-dir" / RESOLVED_HOSTS_NAME
    sim = SimResolver()
    cache = CachingResolver(sim, path)
    with caplog.at_level(logging.WARNING):
        asyncio.run(cache.resolve(SIM_HOST, 8583))
    assert "cannot save" in caplog.text
    sim.set_failing(True)
    assert asyncio.run(cache.resolve(SIM_HOST, 8583)) == [("127.0.0.1", 8583)]


def test_the_oldest_name_goes_beyond_the_limit(tmp_path: Path) -> None:
    names = [f"host{i}.test" for i in range(MAX_NAMES + 1)]
    sim = SimResolver(dict.fromkeys(names, "127.0.0.1"))
    path = tmp_path / RESOLVED_HOSTS_NAME
    cache = CachingResolver(sim, path)

    async def scenario() -> None:
        for name in names:
            await cache.resolve(name, 8583)

    asyncio.run(scenario())
    kept = json.loads(path.read_text())["hosts"]
    assert len(kept) == MAX_NAMES and names[0] not in kept and names[-1] in kept
    assert CachingResolver(sim, path).remembered(names[-1]) == ["127.0.0.1"]

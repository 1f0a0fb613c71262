"""LinkMonitor against a real AcquirerHost on loopback: short intervals, polled with deadlines.

The monitor watches the client's one persistent connection (keepalive, resets, the name) and
echoes only after echo_interval_s of silence, or every probe_interval_s while in doubt. Tests
that need echoes to find a fault set echo_interval_s short; the others keep the minute, so what
they see came from the cheap checks. The idle hour runs on a loop with a fake clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from upstream_helpers import (
    HOST_TODAY,
    LOCAL_DATETIME,
    TERMINAL,
    VirtualTimeLoop,
    eventually,
    sale,
)

from pitill.config import UpstreamConfig
from pitill.core.types import LinkStatus
from pitill.sim.acquirer import AcquirerHost, ChaosPlan
from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream.client import UpstreamClient
from pitill.upstream.failures import LinkReason, OutcomeUnknown, ResolveError
from pitill.upstream.monitor import LinkMonitor
from pitill.upstream.resolver import Resolver
from pitill.upstream.resolver_cache import RESOLVED_HOSTS_NAME, CachingResolver

ONLINE, OFFLINE, DEGRADED = LinkStatus.ONLINE, LinkStatus.OFFLINE, LinkStatus.DEGRADED
FAST = {"probe_interval_s": 0.05, "probe_timeout_s": 0.2, "resolve_interval_s": 0.05}


@dataclass
class Watch:
    host: AcquirerHost
    resolver: SimResolver  # the name's switch (behind a CachingResolver when remembering)
    monitor: LinkMonitor
    config: UpstreamConfig
    changes: list[tuple[LinkStatus, str]] = field(default_factory=list)

    async def reaches(self, status: LinkStatus, reason: str = "") -> bool:
        return await eventually(
            lambda: (self.monitor.status, self.monitor.reason) == (status, reason)
        )

    @property
    def echoes_sent(self) -> int:
        return self.monitor.client.counts["echoes"]


@asynccontextmanager
async def watching(
    data_dir: Path,
    slow_threshold_s: float = 10.0,
    start: bool = True,
    remember: bool = False,
    sim: SimResolver | None = None,
    **settings: Any,
) -> AsyncIterator[Watch]:
    """A monitor of a fresh host with quick bursts and lookups (FAST); slow_threshold_s is
    generous unless a test is about slowness, so a loaded CI machine does not turn a probe into
    DEGRADED. `remember` puts a CachingResolver in front of the name; `settings` are more
    UpstreamConfig fields (echo_interval_s stays 60 s unless given); `sim` the name's resolver."""
    async with AcquirerHost(data_dir, today_yymm=lambda: HOST_TODAY) as host:
        config = UpstreamConfig(host=SIM_HOST, port=host.port, **(FAST | settings))
        sim = sim if sim is not None else SimResolver()
        resolver: Resolver = sim
        if remember:
            resolver = CachingResolver(sim, data_dir / RESOLVED_HOSTS_NAME, lookup_timeout_s=0.1)
        changes: list[tuple[LinkStatus, str]] = []
        monitor = LinkMonitor(
            config,
            TERMINAL,
            resolver,
            lambda status, reason: changes.append((status, reason)),
            slow_threshold_s=slow_threshold_s,
        )
        if start:
            monitor.start()
        try:
            yield Watch(host, sim, monitor, config, changes)
        finally:
            await monitor.stop()


def _run(tmp_path: Path, body: Callable[[Watch], object], **kwargs: Any) -> Watch:
    async def scenario() -> Watch:
        async with watching(tmp_path, **kwargs) as watch:
            await body(watch)  # type: ignore[misc]
            return watch

    return asyncio.run(scenario())


def test_an_idle_link_costs_one_echo_a_minute_on_one_connection(tmp_path: Path) -> None:
    """An hour of an idle, healthy link (fake clock): 60 echoes (plus the first, at start),
    all on one connection, and the link ONLINE throughout."""

    async def scenario() -> Watch:
        async with watching(tmp_path, **{**FAST, "resolve_interval_s": 0.5}) as watch:
            await asyncio.sleep(3600)
            return watch

    loop = VirtualTimeLoop()
    try:
        w = loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert 60 <= w.host.counts["echoes"] <= 61
    assert w.host.counts["connections"] == 1
    assert w.changes == [(ONLINE, "")]


def test_real_answers_stand_in_for_echoes(tmp_path: Path) -> None:
    """A sale every 30 s for ten minutes (fake clock): no echo is due while answers come."""

    async def scenario() -> Watch:
        async with watching(tmp_path) as watch:
            assert await watch.reaches(ONLINE)
            first = watch.host.counts["echoes"]
            for seq in range(1, 21):
                await asyncio.sleep(30)
                await watch.monitor.client.authorize(sale(seq=seq), LOCAL_DATETIME)
            assert watch.host.counts["echoes"] == first
            return watch

    loop = VirtualTimeLoop()
    try:
        w = loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert w.changes == [(ONLINE, "")]


def test_host_down_and_back(tmp_path: Path) -> None:
    """A host that goes down resets the connection: OFFLINE REFUSED (the reconnect's reason)
    without a single echo sent, then back ONLINE by the burst of probes."""

    async def body(w: Watch) -> None:
        assert await w.reaches(ONLINE)
        sent = w.echoes_sent
        w.host.set_mode("down")
        assert await w.reaches(OFFLINE, "REFUSED")
        assert w.echoes_sent == sent  # the reset and the refused reconnect said it all
        w.host.set_mode("up")
        assert await w.reaches(ONLINE)

    w = _run(tmp_path, body)
    assert w.changes == [(ONLINE, ""), (OFFLINE, "REFUSED"), (ONLINE, "")]


def test_a_host_that_stops_answering_is_found_by_the_first_request(tmp_path: Path) -> None:
    """The sandbox's blackhole accepts and reads but never answers: nothing below the
    application sees it. An idle terminal learns it from the first sale, whose customer waits
    the request timeout; the link is OFFLINE the moment it times out, so the next one does not."""

    async def body(w: Watch) -> None:
        client = UpstreamClient.from_config(
            w.config,
            TERMINAL,
            w.resolver,
            on_signal=w.monitor.report_failure,
            on_answer=w.monitor.report_answer,
        )
        try:
            assert await w.reaches(ONLINE)
            w.host.set_mode("blackhole")
            with pytest.raises(OutcomeUnknown):
                await client.authorize(sale(), LOCAL_DATETIME, timeout_s=0.3)
            assert (w.monitor.status, w.monitor.reason) == (OFFLINE, "TIMEOUT")
            w.host.set_mode("up")
            assert await w.reaches(ONLINE)
        finally:
            await client.close()

    w = _run(tmp_path, body)
    assert w.changes == [(ONLINE, ""), (OFFLINE, "TIMEOUT"), (ONLINE, "")]


def test_blackhole_found_by_the_echo_when_one_is_due(tmp_path: Path) -> None:
    async def body(w: Watch) -> None:
        assert await w.reaches(ONLINE)
        w.host.set_mode("blackhole")
        assert await w.reaches(OFFLINE, "TIMEOUT")
        w.host.set_mode("up")
        assert await w.reaches(ONLINE)

    w = _run(tmp_path, body, echo_interval_s=0.1)
    assert w.changes == [(ONLINE, ""), (OFFLINE, "TIMEOUT"), (ONLINE, "")]


def test_one_swallowed_echo_is_enough_to_go_offline(tmp_path: Path) -> None:
    """Overdue past one probe interval counts as a failure, the timeout as a second: a single
    probe into a blackhole takes the link OFFLINE (within probe interval + probe timeout)."""

    async def body(w: Watch) -> None:
        assert (await w.monitor.probe()).ok
        w.monitor._publish(w.monitor.tracker.observe_probe(0.0, await w.monitor.probe()))
        assert w.monitor.status is ONLINE
        w.host.set_mode("blackhole")
        swallowed = await w.monitor.probe()
        assert swallowed.reason is LinkReason.TIMEOUT
        w.monitor._publish(w.monitor.tracker.observe_probe(1.0, swallowed))
        assert (w.monitor.status, w.monitor.reason) == (OFFLINE, "TIMEOUT")

    _run(tmp_path, body, start=False)


def test_name_stops_resolving_and_comes_back(tmp_path: Path) -> None:
    """Found by re-resolving the name (no echo needed), with nothing remembered: OFFLINE DNS
    although the connection is still open."""

    async def body(w: Watch) -> None:
        assert await w.reaches(ONLINE)
        sent = w.echoes_sent
        w.resolver.set_failing(True)
        assert await w.reaches(OFFLINE, "DNS")
        assert w.echoes_sent == sent
        w.resolver.set_failing(False)
        assert await w.reaches(ONLINE)

    w = _run(tmp_path, body)
    assert w.changes == [(ONLINE, ""), (OFFLINE, "DNS"), (ONLINE, "")]
    assert w.host.ledger() == []  # echoes are never in the ledger


class ConclusiveResolver(SimResolver):
    """Fails as SystemResolver does once its own queries were asked again (conclusive), and
    notes the link's status at each failed lookup."""

    def __init__(self) -> None:
        super().__init__()
        self.monitor: LinkMonitor | None = None
        self.seen: list[LinkStatus] = []

    async def resolve(self, host: str, port: int) -> list[tuple[str, int]]:
        if self.failing and self.monitor is not None:
            self.seen.append(self.monitor.status)
            raise ResolveError(host, "no answer within 0.4 s to 3 queries", conclusive=True)
        return await super().resolve(host, port)


def test_a_conclusive_lookup_failure_is_offline_at_once(tmp_path: Path) -> None:
    """A lookup that already asked again (SystemResolver) and failed: OFFLINE DNS after that one
    lookup, though fail_threshold is 3; back ONLINE when the name resolves."""
    dns = ConclusiveResolver()

    async def body(w: Watch) -> None:
        dns.monitor = w.monitor
        assert await w.reaches(ONLINE)
        dns.set_failing(True)
        assert await w.reaches(OFFLINE, "DNS")
        dns.set_failing(False)
        assert await w.reaches(ONLINE)

    w = _run(tmp_path, body, sim=dns, fail_threshold=3)
    assert w.changes == [(ONLINE, ""), (OFFLINE, "DNS"), (ONLINE, "")]
    assert dns.seen[0] is ONLINE and set(dns.seen[1:]) <= {OFFLINE}


def test_slow_echoes_degrade(tmp_path: Path) -> None:
    async def body(w: Watch) -> None:
        assert await w.reaches(ONLINE)
        w.host.set_chaos(ChaosPlan(delay_s=0.08, mtis=frozenset({"0800"})))
        assert await w.reaches(DEGRADED, "SLOW")
        w.host.set_chaos(None)
        assert await w.reaches(ONLINE)

    w = _run(tmp_path, body, slow_threshold_s=0.04, echo_interval_s=0.1)
    assert w.changes == [(ONLINE, ""), (DEGRADED, "SLOW"), (ONLINE, "")]


def _slow_sale(tmp_path: Path, chaos: ChaosPlan) -> tuple[list[tuple[LinkStatus, str]], int]:
    """ONLINE and idle (echoes a minute apart), then one sale answered under `chaos`; the link's
    changes and the echoes sent after the sale (fake clock: the threshold is 0.04 s exactly)."""

    async def scenario() -> tuple[list[tuple[LinkStatus, str]], int]:
        # A probe interval longer than the delay: the echo is slow, not overdue.
        async with watching(tmp_path, slow_threshold_s=0.04, probe_interval_s=0.2) as w:
            w.monitor.client.on_signal = w.monitor.report_failure  # wired as app.py does
            w.monitor.client.on_answer = w.monitor.report_answer
            assert await w.reaches(ONLINE)
            w.host.set_chaos(chaos)
            sent = w.echoes_sent
            await w.monitor.client.authorize(sale(), LOCAL_DATETIME)
            await asyncio.sleep(5)  # the next echo would be due only at echo_interval_s (60 s)
            return w.changes, w.echoes_sent - sent

    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()


def test_a_slow_answer_to_a_sale_is_confirmed_by_an_echo(tmp_path: Path) -> None:
    """A sale answered later than slow_threshold_s is a passive signal: an echo looks at once,
    and when it is slow too the link is DEGRADED SLOW (no need to wait for the minute's echo)."""
    every_answer = ChaosPlan().mtis | {"0800"}
    changes, echoes = _slow_sale(tmp_path, ChaosPlan(delay_s=0.08, mtis=every_answer))
    assert changes == [(ONLINE, ""), (DEGRADED, "SLOW")]
    assert echoes >= 1


def test_one_slow_sale_with_quick_echoes_is_not_degraded(tmp_path: Path) -> None:
    """The sale was slow, the echo that checks is not: one slow answer is no trend."""
    changes, echoes = _slow_sale(tmp_path, ChaosPlan(delay_s=0.08))  # sales only, not echoes
    assert changes == [(ONLINE, "")]
    assert echoes >= 1


def test_echoes_share_one_connection(tmp_path: Path) -> None:
    async def body(w: Watch) -> None:
        assert await eventually(lambda: w.host.counts["echoes"] >= 4)
        await w.monitor.stop()
        assert await eventually(lambda: not w.host._connections)  # stop() closed it

    w = _run(tmp_path, body, echo_interval_s=0.05)
    assert w.host.counts["connections"] == 1


def test_probe_results(tmp_path: Path) -> None:
    async def body(w: Watch) -> None:
        good = await w.monitor.probe()
        assert good.ok and good.response_code == "00" and good.rtt_s > 0
        w.host.set_mode("down")
        refused = await w.monitor.probe()
        assert refused.reason is LinkReason.REFUSED and "refused" in refused.detail

    _run(tmp_path, body, start=False)


def test_passive_failures_take_it_offline(tmp_path: Path) -> None:
    """A request that waited its whole timeout is conclusive: OFFLINE at once. Other failures
    count one each."""

    async def body(w: Watch) -> None:
        w.monitor.report_failure(LinkReason.TIMEOUT)
        assert (w.monitor.status, w.monitor.reason) == (OFFLINE, "TIMEOUT")
        w.monitor.report_failure("no such reason")  # counted, as RESET
        assert w.monitor.reason == "RESET"

    w = _run(tmp_path, body, start=False)
    assert w.changes == [(OFFLINE, "TIMEOUT"), (OFFLINE, "RESET")]


def test_a_failing_listener_does_not_stop_the_monitor(tmp_path: Path) -> None:
    async def scenario() -> LinkStatus:
        async with AcquirerHost(tmp_path) as host:
            config = UpstreamConfig(host=SIM_HOST, port=host.port, **FAST)

            def broken(status: LinkStatus, reason: str) -> None:
                raise RuntimeError("listener bug")

            monitor = LinkMonitor(config, TERMINAL, SimResolver(), broken)
            monitor.start()
            try:
                assert await eventually(lambda: monitor.status is ONLINE)
                host.set_mode("down")
                assert await eventually(lambda: monitor.status is OFFLINE)
                return monitor.status
            finally:
                await monitor.stop()

    assert asyncio.run(scenario()) is OFFLINE


def test_a_vanished_name_rides_on_the_remembered_address(tmp_path: Path) -> None:
    """The October 2025 case: the name stops resolving, its server still answers. DEGRADED DNS
    while the remembered address answers; OFFLINE DNS only when it does not."""

    async def body(w: Watch) -> None:
        assert await w.reaches(ONLINE)
        w.resolver.set_failing(True)
        assert await w.reaches(DEGRADED, "DNS")
        w.host.set_mode("down")
        assert await w.reaches(OFFLINE, "DNS")
        w.host.set_mode("up")
        assert await w.reaches(DEGRADED, "DNS")
        w.resolver.set_failing(False)
        assert await w.reaches(ONLINE)

    w = _run(tmp_path, body, remember=True)
    assert w.changes == [
        (ONLINE, ""),
        (DEGRADED, "DNS"),
        (OFFLINE, "DNS"),
        (DEGRADED, "DNS"),
        (ONLINE, ""),
    ]


class ScriptedResolver(SimResolver):
    """A SimResolver whose next lookups fail or not as `script` says (True: fail), then as
    set_failing says."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[bool] = []

    async def resolve(self, host: str, port: int) -> list[tuple[str, int]]:
        if self.script:
            failing, self._failing = self._failing, self.script.pop(0)
            try:
                return await super().resolve(host, port)
            finally:
                self._failing = failing
        return await super().resolve(host, port)


def test_the_name_back_brings_the_link_back_whichever_lookup_failed_last(tmp_path: Path) -> None:
    """DEGRADED DNS (remembered addresses) and the name resolves again, but the lookup of the
    probe the heal earned still fails (a hung lookup from the outage, a lost answer): the next
    lookup that works earns another probe, so the link is ONLINE within a few burst probes, not
    at the next echo a minute later (fake clock)."""
    scripted = ScriptedResolver()

    async def scenario() -> tuple[LinkStatus, str]:
        async with watching(tmp_path, remember=True, sim=scripted) as w:
            assert await w.reaches(ONLINE)
            scripted.set_failing(True)
            assert await w.reaches(DEGRADED, "DNS")
            scripted.script = [False, True]  # the name check's lookup works, the probe's not
            scripted.set_failing(False)
            await asyncio.sleep(5)  # the next echo would be due only at echo_interval_s (60 s)
            return w.monitor.status, w.monitor.reason

    loop = VirtualTimeLoop()
    try:
        assert loop.run_until_complete(scenario()) == (ONLINE, "")
    finally:
        loop.close()
    assert not scripted.script  # both scripted lookups were made


def test_the_secondary_keeps_it_up_until_every_host_fails(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[LinkStatus, str]]:
        async with AsyncExitStack() as stack:
            primary = await stack.enter_async_context(AcquirerHost(tmp_path / "primary"))
            secondary = await stack.enter_async_context(AcquirerHost(tmp_path / "secondary"))
            config = UpstreamConfig(
                hosts=(f"primary.test:{primary.port}", f"secondary.test:{secondary.port}"),
                **FAST,
            )
            resolver = SimResolver({"primary.test": "127.0.0.1", "secondary.test": "127.0.0.1"})
            changes: list[tuple[LinkStatus, str]] = []
            monitor = LinkMonitor(
                config,
                TERMINAL,
                resolver,
                lambda *change: changes.append(change),
                slow_threshold_s=10.0,
            )
            monitor.start()
            stack.push_async_callback(monitor.stop)

            async def reaches(status: LinkStatus, reason: str = "") -> bool:
                return await eventually(
                    lambda: (monitor.status, monitor.reason) == (status, reason)
                )

            assert await reaches(ONLINE)
            primary.set_mode("down")
            assert await reaches(DEGRADED, "REFUSED")  # sales go on, through the secondary
            secondary.set_mode("down")
            assert await reaches(OFFLINE, "REFUSED")  # the primary's reason
            secondary.set_mode("up")
            assert await reaches(DEGRADED, "REFUSED")
            primary.set_mode("up")
            assert await reaches(ONLINE)  # back to the primary as soon as it accepts
            assert secondary.counts["echoes"] > 0
            return changes

    assert asyncio.run(scenario()) == [
        (ONLINE, ""),
        (DEGRADED, "REFUSED"),
        (OFFLINE, "REFUSED"),
        (DEGRADED, "REFUSED"),
        (ONLINE, ""),
    ]


def test_a_host_that_answers_echoes_but_fails_sales_is_offline_for_sales(tmp_path: Path) -> None:
    """Real sales answered 91 (echoes fine): OFFLINE RETRY after the threshold, for the hold;
    then DEGRADED so one sale can try; a sale answered brings it back ONLINE (the echoes it
    prompts confirm the host: the link was degraded by the retry answers)."""

    async def body(w: Watch) -> None:
        client = UpstreamClient.from_config(
            w.config,
            TERMINAL,
            w.resolver,
            on_signal=w.monitor.report_failure,
            on_answer=w.monitor.report_answer,
        )
        try:
            assert await w.reaches(ONLINE)
            w.host.set_chaos(ChaosPlan(retry=1.0, retry_code="96"))
            for seq in (1, 2):
                answer = await client.authorize(sale(seq=seq), LOCAL_DATETIME)
                assert answer.response_code == "96"
            assert (w.monitor.status, w.monitor.reason) == (OFFLINE, "RETRY")
            assert await w.reaches(DEGRADED, "RETRY")  # the hold is over
            w.host.set_chaos(None)
            assert (await client.authorize(sale(seq=3), LOCAL_DATETIME)).response_code == "00"
            assert await w.reaches(ONLINE)
        finally:
            await client.close()

    w = _run(tmp_path, body, request_fail_threshold=2, failing_hold_s=0.3)
    assert w.changes == [(ONLINE, ""), (OFFLINE, "RETRY"), (DEGRADED, "RETRY"), (ONLINE, "")]


class FakeAcks:
    """A host's kernel as TCP_INFO shows it, on the loop's clock: our kernel probes idle_s
    (1 s) after the last ACK and then every second, and at once when kicked; each probe is
    answered at once, unless probes are being lost."""

    def __init__(self) -> None:
        self.last_ack_s: float | None = None
        self.next_probe_s = 0.0
        self.losing = 0  # probes still to lose; -1: every one (the link is cut)
        self.kicks = 0

    def _probe(self, now_s: float) -> None:
        self.next_probe_s = now_s + 1.0
        if self.losing == 0:
            self.last_ack_s = now_s
            return
        if self.losing > 0:
            self.losing -= 1

    def ack_age_s(self, sock: object) -> float | None:
        now_s = asyncio.get_running_loop().time()
        if self.last_ack_s is None:
            self.last_ack_s, self.next_probe_s = now_s, now_s + 1.0
        if now_s >= self.next_probe_s:
            self._probe(now_s)
        return now_s - self.last_ack_s

    def round_trip_s(self, sock: object) -> float | None:
        return 0.0001

    def kick(self, sock: object, keepalive: object) -> None:
        self.kicks += 1
        self._probe(asyncio.get_running_loop().time())


def _on_fake_clock(tmp_path: Path, body: Callable[[Watch, FakeAcks], object]) -> Watch:
    """`body` against a monitor whose keepalive figures come from FakeAcks, on a fake clock."""

    async def scenario() -> Watch:
        async with AcquirerHost(tmp_path, today_yymm=lambda: HOST_TODAY) as host:
            config = UpstreamConfig(host=SIM_HOST, port=host.port)  # the defaults
            sim = SimResolver()
            changes: list[tuple[LinkStatus, str]] = []
            acks = FakeAcks()
            monitor = LinkMonitor(
                config, TERMINAL, sim, lambda *change: changes.append(change), acks=acks
            )
            monitor.start()
            watch = Watch(host, sim, monitor, config, changes)
            try:
                await body(watch, acks)  # type: ignore[misc]
            finally:
                await monitor.stop()
            return watch

    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()


def test_a_swallowed_link_is_offline_by_keepalive_alone(tmp_path: Path) -> None:
    """Packets swallowed (a cut cable, a firewall): no ACK to the keepalive probe, nor to the
    probes the monitor asks for. One failure per grace period: OFFLINE TIMEOUT at the second,
    within idle + 2 grace (+ one read) of the fault on the fake clock, and no echo sent."""

    async def body(w: Watch, acks: FakeAcks) -> None:
        assert await w.reaches(ONLINE)
        await asyncio.sleep(30.3)  # mid-way between two keepalive probes
        sent, loop = w.echoes_sent, asyncio.get_running_loop()
        cut_at = loop.time()
        acks.losing = -1
        assert await w.reaches(OFFLINE, "TIMEOUT")
        limit_s = w.config.keepalive_idle_s + 2 * w.config.keepalive_grace_s + 0.05 + 1e-6
        assert loop.time() - cut_at <= limit_s
        assert w.echoes_sent == sent
        assert w.monitor.counts["keepalive_misses"] == 2
        assert acks.kicks >= 2  # probes asked for while overdue
        acks.losing = 0
        assert await w.reaches(ONLINE)

    w = _on_fake_clock(tmp_path, body)
    assert w.changes == [(ONLINE, ""), (OFFLINE, "TIMEOUT"), (ONLINE, "")]


def test_one_lost_keepalive_probe_is_not_an_outage(tmp_path: Path) -> None:
    """The kernel's probe is lost once: one failure, then the probe asked for at once is
    answered. Still ONLINE, no echo sent for it."""

    async def body(w: Watch, acks: FakeAcks) -> None:
        assert await w.reaches(ONLINE)
        await asyncio.sleep(10.0)
        sent = w.echoes_sent
        acks.losing = 1
        assert await eventually(lambda: acks.losing == 0 and acks.kicks >= 1)
        await asyncio.sleep(5.0)
        assert w.monitor.counts["keepalive_misses"] == 1
        assert w.echoes_sent == sent

    w = _on_fake_clock(tmp_path, body)
    assert w.changes == [(ONLINE, "")]

"""Measure the link monitor: time from a fault to the status that shows it, and echoes per hour.

Runs in a network namespace of its own (it re-executes itself under `unshare -n` when it is not
in one: root, or a kernel allowing user namespaces), so it can drop packets with iptables on its
own loopback without touching the machine's. The sandbox acquirer listens on 127.0.0.1 and a
LinkMonitor watches it with the DEFAULT upstream config (only the port is the host's; the name
resolves through SimResolver). Each fault is applied at a random phase, N rounds, healed between:

- refused:    the host stops listening and resets its connections (a process that died)
- swallowed:  iptables DROP both ways on the host's port (a cut cable, a firewall, a blackholed
              route): only TCP keepalive can see it on an idle link
- dns:        the name stops resolving, nothing remembered (OFFLINE DNS)
- dns-cached: the name stops resolving, its addresses remembered (DEGRADED DNS)
- silent:     the host accepts and reads but never answers (the sandbox's blackhole, a frozen
              application): found by the first sale, which waits request_timeout_s; reported as
              that customer's wait and whether the link was OFFLINE when it ended

Then the echoes an idle, healthy link costs: counted at the host over --idle seconds of real time
and extrapolated to an hour. Prints one table. Bounded: every wait gives up after --limit s.

    sudo .venv/bin/python tools/link_detect.py [--rounds 10] [--idle 120] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from pitill.card.model import Card
from pitill.config import Config, TerminalConfig, UpstreamConfig
from pitill.core.txn import Txn
from pitill.core.types import LinkStatus, TxnKind, TxnMode, TxnStatus
from pitill.errors import UpstreamError
from pitill.sim.acquirer import AcquirerHost
from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream.monitor import LinkMonitor
from pitill.upstream.resolver import Resolver
from pitill.upstream.resolver_cache import CachingResolver

FAULTS = ("refused", "swallowed", "dns", "dns-cached")
INNER = "PITILL_LINK_DETECT_NETNS"


class Stopwatch:
    def __init__(self) -> None:
        self.status = LinkStatus.UNKNOWN
        self.changed = asyncio.Event()
        self.at_s = 0.0

    def on_change(self, status: LinkStatus, reason: str) -> None:
        self.status = status
        self.at_s = asyncio.get_running_loop().time()
        self.changed.set()

    async def until(self, status: LinkStatus, limit_s: float) -> float | None:
        """Loop time at which `status` was reported, None if not within limit_s."""
        deadline = asyncio.get_running_loop().time() + limit_s
        while self.status is not status:
            self.changed.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self.changed.wait()
            except TimeoutError:
                return None
        return self.at_s


def _iptables(action: str, port: int) -> None:
    for match in ("--dport", "--sport"):
        subprocess.run(
            ["iptables", action, "INPUT", "-p", "tcp", match, str(port), "-j", "DROP"],
            check=True,
        )


@dataclasses.dataclass
class Rig:
    host: AcquirerHost
    sim: SimResolver
    monitor: LinkMonitor
    watch: Stopwatch


async def _rig(data_dir: Path, host: AcquirerHost, remember: bool) -> Rig:
    upstream = dataclasses.replace(Config().upstream, host=SIM_HOST, port=host.port)
    sim = SimResolver()
    resolver: Resolver = sim
    if remember:
        resolver = CachingResolver(
            sim, data_dir / f"hosts-{remember}.json", lookup_timeout_s=upstream.probe_timeout_s / 2
        )
    watch = Stopwatch()
    monitor = LinkMonitor(upstream, TerminalConfig(), resolver, watch.on_change)
    monitor.start()
    return Rig(host, sim, monitor, watch)


def _switch(fault: str, rig: Rig, on: bool) -> None:
    if fault == "refused":
        rig.host.set_mode("down" if on else "up")
    elif fault == "swallowed":
        _iptables("-A" if on else "-D", rig.host.port)
    else:
        rig.sim.set_failing(on)


async def _detect(fault: str, rounds: int, limit_s: float, rng: random.Random) -> list[float]:
    shows = LinkStatus.DEGRADED if fault == "dns-cached" else LinkStatus.OFFLINE
    times: list[float] = []
    with tempfile.TemporaryDirectory() as data_dir:
        async with AcquirerHost(Path(data_dir)) as host:
            rig = await _rig(Path(data_dir), host, remember=fault == "dns-cached")
            loop = asyncio.get_running_loop()
            try:
                for _ in range(rounds):
                    if await rig.watch.until(LinkStatus.ONLINE, limit_s) is None:
                        raise SystemExit(f"{fault}: never ONLINE before the fault")
                    await asyncio.sleep(1.0 + rng.uniform(0, 1.0))  # a random keepalive phase
                    start = loop.time()
                    _switch(fault, rig, True)
                    seen = await rig.watch.until(shows, limit_s)
                    _switch(fault, rig, False)
                    if seen is None:
                        raise SystemExit(f"{fault}: not {shows} within {limit_s} s")
                    times.append(seen - start)
            finally:
                await rig.monitor.stop()
    return times


async def _silent(rounds: int, limit_s: float) -> list[tuple[float, bool]]:
    """The first sale into a silent host: how long its customer waited, and OFFLINE after it."""
    results: list[tuple[float, bool]] = []
    with tempfile.TemporaryDirectory() as data_dir:
        async with AcquirerHost(Path(data_dir)) as host:
            rig = await _rig(Path(data_dir), host, remember=False)
            client = rig.monitor.client
            client.on_signal = rig.monitor.report_failure
            loop = asyncio.get_running_loop()
            try:
                for seq in range(1, rounds + 1):
                    if await rig.watch.until(LinkStatus.ONLINE, limit_s) is None:
                        raise SystemExit("silent: never ONLINE before the fault")
                    host.set_mode("blackhole")
                    start = loop.time()
                    with contextlib.suppress(UpstreamError):
                        await client.authorize(_sale(seq), "251128101500")
                    waited = loop.time() - start
                    results.append((waited, rig.monitor.status is LinkStatus.OFFLINE))
                    host.set_mode("up")
                    # A sale answered: else three timed-out sales in a row are a host that
                    # fails requests, held OFFLINE for failing_hold_s (tracker.py).
                    client.on_answer = rig.monitor.report_answer
                    await client.authorize(_sale(1000 + seq), "251128101500")
            finally:
                await rig.monitor.stop()
    return results


def _sale(seq: int) -> Txn:
    return Txn(
        seq=seq,
        kind=TxnKind.CARD,
        mode=TxnMode.ONLINE,
        amount_minor=1250,
        currency="EUR",
        status=TxnStatus.AUTHORIZING,
        card=Card("4111111111111111", "3012"),
    )


async def _idle(window_s: float) -> tuple[int, int]:
    """Echoes and connections the host received from an idle, healthy link in window_s."""
    with tempfile.TemporaryDirectory() as data_dir:
        async with AcquirerHost(Path(data_dir)) as host:
            rig = await _rig(Path(data_dir), host, remember=False)
            try:
                await asyncio.sleep(window_s)
            finally:
                await rig.monitor.stop()
            return host.counts["echoes"], host.counts["connections"]


def _row(name: str, times: list[float], shows: str) -> str:
    return (
        f"| {name:<10} | {shows:<13} | {len(times):>2} | {statistics.median(times):6.2f} | "
        f"{max(times):6.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--idle", type=float, default=120.0, help="idle window, seconds")
    parser.add_argument("--limit", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", default=",".join((*FAULTS, "silent")))
    args = parser.parse_args(argv)
    if os.environ.get(INNER) != "1":
        unshare = shutil.which("unshare")
        if unshare is None:
            raise SystemExit("link_detect: needs unshare (util-linux) for a network namespace")
        script = f"ip link set lo up && exec {sys.executable} {' '.join(sys.argv)}"
        env = {**os.environ, INNER: "1"}
        return subprocess.run([unshare, "-n", "sh", "-c", script], env=env, check=False).returncode
    rng = random.Random(args.seed)
    wanted = args.faults.split(",")
    upstream = UpstreamConfig()
    print(
        f"defaults: echo_interval_s {upstream.echo_interval_s:g}, probe_interval_s "
        f"{upstream.probe_interval_s:g}, probe_timeout_s {upstream.probe_timeout_s:g}, "
        f"keepalive_idle_s {upstream.keepalive_idle_s}, keepalive_grace_s "
        f"{upstream.keepalive_grace_s:g}, resolve_interval_s {upstream.resolve_interval_s:g}, "
        f"fail_threshold {upstream.fail_threshold}"
    )
    print("| fault      | shows         |  N | median |    max |")
    print("|------------|---------------|----|--------|--------|")
    shows: dict[str, str] = {"dns-cached": "DEGRADED DNS", "dns": "OFFLINE DNS"}
    shows |= {"refused": "OFFLINE", "swallowed": "OFFLINE TIMEOUT"}
    for fault in FAULTS:
        if fault in wanted:
            times = asyncio.run(_detect(fault, args.rounds, args.limit, rng))
            print(_row(fault, times, shows[fault]), flush=True)
    if "silent" in wanted:
        silent = asyncio.run(_silent(args.rounds, args.limit))
        waits = [waited for waited, _ in silent]
        offline = sum(1 for _, is_offline in silent if is_offline)
        print(
            f"silent host: the first customer waited median {statistics.median(waits):.2f} s, "
            f"max {max(waits):.2f} s (request_timeout_s {upstream.request_timeout_s:g}); "
            f"OFFLINE when it ended: {offline}/{len(silent)}"
        )
    if args.idle > 0:
        echoes, connections = asyncio.run(_idle(args.idle))
        per_hour: Callable[[int], float] = lambda n: n * 3600 / args.idle  # noqa: E731
        print(
            f"idle {args.idle:g} s: {echoes} echoes, {connections} connection(s) at the host = "
            f"{per_hour(echoes):.0f} echoes/h (extrapolated; the first is the one at start)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

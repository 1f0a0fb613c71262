"""Bench the connectivity monitor: how long from a fault to OFFLINE, and from healing to ONLINE.

Starts the sandbox acquirer on 127.0.0.1 and a LinkMonitor with the DEFAULT upstream config (only
the port is the host's ephemeral one; the name resolves through SimResolver), then flips each
fault in turn (down, blackhole, dns-fail), several rounds each, at a random phase of the probe
schedule. Prints min / median / max seconds. Bounded: every wait gives up after --limit seconds.

    .venv/bin/python tools/bench_link.py [--rounds 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import statistics
import sys
import tempfile
from pathlib import Path

from pitill.config import Config
from pitill.core.types import LinkStatus
from pitill.sim.acquirer import AcquirerHost
from pitill.sim.resolver import SimResolver
from pitill.upstream.monitor import LinkMonitor

FAULTS = ("down", "blackhole", "dns-fail")


class Stopwatch:
    """Remembers when the monitor last reported each status."""

    def __init__(self) -> None:
        self.status = LinkStatus.UNKNOWN
        self.changed = asyncio.Event()
        self.at_s = 0.0

    def on_change(self, status: LinkStatus, reason: str) -> None:
        self.status = status
        self.at_s = asyncio.get_running_loop().time()
        self.changed.set()

    async def until(self, status: LinkStatus, limit_s: float) -> float | None:
        """Seconds from now until `status` is reported, None if not within limit_s."""
        loop = asyncio.get_running_loop()
        start_s = loop.time()
        deadline = start_s + limit_s
        while self.status is not status:
            self.changed.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self.changed.wait()
            except TimeoutError:
                return None
        return self.at_s - start_s


def apply(fault: str, healed: bool, host: AcquirerHost, resolver: SimResolver) -> None:
    if fault == "dns-fail":
        resolver.set_failing(not healed)
    else:
        host.set_mode("up" if healed else fault)


async def bench(rounds: int, limit_s: float, rng: random.Random) -> dict[str, list[float | None]]:
    config = Config()
    results: dict[str, list[float | None]] = {}
    with tempfile.TemporaryDirectory() as data_dir:
        async with AcquirerHost(Path(data_dir)) as host:
            upstream = dataclasses.replace(config.upstream, port=host.port)
            resolver = SimResolver({upstream.host: "127.0.0.1"})
            watch = Stopwatch()
            monitor = LinkMonitor(upstream, config.terminal, resolver, watch.on_change)
            monitor.start()
            try:
                if await watch.until(LinkStatus.ONLINE, limit_s) is None:
                    raise SystemExit("the monitor never went ONLINE against a healthy host")
                for fault in FAULTS:
                    for _ in range(rounds):
                        # Flip at a random point of the probe schedule.
                        await asyncio.sleep(rng.uniform(0, upstream.probe_interval_s))
                        apply(fault, False, host, resolver)
                        results.setdefault(f"{fault} -> OFFLINE", []).append(
                            await watch.until(LinkStatus.OFFLINE, limit_s)
                        )
                        await asyncio.sleep(rng.uniform(0, upstream.probe_interval_s))
                        apply(fault, True, host, resolver)
                        results.setdefault(f"{fault} healed -> ONLINE", []).append(
                            await watch.until(LinkStatus.ONLINE, limit_s)
                        )
            finally:
                await monitor.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="flips per fault")
    parser.add_argument("--limit", type=float, default=10.0, help="give up a wait after this")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    defaults = Config().upstream
    print(
        f"defaults: probe every {defaults.probe_interval_s} s, timeout {defaults.probe_timeout_s}"
        f" s, fail after {defaults.fail_threshold}, recover after {defaults.recover_threshold}"
    )
    results = asyncio.run(bench(args.rounds, args.limit, random.Random(args.seed)))
    missed = False
    print(f"{'transition':28} {'min s':>7} {'median s':>9} {'max s':>7}  (n={args.rounds})")
    for name, times in results.items():
        got = [t for t in times if t is not None]
        missed |= len(got) < len(times)
        if not got:
            print(f"{name:28} never within {args.limit} s")
            continue
        print(f"{name:28} {min(got):7.2f} {statistics.median(got):9.2f} {max(got):7.2f}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

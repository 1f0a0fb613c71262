"""P1: from a fault to the offline screen, for each fault, against the probe interval.

The whole simulated terminal runs (SimWorld: the real Terminal, the sandbox host on loopback);
the stopwatch is tools/bench_link.py's, fed by the terminal's screen listener, so what is timed is
the status bar of a drawn screen changing, not a callback deep inside. Each fault is applied at a
random phase of the probe schedule, several rounds, healed in between: refused (the host stops
listening), blackhole (accepts, never answers), dns-fail (the name stops resolving) and slow
(every answer takes SLOW_ANSWER_S: the screen shows DEGRADED, no offline screen for slowness).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import statistics
import tempfile
from pathlib import Path

from benchlib import Figure, Options, load_tool

from pitill.config import Config
from pitill.core.screens import Screen
from pitill.core.types import LinkStatus
from pitill.sim.world import SimWorld

FAULTS = {  # fault -> (the simulator's upstream mode for it, the screen that shows it)
    "refused": ("down", LinkStatus.OFFLINE),
    "blackhole": ("blackhole", LinkStatus.OFFLINE),
    "dns-fail": ("dns-fail", LinkStatus.OFFLINE),
    "slow": ("slow", LinkStatus.DEGRADED),
}
LIMIT_S = 10.0


def _apply(world: SimWorld, fault: str, healed: bool) -> None:
    """The fault as the simulator, scripts and the drill make it (SimWorld.set_upstream)."""
    world.set_upstream("up" if healed else FAULTS[fault][0])


async def _detect(rounds: int, rng: random.Random) -> dict[str, list[float | None]]:
    bench_link = load_tool("bench_link")
    results: dict[str, list[float | None]] = {fault: [] for fault in FAULTS}
    with tempfile.TemporaryDirectory() as data_dir:
        # No remembered addresses: with them a vanished name is ridden out (DEGRADED DNS, sales
        # stay online), and P1 measures how fast the terminal says OFFLINE.
        upstream = dataclasses.replace(Config().upstream, cache_resolved=False)
        world = SimWorld(dataclasses.replace(Config(), upstream=upstream), Path(data_dir))
        terminal = await world.start()
        watch = bench_link.Stopwatch()

        def on_screen(screen: Screen, image: object) -> None:
            if screen.status.link is not watch.status:
                watch.on_change(screen.status.link, screen.status.reason)

        terminal.screen_listeners.append(on_screen)
        interval_s = world.config.upstream.probe_interval_s
        try:
            if await watch.until(LinkStatus.ONLINE, LIMIT_S) is None:
                raise SystemExit("P1: the terminal never showed ONLINE against a healthy host")
            for fault, (_, shows) in FAULTS.items():
                for _ in range(rounds):
                    await asyncio.sleep(rng.uniform(0, interval_s))
                    _apply(world, fault, healed=False)
                    results[fault].append(await watch.until(shows, LIMIT_S))
                    await asyncio.sleep(rng.uniform(0, interval_s))
                    _apply(world, fault, healed=True)
                    if await watch.until(LinkStatus.ONLINE, LIMIT_S) is None:
                        raise SystemExit(f"P1: the terminal did not heal after {fault}")
        finally:
            await world.stop()
    return results


def measure(options: Options) -> list[Figure]:
    upstream = Config().upstream
    interval_s, timeout_s = upstream.probe_interval_s, upstream.probe_timeout_s
    rounds = 2 if options.quick else 5
    results = asyncio.run(_detect(rounds, random.Random(options.seed)))
    goals = {
        "refused": (2.0, "max <= 2 s"),
        "dns-fail": (2.0, "max <= 2 s"),
        "blackhole": (interval_s + timeout_s, f"max <= {interval_s + timeout_s:g} s"),
    }
    figures = []
    for fault, times in results.items():
        got = [t for t in times if t is not None]
        worst = max(got) if len(got) == len(times) else float("inf")
        limit, goal = goals.get(fault, (None, ""))
        screen = FAULTS[fault][1].value.lower()
        note = f"max {worst:.2f} s over {len(times)} rounds"
        if fault == "blackhole":
            note += (
                f"; an echo unanswered after {interval_s:g} s counts as one failure and its "
                f"{timeout_s:g} s timeout as a second, so one swallowed probe is enough"
            )
        if fault == "slow":
            note += "; no goal in the issue (slowness is DEGRADED, not offline)"
        figures.append(
            Figure(
                "P1",
                f"{fault} -> {screen} screen (median)",
                statistics.median(got) if got else float("inf"),
                "s",
                baseline=interval_s,
                baseline_name="probe interval",
                goal=goal,
                meets=None if limit is None else worst <= limit,
                note=note,
            )
        )
    return figures

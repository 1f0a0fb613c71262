"""P1: from a fault to the screen showing it, and what that watchfulness costs the host.

The whole simulated terminal runs (SimWorld: the real Terminal, the sandbox host on loopback); the
stopwatch is sim/driver.py's LinkWatch (the netns trials' too), fed by the terminal's screen
listener, so what is timed is the status bar of a drawn screen changing, not a callback deep
inside. Each fault is applied at a random phase of the probe schedule, several rounds, healed in
between: refused (the host stops listening), blackhole (accepts, never answers), dns-fail (the name
stops resolving) and slow (every answer takes SLOW_ANSWER_S). The host's kernel still acknowledges
in blackhole and slow, so idle only the next echo (one a minute) shows them: there each round
starts a sale right after the fault and the first customer's wait is reported (and judged: at most
request_timeout_s for blackhole, as the issue says). A slow answer to it is a passive signal,
confirmed by one echo; DEGRADED SLOW then lasts until an answer comes quickly, so after healing
slow a sale shows it. Each row names the config it ran with: the defaults, or the defaults without
remembered addresses (with them a vanished name is ridden out: DEGRADED DNS).

There is no baseline to divide by: detection is bought with probes, so the price is reported
beside it: the echo requests (and TCP connections) the sandbox host receives per hour from an
idle terminal with the default config, counted at the host over a bounded idle window.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import statistics
import tempfile
import time
from pathlib import Path

import p1_netns
from benchlib import Figure, Options

from pitill.config import Config
from pitill.core.state import Phase
from pitill.core.types import Key, LinkStatus
from pitill.sim.driver import SETTLED_PHASES, Driver, LinkWatch, amount_keys
from pitill.sim.reader_emulator import TEST_CARDS
from pitill.sim.world import SimWorld

DEFAULTS = "defaults"
NO_CACHE = "cache_resolved = false"
ROWS = (  # fault, the simulator's upstream mode, the config it runs with, the screen that shows it
    ("refused", "down", DEFAULTS, LinkStatus.OFFLINE),
    ("blackhole", "blackhole", DEFAULTS, LinkStatus.OFFLINE),
    ("dns-fail", "dns-fail", DEFAULTS, LinkStatus.DEGRADED),
    ("dns-fail", "dns-fail", NO_CACHE, LinkStatus.OFFLINE),
    ("slow", "slow", DEFAULTS, LinkStatus.DEGRADED),
)
LIMIT_S = 10.0
# Modes that only an echo (one a minute when idle) or a request shows: the host's kernel still
# acknowledges. Each round starts a sale right after the fault, as the first customer would.
ASKED = frozenset({"blackhole", "slow"})
SALE_MINOR = 700
SWIPE_TO_REQUEST_S = 0.1  # from the swipe to the request leaving, beside the request's timeout
SETTLE_S = 2.0  # after the first ONLINE, before the idle window


def config_for(name: str) -> Config:
    if name == NO_CACHE:
        return dataclasses.replace(
            Config(), upstream=dataclasses.replace(Config().upstream, cache_resolved=False)
        )
    return Config()


@dataclasses.dataclass
class Idle:
    window_s: float = 0.0
    echoes: int = 0
    connections: int = 0


async def _first_customer(driver: Driver, waits: dict[str, list[float]], fault: str) -> None:
    """A sale keyed and swiped right after the fault; the seconds from the swipe to its answer."""
    loop = asyncio.get_running_loop()
    card = TEST_CARDS["approved"]
    await driver.type(*amount_keys(SALE_MINOR), Key.OK, gap_s=0.005)
    swiped_s = loop.time()
    await driver.swipe(card.pan, card.expiry_yymm)
    await driver.until(lambda: driver.phase in SETTLED_PHASES, LIMIT_S)
    waits.setdefault(fault, []).append(loop.time() - swiped_s)
    if driver.phase is Phase.CASH_ONLY:
        driver.press(Key.CANCEL)
    else:
        driver.press(Key.OK)
    await driver.until(lambda: driver.phase is Phase.IDLE, LIMIT_S)


async def _run(
    config_name: str, rounds: int, idle_s: float, rng: random.Random, waits: dict[str, list[float]]
) -> tuple[dict[tuple[str, str], list[float | None]], Idle]:
    results: dict[tuple[str, str], list[float | None]] = {}
    idle = Idle()
    with tempfile.TemporaryDirectory() as data_dir:
        world = SimWorld(config_for(config_name), Path(data_dir))
        terminal = await world.start()
        watch = LinkWatch(terminal)
        driver = Driver(world)
        loop = asyncio.get_running_loop()
        interval_s = world.config.upstream.probe_interval_s
        try:
            if not await driver.until(lambda: watch.status is LinkStatus.ONLINE, LIMIT_S):
                raise SystemExit("P1: the terminal never showed ONLINE against a healthy host")
            if idle_s > 0:
                await asyncio.sleep(SETTLE_S)
                before = dict(world.host.counts)
                started = time.perf_counter()
                await asyncio.sleep(idle_s)
                idle.window_s = time.perf_counter() - started
                idle.echoes = world.host.counts["echoes"] - before.get("echoes", 0)
                idle.connections = world.host.counts["connections"] - before.get("connections", 0)
            for fault, mode, name, shows in ROWS:
                if name != config_name:
                    continue
                times = results.setdefault((fault, name), [])
                for _ in range(rounds):
                    await asyncio.sleep(rng.uniform(0, interval_s))
                    started_s = loop.time()
                    world.set_upstream(mode)
                    sale = None
                    if mode in ASKED:  # a customer right after the fault is what shows it
                        sale = asyncio.create_task(_first_customer(driver, waits, fault))
                    times.append(await watch.seconds_to(driver, shows, started_s, LIMIT_S))
                    if sale is not None:
                        await sale
                    await asyncio.sleep(rng.uniform(0, interval_s))
                    world.set_upstream("up")
                    if mode in ASKED and shows is LinkStatus.DEGRADED:
                        # DEGRADED SLOW is a calm state: idle, only the next echo (a minute)
                        # shows the heal, as only asking showed the fault. A sale does at once.
                        await _first_customer(driver, {}, fault)
                    if not await driver.until(lambda: watch.status is LinkStatus.ONLINE, LIMIT_S):
                        raise SystemExit(f"P1: the terminal did not heal after {fault} ({name})")
        finally:
            await world.stop()
    return results, idle


def measure(options: Options) -> list[Figure]:
    if options.netns_faults:  # only some netns rows were asked for
        return p1_netns.measure(options)
    upstream = Config().upstream
    interval_s = upstream.probe_interval_s
    rounds = 1 if options.quick else 5
    idle_s = 2.0 if options.quick else min(options.idle_s, 30.0)
    rng = random.Random(options.seed)
    waits: dict[str, list[float]] = {}
    results, idle = asyncio.run(_run(DEFAULTS, rounds, idle_s, rng, waits))
    results.update(asyncio.run(_run(NO_CACHE, rounds, 0.0, rng, waits))[0])
    request_timeout_s = upstream.request_timeout_s
    goals = {  # the issue's: today's figures before the monitor stopped echoing twice a second
        ("refused", DEFAULTS): (1.0, "max <= 1 s"),
        ("dns-fail", NO_CACHE): (1.0, "max <= 1 s"),
    }
    figures = []
    for fault, mode, name, shows in ROWS:
        times = results[(fault, name)]
        got = [t for t in times if t is not None]
        worst = max(got) if len(got) == len(times) else float("inf")
        limit, goal = goals.get((fault, name), (None, ""))
        meets = None if limit is None else worst <= limit
        note = f"max {worst:.2f} s over {len(times)} rounds"
        shown = ""
        if mode in ASKED:
            waited = max(waits.get(fault, [float("inf")]))
            median = statistics.median(got) if got else float("inf")
            shown = f"{median:.2f} s; 1st customer {waited:.3f} s"
            note += (
                "; the host's kernel still acknowledges, so idle only the next echo (one a minute)"
                " shows it: each round starts a sale right after the fault, and its request shows "
                f"it; the first customer waited at most {waited:.3f} s (request_timeout_s = "
                f"{request_timeout_s:g})"
            )
            if shows is LinkStatus.OFFLINE:
                limit = request_timeout_s + SWIPE_TO_REQUEST_S
                goal = f"1st customer <= {request_timeout_s:g} + {SWIPE_TO_REQUEST_S:g} s"
                meets = waited <= limit
        if mode in ASKED and not got:
            note += (
                f"; not shown within {LIMIT_S:g} s of the fault, the sale's answer included: "
                "only the next echo would show it"
            )
        if shows is LinkStatus.DEGRADED:
            note += "; no goal in the issue (DEGRADED: sales still go online)"
        figures.append(
            Figure(
                "P1",
                f"{fault} -> {shows.value} screen, median [{name}]",
                statistics.median(got) if got else float("inf"),
                "s",
                goal=goal,
                meets=meets,
                note=note,
                shown=shown,
            )
        )
    per_hour = 3600 / idle.window_s
    figures.append(
        Figure(
            "P1",
            f"cost: echoes per hour at the host, idle [{DEFAULTS}]",
            idle.echoes * per_hour,
            "/h",
            note=(
                f"counted at the sandbox host over {idle.window_s:.0f} s of an idle terminal "
                f"({idle.echoes} echoes, {idle.connections} TCP connections = "
                f"{idle.connections * per_hour:,.0f} connections/h); probe_interval_s = "
                f"{interval_s:g}. A window this short holds at most one echo at one a minute: the "
                "netns cost row takes the rate over 130 s"
            ),
        )
    )
    return figures + p1_netns.measure(options)  # the same faults and more, on a real network

"""Fault trials in a network-namespace lab (sim/netns.py), run inside the terminal's namespace.

    ip netns exec TAG-till python -m pitill.sim.netns_trials --lab JSON --dir DIR --plan JSON

This process is the whole shop of one run: the simulated terminal (SimWorld dialling the lab's
DNS name directly, through the operating system's resolver, so the lab's dnsmasq answers it), and
the lab's HostSite (the acquirer and dnsmasq in the host namespace, and the faults). It prints one
JSON object: the idle window's counts at the host and one record per round. The tests
(tests/sim/test_netns.py) and `make bench` P1 (tools/bench/p1_netns.py) read it.

A round: the terminal is ONLINE; at a random phase of the probe schedule the fault is made; the
time until the screen's status bar shows `expect` (OFFLINE) is the detection time. With
`customer`, a sale is started right after the fault instead (keyed, card swiped) and the time
from the swipe to the sale's answer is what the first customer waited. With `offline_sale`, a
sale is made once the fault shows (it must be approved offline). Then the fault is healed, the
terminal must show ONLINE again and (with a sale) forward its backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pitill.config import Config, load_config
from pitill.core.state import Phase
from pitill.core.types import Key, LinkStatus
from pitill.sim.driver import SETTLED_PHASES, Driver, LinkWatch, amount_keys
from pitill.sim.netns import DNS_NAME, FAULTS, HostSite, Lab
from pitill.sim.reader_emulator import TEST_CARDS
from pitill.sim.world import SimWorld
from pitill.upstream.resolver import SystemResolver

LIMIT_S = 20.0  # every wait gives up after this...
ONLINE_LIMIT_S = 90.0  # ...but the one for ONLINE before a round: a doubt may last an echo interval
SETTLE_S = 2.0  # after the first ONLINE, before the idle window
IDLE_POLL_S = 0.05  # how often the idle window asks the host for its counts
SALE_MINOR = 700
CARD = TEST_CARDS["approved"]


@dataclass
class Plan:
    faults: list[str]
    rounds: int = 1  # detection rounds per fault
    customers: int = 0  # first-customer rounds per fault
    offline_sale: bool = False  # a sale once the fault shows, forwarded after healing
    idle_s: float = 0.0  # the idle window counted at the host, before the faults
    expect: str = "OFFLINE"
    seed: int = 1


@dataclass
class Round:
    fault: str
    kind: str  # "detect" or "customer"
    detect_s: float | None = None  # fault -> the screen showing `expect`
    customer_s: float | None = None  # swipe -> the sale's answer
    customer_phase: str = ""
    offline_phase: str = ""  # the sale made during the fault
    healed: bool = False  # ONLINE again within LIMIT_S
    pending_after: int = -1  # the journal's backlog once healed


@dataclass
class Result:
    idle_window_s: float = 0.0
    idle_counts: dict[str, int] = field(default_factory=dict)
    echo_span_s: float = 0.0  # from the window's first echo to its last...
    echoes_in_span: int = 0  # ...and the echoes after the first in between
    rounds: list[Round] = field(default_factory=list)
    port: int = 0
    # Rounds that found the terminal not ONLINE when they were due, and for how long it stayed so.
    not_online: list[str] = field(default_factory=list)


async def _in_thread(function: Any, *args: Any) -> Any:
    """Lab commands fork processes: never on the terminal's loop."""
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


async def _finish_sale(driver: Driver) -> str:
    """Whatever the sale settled in, brought back to IDLE as a cashier would; its phase."""
    phase = driver.phase
    if phase is Phase.CASH_ONLY:
        await driver.type(Key.OK, *amount_keys(SALE_MINOR + 300), Key.OK, gap_s=0.005)
        await driver.until(lambda: driver.phase is Phase.CHANGE, LIMIT_S)
    driver.press(Key.OK)
    await driver.until(lambda: driver.phase is Phase.IDLE, LIMIT_S)
    return phase.name


async def _round(
    fault: str,
    kind: str,
    plan: Plan,
    site: HostSite,
    driver: Driver,
    watch: LinkWatch,
    rng: Any,
    waited: list[str],
) -> Round:
    loop = asyncio.get_running_loop()
    result = Round(fault, kind)
    expect = LinkStatus[plan.expect]
    interval_s = driver.world.config.upstream.probe_interval_s
    due_s, was = loop.time(), f"{watch.status.value} {watch.reason}".strip()
    if not await driver.until(lambda: watch.status is LinkStatus.ONLINE, ONLINE_LIMIT_S):
        raise SystemExit(f"netns trials: not ONLINE before {fault} (screen: {was})")
    if loop.time() - due_s > 1.0:
        waited.append(f"before {fault}: {was} for {loop.time() - due_s:.1f} s")
    await driver.until(lambda: driver.phase is Phase.IDLE, LIMIT_S)
    await asyncio.sleep(rng.uniform(0, interval_s))
    started_s = loop.time()
    await _in_thread(site.fault, fault)
    if kind == "customer":
        await driver.type(*amount_keys(SALE_MINOR), Key.OK, gap_s=0.005)
        swiped_s = loop.time()
        await driver.swipe(CARD.pan, CARD.expiry_yymm)
        if await driver.until(lambda: driver.phase in SETTLED_PHASES, LIMIT_S):
            result.customer_s = loop.time() - swiped_s
        result.customer_phase = await _finish_sale(driver)
    result.detect_s = await watch.seconds_to(driver, expect, started_s, LIMIT_S)
    if plan.offline_sale and kind == "detect":
        phase = await driver.sell(SALE_MINOR, CARD.pan, CARD.expiry_yymm, LIMIT_S, 300)
        result.offline_phase = phase.name
    await asyncio.sleep(rng.uniform(0, interval_s))
    healed_s = loop.time()
    await _in_thread(site.heal, fault)
    result.healed = await watch.seconds_to(driver, LinkStatus.ONLINE, healed_s, LIMIT_S) is not None
    if result.customer_phase or result.offline_phase:
        journal = driver.terminal.journal
        await driver.until(lambda: journal.pending_count() == 0, LIMIT_S)
        result.pending_after = journal.pending_count()
    return result


async def _idle_window(site: HostSite, window_s: float, result: Result) -> None:
    """Count what the host receives from the idle terminal, asking it every IDLE_POLL_S, so the
    echoes' arrival times are known to within that: the rate is then taken between the first
    and the last echo of the window (a count over the window alone is off by one echo)."""
    loop = asyncio.get_running_loop()
    before: dict[str, int] = await _in_thread(site.acquirer_counts)
    started_s = loop.time()
    arrivals: list[tuple[float, int]] = []  # (when seen, echoes so far in the window)
    seen = 0
    while loop.time() - started_s < window_s:
        await asyncio.sleep(IDLE_POLL_S)
        counts: dict[str, int] = await _in_thread(site.acquirer_counts)
        echoes = counts.get("echoes", 0) - before.get("echoes", 0)
        if echoes > seen:
            arrivals.append((loop.time(), echoes))
            seen = echoes
    result.idle_window_s = loop.time() - started_s
    result.idle_counts = {k: v - before.get(k, 0) for k, v in counts.items()}
    if len(arrivals) >= 2:
        (first_s, first_n), (last_s, last_n) = arrivals[0], arrivals[-1]
        result.echo_span_s = last_s - first_s
        result.echoes_in_span = last_n - first_n


async def run(lab: Lab, directory: Path, plan: Plan, config: Config) -> Result:
    result = Result()
    rng = random.Random(plan.seed)
    site = HostSite(lab, directory / "host")
    await _in_thread(site.start)
    result.port = site.port
    world = SimWorld(
        config,
        directory / "till",
        external=(DNS_NAME, site.port),
        proxy=False,
        resolver=SystemResolver(config.upstream.lookup_timeout_s),
    )
    try:
        await world.start()
        driver = Driver(world)
        watch = LinkWatch(driver.terminal)
        if not await driver.until(lambda: watch.status is LinkStatus.ONLINE, LIMIT_S):
            raise SystemExit("netns trials: the terminal never showed ONLINE against the lab host")
        if plan.idle_s > 0:
            await asyncio.sleep(SETTLE_S)
            await _idle_window(site, plan.idle_s, result)
        for fault in plan.faults:
            for _ in range(plan.rounds):
                result.rounds.append(
                    await _round(fault, "detect", plan, site, driver, watch, rng, result.not_online)
                )
            for _ in range(plan.customers):
                result.rounds.append(
                    await _round(
                        fault, "customer", plan, site, driver, watch, rng, result.not_online
                    )
                )
    finally:
        await world.stop()
        await _in_thread(site.close)
    return result


def spawn(
    lab: Lab, directory: Path, plan: Plan, config: Path | None = None, limit_s: float = 600.0
) -> dict[str, Any]:
    """Run the trials in the lab's terminal namespace, from any process; the Result as a dict.

    Raises RuntimeError with what the child said when it fails."""
    argv = [sys.executable, "-m", "pitill.sim.netns_trials", "--lab", lab.to_json(),
            "--dir", str(directory), "--plan", json.dumps(dataclasses.asdict(plan))]  # fmt: skip
    if config is not None:
        argv += ["--config", str(config)]
    done = subprocess.run(
        lab.in_till(argv), capture_output=True, text=True, timeout=limit_s, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"netns trials failed ({done.returncode}): {done.stderr[-3000:]}")
    outcome: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lab", required=True, help="the Lab as JSON (Lab.to_json)")
    parser.add_argument("--dir", type=Path, required=True, help="host/ and till/ go here")
    parser.add_argument("--plan", required=True, help="the Plan as JSON")
    parser.add_argument("--config", type=Path, help="the terminal's config (default: defaults)")
    args = parser.parse_args(argv)
    plan = Plan(**json.loads(args.plan))
    unknown = [f for f in plan.faults if f not in FAULTS]
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(unknown)}; faults: {', '.join(FAULTS)}")
    config = load_config(args.config) if args.config is not None else Config()
    result = asyncio.run(run(Lab.from_json(args.lab), args.dir, plan, config))
    print(json.dumps(dataclasses.asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

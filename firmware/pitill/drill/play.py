"""Runs one drill: the simulated world, the timeline played at speed, the shop, then a drained end.

Time: the timeline and the customers' arrivals are compressed by `speed` (simulated seconds per
real second); the terminal, the host and the network are not (they run at real speed, with their
real timeouts), so everything the terminal does is measured in real seconds and shown in
simulated time too. All times in a DrillRun are real seconds from the start of the timeline.

At the end the upstream is healed (if the timeline did not end healthy), the shop finishes its
queue, and the drill waits, bounded, for the journal's backlog to drain before it reads the journal
and the host's ledger for the checks in report.py.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pitill.config import Config
from pitill.core.types import LinkStatus
from pitill.drill.faults import CHAOS_TICK_S, UpstreamFaults
from pitill.drill.shop import Cashier, Customer, Sale, Shop, ShopProfile, plan_customers
from pitill.drill.timeline import Segment, Timeline
from pitill.errors import ConfigError, UpstreamError
from pitill.journal.datadir import DataDirLock
from pitill.journal.store import JOURNAL_FILE_NAME
from pitill.records import JournalRow
from pitill.sim.acquirer import LEDGER_NAME, decide_sale, read_ledger
from pitill.sim.world import SimWorld

log = logging.getLogger(__name__)

EVENTS_NAME = "drill-events.jsonl"
ONLINE_WAIT_S = 10.0  # a healthy host must be seen ONLINE this soon after start
SHOP_FINISH_S = 60.0  # after the timeline, the queue must be served within this
DEFAULT_DRAIN_TIMEOUT_S = 45.0  # forwarder backoff tops out at 30 s: leave room for one more


@dataclass(frozen=True)
class DrillOptions:
    timeline: Timeline
    data_dir: Path
    speed: float | None = None  # None: the timeline's default speed
    seed: int = 1
    config: Config = field(default_factory=Config)
    profile: ShopProfile = field(default_factory=ShopProfile)
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S

    @property
    def effective_speed(self) -> float:
        return self.speed if self.speed is not None else self.timeline.default_speed


@dataclass(frozen=True)
class LinkPoint:
    at_s: float
    status: LinkStatus
    reason: str = ""


@dataclass(frozen=True)
class BacklogPoint:
    at_s: float
    pending: int


@dataclass
class DrillRun:
    """What happened, for report.py: all times real seconds from the start of the timeline."""

    timeline: Timeline
    speed: float
    seed: int
    config: Config
    customers: list[Customer]
    sales: list[Sale] = field(default_factory=list)
    boot_online_s: float = 0.0  # from start() to the first ONLINE, before the timeline
    segment_starts_s: list[float] = field(default_factory=list)
    timeline_end_s: float = 0.0
    shop_end_s: float = 0.0
    drained_at_s: float | None = None
    end_s: float = 0.0
    shop_finished: bool = True
    link: list[LinkPoint] = field(default_factory=list)
    backlog: list[BacklogPoint] = field(default_factory=list)
    rows: list[JournalRow] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    injected: dict[str, int] = field(default_factory=dict)


class Recorder:
    """Keeps the link changes and the backlog over time, from the terminal's event log."""

    def __init__(self, world: SimWorld, run: DrillRun) -> None:
        assert world.terminal is not None
        self._terminal = world.terminal
        self._run = run
        self._loop = asyncio.get_running_loop()
        self.t0 = self._loop.time()
        self._last_pending = -1
        self._terminal.event_log.listeners.append(self._on_event)

    def now_s(self) -> float:
        return self._loop.time() - self.t0

    def start_clock(self) -> None:
        """Time 0 is now; the link and backlog as they stand are the first points."""
        self.t0 = self._loop.time()
        self._run.link.clear()  # what came before is boot, not the drill
        self._run.backlog.clear()
        self._last_pending = -1
        state = self._terminal.state
        self._run.link.append(LinkPoint(0.0, state.link, state.link_reason))
        self.sample()

    def _on_event(self, event: str, fields: dict[str, Any]) -> None:
        if event == "link":
            self._run.link.append(
                LinkPoint(self.now_s(), LinkStatus(fields["status"]), str(fields.get("reason")))
            )
        elif event == "backlog":
            self._add_backlog(int(fields["pending"]))
        elif event == "journal":
            self.sample()  # the row is committed already; the core hears of it a tick later

    def sample(self) -> None:
        self._add_backlog(self._terminal.journal.pending_count())

    def _add_backlog(self, pending: int) -> None:
        if pending != self._last_pending:
            self._last_pending = pending
            self._run.backlog.append(BacklogPoint(self.now_s(), pending))

    async def until_online(self, timeout_s: float) -> bool:
        deadline = self._loop.time() + timeout_s
        while self._terminal.state.link is not LinkStatus.ONLINE:
            if self._loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True


def check_data_dir(data_dir: Path) -> None:
    """The checks compare everything in the journal and the ledger: both must start empty."""
    for name in (JOURNAL_FILE_NAME, LEDGER_NAME):
        if (data_dir / name).exists():
            raise ConfigError(
                f"--data-dir {data_dir} already holds {name} from an earlier run; the drill "
                "checks every row against the host's ledger, so give it a new, empty directory"
            )


async def _play(
    timeline: Timeline, speed: float, faults: UpstreamFaults, recorder: Recorder, run: DrillRun
) -> None:
    """Apply each segment at its (compressed) time, ticking the faults and the backlog samples."""
    for start_s, segment in zip(timeline.starts_s(), timeline.segments, strict=True):
        await _sleep_until(recorder, start_s / speed)
        faults.apply(segment)
        run.segment_starts_s.append(recorder.now_s())
        end_s = (start_s + segment.duration_s) / speed
        while (left_s := end_s - recorder.now_s()) > 0:
            await asyncio.sleep(min(CHAOS_TICK_S, left_s))
            faults.tick()
            recorder.sample()
    run.timeline_end_s = recorder.now_s()
    if not timeline.segments[-1].healthy:
        faults.apply(Segment("healed after the timeline", 1.0))


async def _sleep_until(recorder: Recorder, at_s: float) -> None:
    if (left_s := at_s - recorder.now_s()) > 0:
        await asyncio.sleep(left_s)


async def _wait_drained(world: SimWorld, recorder: Recorder, timeout_s: float) -> float | None:
    """When the journal's backlog became empty (real seconds), or None if not within timeout_s."""
    assert world.terminal is not None
    journal = world.terminal.journal
    deadline_s = recorder.now_s() + timeout_s
    while journal.pending_count() > 0:
        if recorder.now_s() >= deadline_s:
            return None
        await asyncio.sleep(0.05)
        recorder.sample()
    recorder.sample()
    return recorder.now_s()


async def drill(options: DrillOptions) -> DrillRun:
    """Run the drill and gather what the report needs; raises UpstreamError if never online."""
    with DataDirLock.acquire(options.data_dir) as lock:  # before the check, the journal, the ledger
        check_data_dir(options.data_dir)
        return await _drill(options, lock)


async def _drill(options: DrillOptions, lock: DataDirLock) -> DrillRun:
    timeline, speed = options.timeline, options.effective_speed
    run = DrillRun(
        timeline=timeline,
        speed=speed,
        seed=options.seed,
        config=options.config,
        customers=plan_customers(timeline, options.profile, options.seed),
    )
    world = SimWorld(
        options.config, options.data_dir, events=options.data_dir / EVENTS_NAME, lock=lock
    )
    world.host.advice_policy = decide_sale  # an offline sale on a bad card is declined later
    faults = UpstreamFaults(world, options.seed)
    loop = asyncio.get_running_loop()
    begin = loop.time()
    await world.start()
    try:
        await faults.start()
        recorder = Recorder(world, run)
        if not await recorder.until_online(ONLINE_WAIT_S):
            raise UpstreamError(
                f"the terminal did not go ONLINE within {ONLINE_WAIT_S:g} s against the healthy "
                "sandbox host; run `pitill sim` to see why"
            )
        run.boot_online_s = loop.time() - begin
        shop = Shop(Cashier(world, options.profile), run.customers)
        recorder.start_clock()
        shop_task = asyncio.create_task(shop.run(lambda sim_s: sim_s / speed, recorder.now_s))
        try:
            await _play(timeline, speed, faults, recorder, run)
            done, _ = await asyncio.wait({shop_task}, timeout=SHOP_FINISH_S)
            run.shop_finished = bool(done)
        finally:
            shop_task.cancel()  # a no-op once it has finished
            (outcome,) = await asyncio.gather(shop_task, return_exceptions=True)
        if isinstance(outcome, Exception):
            raise outcome  # a bug in the shop: say so rather than report a partial day
        run.sales = shop.sales
        run.shop_end_s = recorder.now_s()
        run.drained_at_s = await _wait_drained(world, recorder, options.drain_timeout_s)
        run.end_s = recorder.now_s()
        assert world.terminal is not None
        run.rows = world.terminal.journal.rows()
        run.injected = faults.injected()
    finally:
        await faults.close()
        await world.stop()
    run.ledger = read_ledger(world.host.ledger_path)
    return run


def run_drill(options: DrillOptions) -> DrillRun:
    """drill() on a fresh event loop."""
    options.data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(drill(options))

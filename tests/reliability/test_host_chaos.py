"""Host chaos: the real terminal (SimWorld, in this process) sells against an acquirer that drops
requests, drops replies after processing them, sends every reply twice, answers after the
terminal's timeout, answers slowly, answers 91 / 96, or all of it at once.

Each plan gets its own data directory and runs beside the others on one event loop. The test
plays cashier: keys in an amount, swipes a fresh PAN, takes cash when the terminal says cash
only, and records what each sale ended as. Then the chaos stops (the heal), the backlog drains,
and the host ledger must equal the journal (reliability_kit.audit, healed): every sale the screen
acknowledged charged exactly once, nothing charged twice, nothing charged that was not approved.
PITILL_TORTURE_SCALE multiplies the sales per plan (10 by default).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_kit import (
    EXPIRY_YYMM,
    acknowledgements,
    audit,
    find_acked_row,
    integrity,
    journal_rows,
    ledger,
    pan_for,
    scaled,
)

from fast_config import write_config
from pitill.config import load_config
from pitill.core.types import LinkStatus
from pitill.sim.acquirer import ChaosPlan
from pitill.sim.driver import Driver
from pitill.sim.world import SimWorld

SALES_PER_PLAN = scaled(10)
REQUEST_TIMEOUT_S = 0.3
PLANS = {
    "drop-request": ChaosPlan(drop_request=0.4, seed=1),
    "drop-reply": ChaosPlan(drop_reply=0.4, seed=2),
    "duplicate-reply": ChaosPlan(duplicate_reply=0.7, seed=3),
    "answer-after-timeout": ChaosPlan(delay_s=REQUEST_TIMEOUT_S + 0.2, seed=4),
    "answer-within-timeout": ChaosPlan(delay_s=REQUEST_TIMEOUT_S / 3, seed=5),
    "retry-91": ChaosPlan(retry=0.5, retry_code="91", seed=6),
    "retry-96": ChaosPlan(retry=0.5, retry_code="96", seed=7),
    "everything": ChaosPlan(
        drop_request=0.15, drop_reply=0.15, duplicate_reply=0.3, retry=0.15, seed=8
    ),
}
WAIT_S = 20.0


async def until(driver: Driver, what: str, condition: Callable[[], bool]) -> None:
    if not await driver.until(condition, WAIT_S):
        raise AssertionError(f"timed out waiting for {what}")


async def run_plan(name: str, plan: ChaosPlan, workdir: Path) -> Counter[str]:
    workdir.mkdir(parents=True)
    config = load_config(write_config(workdir / "fast.toml", request_timeout_s=REQUEST_TIMEOUT_S))
    world = SimWorld(config, workdir / "data", events=workdir / "events.jsonl")
    world.host.set_chaos(plan)
    rng = random.Random(plan.seed)
    outcomes: Counter[str] = Counter()
    await world.start()
    try:
        driver = Driver(world)
        terminal = driver.terminal
        await until(driver, "the link", lambda: terminal.state.link is LinkStatus.ONLINE)
        amounts = rng.sample(range(100, 4000), SALES_PER_PLAN * 2)
        amounts = [a for a in amounts if a % 100 not in (5, 51)][:SALES_PER_PLAN]
        for number, amount in enumerate(amounts):
            pan = pan_for(plan.seed * 1000 + number)
            phase = await driver.sell(amount, pan, EXPIRY_YYMM, WAIT_S, tender_extra=1000)
            outcomes[phase.value] += 1
        world.host.set_chaos(None)  # the heal
        await until(
            driver,
            "the backlog to drain",
            lambda: (
                terminal.state.link is LinkStatus.ONLINE and terminal.journal.pending_count() == 0
            ),
        )
        outcomes.update({f"host:{k}": v for k, v in world.host.counts.items()})
        outcomes.update({f"client:{k}": v for k, v in terminal.client.counts.items()})
    finally:
        await world.stop()
    return outcomes


async def run_all(tmp_path: Path) -> dict[str, Counter[str]]:
    names = list(PLANS)
    results = await asyncio.gather(
        *(run_plan(name, PLANS[name], tmp_path / name) for name in names)
    )
    return dict(zip(names, results, strict=True))


@pytest.fixture(scope="module")
def chaos_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Counter[str]]]:
    root = tmp_path_factory.mktemp("chaos")
    return root, asyncio.run(run_all(root))


@pytest.mark.parametrize("name", list(PLANS))
def test_ledger_equals_journal_after_chaos(
    name: str, chaos_runs: tuple[Path, dict[str, Counter[str]]]
) -> None:
    root, outcomes = chaos_runs
    data, events = root / name / "data", root / name / "events.jsonl"
    rows = journal_rows(data)
    entries = ledger(data)
    result = audit(rows, entries, healed=True)
    print(f"\nchaos {name}: {dict(sorted(outcomes[name].items()))}")
    assert result.problems() == []
    assert integrity(data) == "ok"
    acks = acknowledgements(events)
    missing = [ack for ack in acks if find_acked_row(rows, ack) is None]
    assert missing == []
    charged = [find_acked_row(rows, ack) for ack in acks if ack.kind == "card"]
    assert all(row is not None and row.status in ("APPROVED", "FORWARDED") for row in charged)
    assert len(acks) >= SALES_PER_PLAN // 2  # the terminal kept selling through the chaos


def test_the_chaos_really_happened(chaos_runs: tuple[Path, dict[str, Counter[str]]]) -> None:
    _root, outcomes = chaos_runs
    assert outcomes["drop-request"]["host:dropped_requests"] > 0
    assert outcomes["drop-reply"]["host:dropped_replies"] > 0
    assert outcomes["answer-after-timeout"]["OFFLINE_APPROVED"] > 0
    assert outcomes["retry-91"]["OFFLINE_APPROVED"] > 0
    duplicates = outcomes["duplicate-reply"]
    # The second copies were read and dropped: before the next request, or while awaiting it.
    assert duplicates["client:stale"] + duplicates["client:other STAN"] > 0

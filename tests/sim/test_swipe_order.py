"""A swipe is taken by the terminal before the script's next key, even on a loaded machine.

The serial reader's thread ACKs a frame before it posts the card to the loop, so a driver that
went on at the ACK could press its next key ahead of the card (a swipe at the refund list, then
OK, picked from the list without the card). Driver.swipe returns only once the card is taken.
Two bounded busy loops load both cores while the swipes go.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pitill.config import Config
from pitill.core.types import Key
from pitill.sim.driver import Driver
from pitill.sim.script import parse_script
from pitill.sim.script_runner import ScriptRunner, report_failure
from pitill.sim.world import SimWorld

BUSY_S = 60  # each burner stops by itself after this, whatever happens to the test
ROUNDS = 40


@pytest.fixture
def loaded_cpus() -> Iterator[None]:
    busy = f"import time\nend = time.monotonic() + {BUSY_S}\nwhile time.monotonic() < end: pass"
    burners = [subprocess.Popen([sys.executable, "-c", busy]) for _ in range(2)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(timeout=10)


def test_every_accepted_swipe_is_taken_when_swipe_returns(
    tmp_path: Path, loaded_cpus: None
) -> None:
    async def scenario() -> list[int]:
        world = SimWorld(Config(), tmp_path)
        terminal = await world.start()
        try:
            driver = Driver(world)
            late = []
            for round_no in range(ROUNDS):
                before = terminal.cards_taken
                answer = await driver.swipe_named("approved")
                assert answer == "ACK"
                if terminal.cards_taken != before + 1:
                    late.append(round_no)
                driver.press(Key.CANCEL)
            return late
        finally:
            await world.stop()

    assert asyncio.run(scenario()) == []  # the rounds whose card came after swipe() returned


REFUND_ROUND = """\
press FN 2 5 8 0 OK
expect state MENU
press 4
expect state REFUND_PICK
swipe approved
press OK
expect screen "Max EUR"
press 1 0 0 OK
expect state REFUNDED
press OK
"""
SCRIPT = (
    'expect link online\npress 3 0 0 0 OK\nswipe approved\nexpect screen "APPROVED"\n'
    'press OK\npress FN\nexpect screen "NEW PIN"\npress 2 5 8 0 OK 2 5 8 0 OK\n'
    "expect state MENU\npress CANCEL\n" + REFUND_ROUND * 12
)


def test_a_swipe_at_the_refund_list_goes_ahead_of_the_next_ok(
    tmp_path: Path, loaded_cpus: None
) -> None:
    """The script refunds.pitill once needed a `wait 0.5` for: swipe, then OK at once."""

    async def scenario() -> str:
        runner = ScriptRunner(SimWorld(Config(), tmp_path))
        failure = await runner.run(parse_script(SCRIPT, ("approved",)))
        if failure is None:
            return ""
        report = Path(tmp_path / "report.txt")
        with report.open("w") as out:
            report_failure(failure, out)
        return report.read_text()

    assert asyncio.run(scenario()) == ""

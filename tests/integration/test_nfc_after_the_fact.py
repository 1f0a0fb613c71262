"""A clone of an NTAG 424 DNA, accepted offline at this terminal, is declined after the fact.

alice paid with her card at another terminal of the program (the sandbox host saw that SUN
message); a copy replaying the message is tapped here while the host is down. This terminal has
never seen the counter, so it approves offline within its limits; when the link returns the
advice carries the SUN message and the host declines it (63): the row becomes DECLINED_AFTER.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pitill.card.model import Card
from pitill.config import Config
from pitill.core.responses import APPROVED, SECURITY_VIOLATION
from pitill.core.state import Phase
from pitill.core.types import Key, LinkStatus
from pitill.sim.driver import Driver
from pitill.sim.world import SimWorld
from pitill.upstream.messages import decode, encode, nfc_card_data
from pitill_cli import journal_rows

WAIT_S = 10.0


def paid_elsewhere(world: SimWorld, name: str) -> str:
    """alice taps at terminal PITILL02: her card mirrors a new message, that terminal's 0200."""
    assert world.nfc is not None
    card = world.nfc.card(name)
    card.ndef_file()  # a read by the other terminal's reader
    message = card.last_message()
    assert message is not None
    tapped = Card.from_sun(card.uid.hex().upper(), card.counter, message)
    request = {
        "t": "0200",
        "3": "000000",
        "4": "000000000400",
        "7": "1128090000",
        "11": "000001",
        "12": "090000",
        "13": "1128",
        "22": "072",
        "41": "PITILL02",
        "42": "PITILLSHOP00001",
        "48": nfc_card_data(tapped),
        "49": "978",
    }
    answer = world.host.process(decode(encode(request)))
    assert answer is not None
    return answer["39"]


def test_offline_clone_is_declined_after_the_fact(tmp_path: Path) -> None:
    async def scenario() -> None:
        world = SimWorld(Config(), tmp_path)
        await world.start()
        try:
            driver = Driver(world)
            assert await driver.until(lambda: driver.link is LinkStatus.ONLINE, WAIT_S)
            assert await driver.until(lambda: driver.phase is Phase.IDLE, WAIT_S)
            assert paid_elsewhere(world, "alice") == APPROVED
            world.set_upstream("down")
            assert await driver.until(lambda: driver.link is LinkStatus.OFFLINE, WAIT_S)
            await driver.type(Key("3"), Key("0"), Key("0"), Key.OK)
            assert await driver.until(lambda: driver.phase is Phase.AWAIT_CARD, WAIT_S)
            await driver.tap("clone", "alice")
            assert await driver.until(lambda: driver.phase is Phase.OFFLINE_APPROVED, WAIT_S)
            await driver.type(Key.OK)
            world.set_upstream("up")
            journal = world.terminal.journal  # type: ignore[union-attr]
            assert await driver.until(lambda: journal.pending_count() == 0, WAIT_S)
        finally:
            await world.stop()

    asyncio.run(scenario())
    (row,) = journal_rows(tmp_path)
    assert (row["status"], row["response_code"]) == ("DECLINED_AFTER", SECURITY_VIOLATION)
    assert row["mode"] == "offline" and row["card_tier"] == "sun"

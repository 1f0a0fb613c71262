"""The one way to drive a simulated terminal: keys, swipes, host faults, and waiting for a result.

Scripts (sim/script_runner.py), the drill's cashier (drill/shop.py), the reliability tests and the
benchmarks all drive a SimWorld through this class, so "press OK", "swipe", "the host is slow"
and "wait until the screen says APPROVED" mean one thing everywhere. Keys go through the same path
as a keypad's (Terminal.dispatch_key on the loop); swipes go over the pty to the serial driver,
and a swipe returns only once the terminal has taken the card, so keys never overtake it;
host faults are the world's upstream modes (see sim/world.py, where "slow" is defined once).

Waiting is event-driven: the terminal's event log wakes every waiter when anything happens (a
state change, a screen, a link change), with a short poll as a safety net for changes that write
no event (a journal count).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pitill.app import Terminal
from pitill.core.screens import Screen
from pitill.core.state import Phase
from pitill.core.types import Key, LinkStatus
from pitill.errors import ScriptError
from pitill.sim.reader_emulator import TEST_CARDS
from pitill.sim.world import SimWorld

KEY_GAP_S = 0.02  # between keys typed like fingers on a keypad
POLL_S = 0.05  # the safety-net poll while waiting
SWIPE_TAKEN_TIMEOUT_S = 5.0  # from the reader's answer to the terminal taking the card
SETTLED_PHASES = frozenset(
    {Phase.APPROVED, Phase.OFFLINE_APPROVED, Phase.DECLINED, Phase.CASH_ONLY}
)


def amount_keys(amount_minor: int) -> list[Key]:
    """The digit keys that key in an amount (digits shift in from the right)."""
    return [Key(digit) for digit in str(amount_minor)]


class LinkWatch:
    """When the drawn screen's status bar changed, and to what: the one stopwatch of link
    detection (netns trials, make bench P1), timing what a cashier sees, not a callback deep
    inside the monitor."""

    def __init__(self, terminal: Terminal) -> None:
        self.status = LinkStatus.UNKNOWN
        self.reason = ""
        self.changes: list[tuple[float, LinkStatus]] = []  # (loop time, the new status)
        terminal.screen_listeners.append(self.on_screen)

    def on_screen(self, screen: Screen, image: object) -> None:
        self.reason = screen.status.reason
        if screen.status.link is not self.status:
            self.status = screen.status.link
            self.changes.append((asyncio.get_running_loop().time(), self.status))

    def first(self, status: LinkStatus, since_s: float) -> float | None:
        """The loop time at which the screen first showed `status` at or after since_s."""
        for at_s, seen in self.changes:
            if at_s >= since_s and seen is status:
                return at_s
        return None

    async def seconds_to(
        self, driver: Driver, status: LinkStatus, since_s: float, timeout_s: float
    ) -> float | None:
        """Seconds from since_s (loop time) to the screen showing `status`; None if it did not
        within timeout_s."""
        await driver.until(lambda: self.first(status, since_s) is not None, timeout_s)
        at_s = self.first(status, since_s)
        return None if at_s is None else at_s - since_s


class Driver:
    """Drives one started SimWorld's terminal from the world's event loop."""

    def __init__(self, world: SimWorld) -> None:
        assert world.terminal is not None, "start the world before driving it"
        self.world = world
        self.terminal: Terminal = world.terminal
        self._changed = asyncio.Event()
        self.terminal.event_log.listeners.append(self._on_event)

    def _on_event(self, event: str, fields: dict[str, Any]) -> None:
        self._changed.set()

    # --- what the terminal shows ------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self.terminal.state.phase

    @property
    def link(self) -> LinkStatus:
        return self.terminal.state.link

    def screen_text(self) -> str:
        screen = self.terminal.screen
        return screen.text() if screen is not None else ""

    # --- acting -------------------------------------------------------------------------------

    def press(self, *keys: Key) -> Phase:
        """Keys at once, as fast as the loop takes them; the phase they led to."""
        for key in keys:
            self.terminal.dispatch_key(key)
        return self.phase

    async def type(self, *keys: Key, gap_s: float = KEY_GAP_S) -> Phase:
        """Keys one by one with a finger's gap between them (scripts do this)."""
        for key in keys:
            self.terminal.dispatch_key(key)
            await asyncio.sleep(gap_s)
        return self.phase

    async def swipe(self, pan: str, expiry_yymm: str, fmt: str = "track2") -> str:
        """A swipe over the pty (the reader's answer: ACK or NAK), off the loop's thread.

        After an ACK, returns once the terminal has taken the card (CardSwiped/CardUnreadable),
        so whatever the caller does next (a key) comes after it: the serial reader's thread ACKs
        a frame before it posts the card to the loop, so the ACK alone says nothing about order.
        Raises ScriptError when an accepted swipe is not taken within SWIPE_TAKEN_TIMEOUT_S."""
        loop = asyncio.get_running_loop()
        taken = self.terminal.cards_taken
        result = await loop.run_in_executor(None, self.world.swipe_result, pan, expiry_yymm, fmt)
        answer = result.describe()
        # Only an ACK says a card is coming: the world's reader speaks the framed protocol, so
        # a lines-protocol swipe (no answer) is never taken at all.
        if result.accepted:
            await self._until_taken(taken, answer)
        return answer

    async def swipe_named(self, name: str, fmt: str = "track2") -> str:
        card = TEST_CARDS[name]
        return await self.swipe(card.pan, card.expiry_yymm, fmt)

    async def _until_taken(self, taken: int, answer: str) -> None:
        if await self.until(lambda: self.terminal.cards_taken > taken, SWIPE_TAKEN_TIMEOUT_S):
            return
        raise ScriptError(
            f"the terminal did not take the swipe within {SWIPE_TAKEN_TIMEOUT_S} s of the"
            f" reader's answer ({answer}), in phase {self.phase.value}: its loop or the card"
            " reader thread is stuck; see the events file for the last step it took"
        )

    async def type_stripe(self, pan: str, expiry_yymm: str) -> str:
        """The card typed by the USB keyboard-wedge stripe reader (key events through a pipe)."""
        return self.world.type_stripe(pan, expiry_yymm)

    async def tap(self, kind: str, arg: str) -> str:
        """A virtual NFC card on the emulated PN532 (uid HEX, ntag424 NAME, clone NAME), off the
        loop's thread (lifting the card before waits for a poll)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.world.tap, kind, arg)

    def host(self, mode: str) -> None:
        """One of the world's upstream modes: up, down, blackhole, dns-fail, slow, failing."""
        self.world.set_upstream(mode)

    # --- waiting ------------------------------------------------------------------------------

    async def until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Whether condition() came to hold within timeout_s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not condition():
            left_s = deadline - loop.time()
            if left_s <= 0:
                return False
            self._changed.clear()
            try:
                async with asyncio.timeout(min(left_s, POLL_S)):
                    await self._changed.wait()
            except TimeoutError:
                pass
        return True

    async def until_phase(self, done: Callable[[Phase], bool], timeout_s: float) -> Phase:
        """The phase once done(phase) holds, or whatever it is when timeout_s has passed."""
        await self.until(lambda: done(self.phase), timeout_s)
        return self.phase

    async def until_link(self, status: LinkStatus, timeout_s: float) -> bool:
        return await self.until(lambda: self.link is status, timeout_s)

    async def until_screen(self, text: str, timeout_s: float) -> bool:
        return await self.until(lambda: text.lower() in self.screen_text().lower(), timeout_s)

    # --- a whole sale -------------------------------------------------------------------------

    async def sell(
        self, amount_minor: int, pan: str, expiry_yymm: str, timeout_s: float, tender_extra: int
    ) -> Phase:
        """One card sale as a cashier makes it, cash (with `tender_extra` over) when the terminal
        says CASH ONLY; the phase it ended in (APPROVED, OFFLINE_APPROVED, DECLINED, CHANGE),
        acknowledged with OK. Raises AssertionError naming what never happened."""
        if not await self.until(lambda: self.phase is Phase.IDLE, timeout_s):
            raise AssertionError(f"the terminal stayed in {self.phase}, never idle")
        await self.type(*amount_keys(amount_minor), Key.OK, gap_s=0.005)
        if self.phase is Phase.AWAIT_CARD:
            await self.swipe(pan, expiry_yymm)
        if not await self.until(lambda: self.phase in SETTLED_PHASES, timeout_s):
            raise AssertionError(f"the sale never settled: {self.phase}")
        phase = self.phase
        if phase is Phase.CASH_ONLY:
            await self.type(Key.OK, *amount_keys(amount_minor + tender_extra), Key.OK, gap_s=0.005)
            if not await self.until(lambda: self.phase is Phase.CHANGE, timeout_s):
                raise AssertionError(f"the cash sale ended in {self.phase}, not CHANGE")
            phase = Phase.CHANGE
        self.press(Key.OK)
        return phase

"""Runs a simulator script (sim/script.py) against the real terminal in a SimWorld, headless.

Keys go through the same path as a keypad's; swipes go over the pty to the serial driver, and the
next step runs only once the terminal has taken the card (sim/driver.py); the
upstream modes switch the sandbox host and its name. Each `expect` polls until it holds or the
expect timeout passes, then the run fails naming the line and printing the screen.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pitill.core.types import LinkStatus
from pitill.errors import ScriptError
from pitill.records import JournalRow
from pitill.sim.driver import Driver
from pitill.sim.script import (
    Expect,
    Press,
    Step,
    Swipe,
    SwipeNamed,
    Tap,
    TypeStripe,
    Upstream,
    Wait,
)
from pitill.sim.world import SimWorld


@dataclass(frozen=True)
class Failure:
    step: Step
    actual: str
    screen: str


class ScriptRunner:
    def __init__(
        self,
        world: SimWorld,
        expect_timeout_s: float = 5.0,
        screens_dir: Path | None = None,
        out: TextIO = sys.stdout,
    ) -> None:
        self.world = world
        self.expect_timeout_s = expect_timeout_s
        self.screens_dir = screens_dir
        self.out = out
        self._saved_screens: set[str] = set()

    def _save_screen(self, screen: object, image: object) -> None:
        """--screens: one PNG per distinct screen, named by order of first appearance."""
        assert self.screens_dir is not None
        text = str(getattr(screen, "text")())  # noqa: B009 - Screen.text is a method
        if text in self._saved_screens:
            return
        self._saved_screens.add(text)
        title = "".join(c if c.isalnum() else "-" for c in text.splitlines()[1].lower())[:24]
        path = self.screens_dir / f"{len(self._saved_screens):03d}-{title.strip('-')}.png"
        image.save(path)  # type: ignore[attr-defined]

    async def run(self, steps: list[Step]) -> Failure | None:
        terminal = await self.world.start()
        self.driver = Driver(self.world)
        if self.screens_dir is not None:
            self.screens_dir.mkdir(parents=True, exist_ok=True)
            terminal.screen_listeners.append(self._save_screen)
            if terminal.screen is not None and terminal.image is not None:
                self._save_screen(terminal.screen, terminal.image)
        try:
            for step in steps:
                now_s = terminal.now_s()
                terminal.event_log.write(now_s, "step", line=step.line_no, text=step.text)
                try:
                    failure = await self._run_step(step)
                except ScriptError as exc:  # a swipe the terminal never took
                    failure = Failure(step, str(exc), self.driver.screen_text())
                if failure is not None:
                    return failure
            return None
        finally:
            await self.world.stop()

    async def _run_step(self, step: Step) -> Failure | None:
        command = step.command
        driver = self.driver
        if isinstance(command, Press):
            await driver.type(*command.keys)
        elif isinstance(command, Swipe):
            answer = await driver.swipe(command.pan, command.expiry_yymm, command.fmt)
            driver.terminal.event_log.write(driver.terminal.now_s(), "reader_answer", answer=answer)
        elif isinstance(command, SwipeNamed):
            answer = await driver.swipe_named(command.name, command.fmt)
            driver.terminal.event_log.write(driver.terminal.now_s(), "reader_answer", answer=answer)
        elif isinstance(command, TypeStripe):
            typed = await driver.type_stripe(command.pan, command.expiry_yymm)
            driver.terminal.event_log.write(driver.terminal.now_s(), "typed", reader=typed)
        elif isinstance(command, Tap):
            tapped = await driver.tap(command.kind, command.arg)
            driver.terminal.event_log.write(driver.terminal.now_s(), "tap", card=tapped)
        elif isinstance(command, Upstream):
            driver.host(command.mode)
        elif isinstance(command, Wait):
            await asyncio.sleep(command.seconds)
        elif isinstance(command, Expect):
            return await self._expect(step, command)
        return None

    async def _expect(self, step: Step, expect: Expect) -> Failure | None:
        if await self.driver.until(lambda: self._check(expect)[0], self.expect_timeout_s):
            return None
        return Failure(step, self._check(expect)[1], self.driver.screen_text())

    def _check(self, expect: Expect) -> tuple[bool, str]:
        terminal = self.world.terminal
        assert terminal is not None
        subject, value = expect.subject, expect.value
        if subject == "screen":
            text = terminal.screen.text() if terminal.screen else ""
            wanted = _numbered(value, terminal.journal.rows)
            return wanted.lower() in text.lower(), text.replace("\n", " | ")
        if subject == "link":
            link = terminal.state.link
            wanted = LinkStatus(value.upper())
            return link is wanted, link.value.lower()
        if subject == "state":
            phase = terminal.state.phase.value
            return phase == value, phase
        if subject == "clock":
            flagged = "wrong" if terminal.state.clock_wrong else "right"
            return flagged == value, flagged
        counts: dict[str, Callable[[], int]] = {
            # what is still to go upstream: the journal's backlog and any reversal owed from
            # memory (the host charged a card and the journal could not say so)
            "pending": lambda: terminal.journal.pending_count() + len(terminal.owed),
            "forwarded": terminal.journal.forwarded_count,
            "drawer": lambda: terminal.drawer_opened,
            "days_owed": lambda: len(terminal.journal.days_owed_to_host()),
            "hotlisted": terminal.journal.hotlist_count,
        }
        actual = counts[subject]()
        return actual == int(value), str(actual)


_NTH = re.compile(r"#\{(\d+)\}")


def _numbered(value: str, rows: Callable[[], list[JournalRow]]) -> str:
    """`value` with each #{N} made #SEQ, the seq of the journal's Nth transaction (in seq
    order; #? while there is none)."""
    if _NTH.search(value) is None:
        return value
    seqs = sorted(row.seq for row in rows())

    def seq_of(found: re.Match[str]) -> str:
        n = int(found[1])
        return f"#{seqs[n - 1]}" if 1 <= n <= len(seqs) else "#?"

    return _NTH.sub(seq_of, value)


def report_failure(failure: Failure, out: TextIO) -> None:
    step = failure.step
    print(f"FAILED line {step.line_no}: {step.text}", file=out)
    print(f"  actual: {failure.actual}", file=out)
    print("  screen at that moment:", file=out)
    for line in failure.screen.splitlines():
        print(f"    | {line}", file=out)

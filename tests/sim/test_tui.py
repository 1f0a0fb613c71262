"""`pitill sim` as a person sees it: a real pty of 80x24, 100x30 or 200x60, keys typed, resized."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pitill.sim.tty_display import FULL_COLS, FULL_ROWS
from sim_pty import JUNK, READ_WAIT_S, Screen, SimInPty

BIG = (200, 60)
assert BIG[0] >= FULL_COLS and BIG[1] >= FULL_ROWS  # 200x60 gets the full layout


Start = Callable[[int, int], SimInPty]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[SimInPty] = []

    def make(cols: int, rows: int) -> SimInPty:
        sim = SimInPty(tmp_path / f"data-{len(started)}", cols, rows)
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.close()


def fits(screen: Screen) -> None:
    assert screen.overflow == [], f"written past column {screen.cols}: {screen.overflow[:5]}"
    assert all(len(line) <= screen.cols for line in screen.lines())


def test_80x24_fits_and_shows_the_display_the_words_the_keys_and_the_log(start: Start) -> None:
    sim = start(80, 24)
    screen = sim.wait_text("screen: ONLINE │ READY", "link ONLINE", "link: terminal sees ONLINE")
    fits(screen)
    lines = screen.lines()
    assert lines[0].startswith("┌ pitill OLED") and lines[17].startswith("└")
    assert any("⣿" in line or "⠿" in line for line in lines[1:17])  # the pixels, as braille
    for part in ("● GREEN ○ red", "host up", "queue 0", "Enter OK", "Bksp  CLEAR", "? help"):
        assert part in screen.text()
    assert lines[20].startswith("─ log")
    sim.send("125")
    sim.wait_text("│ EUR 1.25", "CLEAR = back 1 digit")
    sim.send("\x7f")  # Backspace: CLEAR takes back the last digit
    fits(sim.wait_text("│ EUR 0.12"))
    assert sim.quit() == 0


def test_a_window_too_small_says_what_it_needs_until_it_is_made_larger(start: Start) -> None:
    sim = start(60, 20)
    screen = sim.wait_text("needs a window of at least 80x24", "this one is 60x20")
    fits(screen)
    sim.resize(80, 24)
    fits(sim.wait_for(lambda s: JUNK not in s.text() and "─ log" in s.text(), "the panel"))
    assert sim.screen.lines()[0].startswith("┌ pitill OLED")
    assert "needs a window" not in sim.screen.text()
    assert sim.quit() == 0


def test_resizing_redraws_for_the_new_size(start: Start) -> None:
    sim = start(80, 24)
    sim.wait_text("link ONLINE", "┌ pitill OLED")
    sim.resize(*BIG)
    screen = sim.wait_text("┌ pitill ─", "terminal sees: ONLINE", "x fails sales (91)")
    fits(screen)
    assert any("▀" in line or "█" in line for line in screen.lines()[1:33])  # half blocks
    sim.resize(100, 30)
    screen = sim.wait_text("┌ pitill OLED", "terminal sees: ONLINE", "─ screen")
    fits(screen)
    assert "┌ pitill ─" not in screen.text()
    sim.resize(100, 40)  # taller only: the lines beside the display do not change
    screen = sim.wait_for(lambda s: JUNK not in s.text() and "─ log" in s.text(), "a redraw")
    fits(screen)
    assert screen.lines()[0].startswith("┌ pitill OLED") and "─ log" in screen.text()
    sim.send("?")
    fits(sim.wait_text("keys (? again: back)", "fails sales (91)"))
    sim.send("?")
    sim.wait_text("┌ pitill OLED")
    assert sim.quit() == 0


def test_an_outage_and_the_forwarding_after_it_show_in_the_log(start: Start) -> None:
    sim = start(100, 30)
    sim.wait_text("terminal sees: ONLINE")
    sim.send("n")  # the sandbox host refuses from now on
    sim.wait_text("you set host: down", "link: terminal sees OFFLINE REFUSED")
    sim.send("500\r")
    sim.wait_text("SWIPE CARD")
    sim.send("a")
    sim.wait_text(": card offline PENDING EUR 5.00", "queue: 1 to forward")  # seq: after the echoes
    sim.send("u")  # heal: the terminal notices by itself and forwards the sale
    screen = sim.wait_text("forwarding: sending 1 advice #", "forwarded: host answered 1 advice #")
    fits(screen)
    assert sim.quit() == 0


def test_nfc_taps_from_the_keyboard(start: Start) -> None:
    sim = start(100, 30)
    sim.wait_text("terminal sees: ONLINE")
    sim.send("700\r")
    sim.wait_text("SWIPE CARD")
    sim.send("y")  # alice's NTAG 424 DNA on the emulated PN532
    sim.wait_text("tapped NTAG 424 DNA 'alice'", ": card online APPROVED EUR 7.00")
    sim.send("\r700\r")
    sim.wait_text("SWIPE CARD")
    sim.send("c")  # a copy replaying her last message
    fits(sim.wait_text("a clone of 'alice'", "CARD REPLAYED"))
    assert sim.quit() == 0


WRITER = """
import signal, sys
from pitill.sim.tui import write_all
signal.signal(signal.SIGWINCH, lambda *_: None)  # a handler: the signal interrupts the write
write_all(1, "".join(f"{i:07d}|" for i in range(40_000)))
"""


def test_a_write_cut_short_by_a_signal_is_finished(tmp_path: Path) -> None:
    """The panel's writer on a pty nobody reads: the write blocks once the pty is full, a SIGWINCH
    cuts it short, and every byte still arrives, in order (a plain sys.stdout write under
    PYTHONUNBUFFERED=1 lost the rest: a resized panel missed its bottom lines)."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    unbuffered = {**os.environ, "PYTHONUNBUFFERED": "1"}  # as in a container
    child = subprocess.Popen([sys.executable, "-c", WRITER], stdout=slave, env=unbuffered)
    os.close(slave)
    expected = "".join(f"{i:07d}|" for i in range(40_000)).encode()
    got = bytearray()
    try:
        deadline = time.monotonic() + READ_WAIT_S
        stat = Path(f"/proc/{child.pid}/stat")
        # Blocked in its write: output waiting and the child asleep (it sleeps nowhere else).
        while time.monotonic() < deadline:
            waiting = select.select([master], [], [], 0.05)[0]
            if waiting and stat.read_text().split(")")[-1].split()[0] == "S":
                break
        child.send_signal(signal.SIGWINCH)
        while time.monotonic() < deadline and len(got) < len(expected):
            if select.select([master], [], [], 0.2)[0]:
                try:
                    got += os.read(master, 65536)
                except OSError:  # EIO: the child has gone and closed its end
                    break
            elif child.poll() is not None:
                break
        assert child.wait(timeout=READ_WAIT_S) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(master)
    assert len(got) == len(expected) and bytes(got) == expected

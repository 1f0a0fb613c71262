"""The interactive simulator: the terminal's panel drawn in a real terminal, keys from the keyboard.

The display is the renderer's 1-bit image in half-block characters, below it the LEDs, the link,
the hotkeys and a log of what happened. Input is read raw from stdin on the one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
import tty
from collections import deque

from pitill.core.types import Key
from pitill.sim.keymap import Hotkey, decode_input, legend
from pitill.sim.tty_display import render_panel
from pitill.sim.world import SimWorld

REFRESH_S = 0.25
ENTER_ALT_SCREEN = "\x1b[?1049h\x1b[?25l"
LEAVE_ALT_SCREEN = "\x1b[?25h\x1b[?1049l"


class SimUI:
    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.log: deque[str] = deque(maxlen=6)
        self.quit = asyncio.Event()
        self._last_frame = ""
        self._busy_swipe = False
        self._swipe_task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        if not sys.stdin.isatty():
            raise SystemExit("pitill sim needs a terminal; use --script FILE to run headless")
        terminal = await self.world.start()
        terminal.event_log.listeners.append(self._on_event)
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        loop = asyncio.get_running_loop()
        try:
            tty.setraw(fd)
            sys.stdout.write(ENTER_ALT_SCREEN)
            loop.add_reader(fd, self._on_input, fd)
            while not self.quit.is_set():
                self._draw()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.quit.wait(), REFRESH_S)
        finally:
            loop.remove_reader(fd)
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            sys.stdout.write(LEAVE_ALT_SCREEN)
            sys.stdout.flush()
            await self.world.stop()

    def _note(self, text: str) -> None:
        self.log.append(text)

    def _on_event(self, kind: str, fields: dict[str, object]) -> None:
        if kind == "screen":
            return
        if kind == "journal":
            self._note(
                f"journal: #{fields['seq']} {fields['kind']} {fields['mode']} {fields['status']}"
                f" {fields['amount_minor']} {fields['currency']} {fields['masked_pan']}"
            )
        else:
            self._note(f"{kind}: " + " ".join(f"{k}={v}" for k, v in fields.items()))

    def _on_input(self, fd: int) -> None:
        data = os.read(fd, 64).decode("utf-8", errors="ignore")
        terminal = self.world.terminal
        assert terminal is not None
        for item in decode_input(data):
            if isinstance(item, Key):
                terminal.dispatch_key(item)
            else:
                self._hotkey(item)
        self._draw()

    def _hotkey(self, hotkey: Hotkey) -> None:
        kind, _, arg = hotkey.action.partition(":")
        if kind == "quit":
            self.quit.set()
        elif kind == "upstream":
            self.world.set_upstream(arg)
            self._note(f"upstream -> {arg}")
        elif kind == "swipe":
            self._swipe_task = asyncio.ensure_future(self._swipe(arg))

    async def _swipe(self, name: str) -> None:
        if self._busy_swipe:
            return
        self._busy_swipe = True
        try:
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(None, self.world.swipe_named, name)
            self._note(f"swiped {name} card: reader got {answer}")
        finally:
            self._busy_swipe = False

    def _draw(self) -> None:
        terminal = self.world.terminal
        if terminal is None or terminal.image is None:
            return
        state = terminal.state
        link = state.link.value + (f" ({state.link_reason})" if state.link_reason else "")
        link += f"  host:{self.world.upstream_mode}  pending:{state.pending}  {state.phase.value}"
        green, red = terminal.leds
        panel = render_panel(terminal.image, green, red, link, legend(), list(self.log))
        frame = "\x1b[H" + panel.replace("\n", "\r\n")
        if frame != self._last_frame:
            sys.stdout.write(frame)
            sys.stdout.flush()
            self._last_frame = frame

"""The terminal's live mirror: what the OLED shows, the LEDs, the link, the backlog, the state chart
and the events, pushed to a web page; in the simulator, the page's buttons drive the terminal.

The mirror only listens (screen listeners, the event log's listeners) and reads the terminal's
state when a frame is sent; it never waits for a browser (see web/server.py). It shows exactly
what the OLED shows: the renderer's pixels and the screen's text, never more card data than that,
and event lines go through the logs' PAN redaction like every other output.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

from PIL import Image

from pitill.app import Terminal
from pitill.core.screens import Screen
from pitill.core.types import Key, LinkStatus
from pitill.logs import redact_pans
from pitill.web.bind import BindAddress
from pitill.web.chart import svg
from pitill.web.server import WebServer

PAGE = "mirror.html"
SwipeNamed = Callable[[str], str]  # blocking: swipe a named test card, the reader's answer
SetHost = Callable[[str], None]


class Controls:
    """What the page's buttons may do: keys always; swipes and host modes only in the simulator."""

    def __init__(
        self,
        terminal: Terminal,
        cards: tuple[str, ...] = (),
        host_modes: tuple[str, ...] = (),
        swipe: SwipeNamed | None = None,
        set_host: SetHost | None = None,
    ) -> None:
        self.terminal = terminal
        self.cards = cards
        self.host_modes = host_modes
        self._swipe = swipe
        self._set_host = set_host
        self._swiping = False

    async def __call__(self, command: dict[str, Any]) -> str | None:
        """Carry out one command from the page; a reason when it was refused."""
        kind = command.get("type")
        if kind == "press":
            try:
                key = Key.parse(str(command.get("key", "")))
            except ValueError:
                return f"unknown key {str(command.get('key'))[:20]!r}"
            self.terminal.dispatch_key(key)
            return None
        if kind == "swipe" and self._swipe is not None:
            card = command.get("card")
            if card not in self.cards:
                return f"unknown test card {str(card)[:20]!r}"
            if self._swiping:
                return "a swipe is still going through the reader"
            self._swiping = True
            try:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, self._swipe, str(card))
            finally:
                self._swiping = False
            return None
        if kind == "host" and self._set_host is not None:
            mode = command.get("mode")
            if mode not in self.host_modes:
                return f"unknown host mode {str(mode)[:20]!r}"
            self._set_host(str(mode))
            return None
        return f"command {str(kind)[:20]!r} is not allowed here"


class Mirror:
    """Wires one terminal to a WebServer serving the mirror page."""

    def __init__(
        self, terminal: Terminal, bind: BindAddress, controls: Controls | None = None
    ) -> None:
        self.terminal = terminal
        self.controls = controls
        self.beeps = 0
        self.transition: dict[str, Any] | None = None
        self._transitions = 0
        chart = svg().encode()
        self.server = WebServer(
            bind,
            PAGE,
            {"/chart.svg": ("image/svg+xml", lambda: chart)},
            snapshot=self.snapshot,
            on_command=controls,
        )

    async def start(self) -> None:
        await self.server.start()
        self.terminal.screen_listeners.append(self._on_screen)
        self.terminal.event_log.listeners.append(self._on_event)

    async def close(self) -> None:
        await self.server.close()

    @property
    def url(self) -> str:
        return self.server.url

    def _on_screen(self, screen: Screen, image: Image.Image) -> None:
        self.server.changed()

    def _on_event(self, event: str, fields: dict[str, Any]) -> None:
        if event == "state":
            self._transitions += 1
            self.transition = {"from": fields["was"], "to": fields["phase"], "n": self._transitions}
        elif event == "beep":
            self.beeps += 1
        line = redact_pans(
            event + " " + " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items())
        )
        self.server.event({"t_s": round(self.terminal.now_s(), 3), "line": line})
        self.server.changed()  # LEDs, link, backlog and drawer change with events

    def snapshot(self) -> dict[str, Any]:
        """What the page draws: the OLED's pixels and text, the lamps, the link, the phase."""
        terminal = self.terminal
        state = terminal.state
        image = terminal.image
        bits = image.convert("1").tobytes() if image is not None else bytes(128 * 64 // 8)
        return {
            "bits": base64.b64encode(bits).decode(),
            "text": terminal.screen.text() if terminal.screen is not None else "",
            "phase": state.phase.value,
            # what the header says: CHECKING until the monitor's first verdict, never UNKNOWN
            "link": "CHECKING" if state.link is LinkStatus.UNKNOWN else state.link.value,
            "reason": state.link_reason,
            "backlog": state.pending,
            "leds": list(terminal.leds),
            "drawer": terminal.drawer_opened,
            "beeps": self.beeps,
            "transition": self.transition,
        }

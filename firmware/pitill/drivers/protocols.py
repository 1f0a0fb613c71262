"""The small Protocols every device adapter implements; app.py only knows these.

Input devices do not return values: they are started with a `post` callback that is safe to call
from any thread (it only moves an event onto the one asyncio loop that owns the terminal state).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PIL import Image

from pitill.card.model import Card
from pitill.core.screens import Screen
from pitill.core.types import BeepPattern, Key

KeySink = Callable[[Key], None]
"""Called with each logical key pressed; thread-safe."""


class CardSink(Protocol):
    """Where a card reader delivers what it read; both methods are thread-safe."""

    def card(self, card: Card) -> None: ...

    def unreadable(self, reason: str) -> None: ...

    def reader_status(self, connected: bool, detail: str) -> None:
        """The port went away (USB unplugged) or came back; shown on screen."""
        ...


class Display(Protocol):
    def show(self, screen: Screen) -> Image.Image:
        """Render and push the screen; returns the 1-bit image shown (for the sim and PNGs)."""
        ...

    def close(self) -> None: ...


class Indicators(Protocol):
    """LEDs, buzzer and the cash-drawer relay."""

    def set_leds(self, green: bool, red: bool) -> None: ...

    def beep(self, pattern: BeepPattern) -> None: ...

    def open_drawer(self) -> None: ...

    def close(self) -> None: ...


class KeySource(Protocol):
    def start(self, post: KeySink) -> None: ...

    def close(self) -> None: ...


class CardReader(Protocol):
    def start(self, sink: CardSink) -> None: ...

    def close(self) -> None: ...

"""Indicators for the simulator: remembers LED states, beeps and drawer pulses for the screen."""

from __future__ import annotations

from collections import deque

from pitill.core.types import BeepPattern


class SimIndicators:
    """The Indicators protocol with no hardware: state the simulator panel and scripts read."""

    def __init__(self) -> None:
        self.green = False
        self.red = False
        self.drawer_pulses = 0
        self.beeps: deque[BeepPattern] = deque(maxlen=20)

    def set_leds(self, green: bool, red: bool) -> None:
        self.green, self.red = green, red

    def beep(self, pattern: BeepPattern) -> None:
        self.beeps.append(pattern)

    def open_drawer(self) -> None:
        self.drawer_pulses += 1

    def close(self) -> None:
        pass

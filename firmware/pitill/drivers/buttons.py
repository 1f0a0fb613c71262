"""Big physical OK / CANCEL / FN push buttons (workshop demos) through gpiozero Button.

Each button joins its GPIO to GND against the internal pull-up. gpiozero's bounce_time differs
per pin backend (and the mock ignores it), so debouncing is ours, in `QuietDebouncer`: a press
counts only when its pin has been quiet (no edge either way) for debounce_s, measured by an
injected monotonic clock. That drops the extra presses of a bouncing contact going down and of
one coming back up (a release bounce also makes falling edges). Usable beside a keypad: the app
starts every KeySource with the same post.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gpiozero import Button

from pitill.config import NO_PIN, ButtonsConfig
from pitill.core.types import Key
from pitill.drivers.protocols import KeySink

if TYPE_CHECKING:
    from gpiozero.pins import Factory


class QuietDebouncer:
    """Accepts a press only after `quiet_s` without any edge on the pin. Pure: times come in."""

    def __init__(self, quiet_s: float) -> None:
        self._quiet_s = quiet_s
        self._last_edge_s: float | None = None
        self.dropped = 0  # bounces ignored, for the log and the tests

    def press(self, now_s: float) -> bool:
        """A falling edge at now_s: True when it is a real press."""
        accepted = self._last_edge_s is None or now_s - self._last_edge_s >= self._quiet_s
        self._last_edge_s = now_s
        if not accepted:
            self.dropped += 1
        return accepted

    def release(self, now_s: float) -> None:
        self._last_edge_s = now_s


class PhysicalButtons:
    """KeySource for the buttons configured with a pin (-1 = not fitted)."""

    def __init__(
        self,
        config: ButtonsConfig,
        *,
        pin_factory: Factory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._buttons: dict[Key, Button] = {}
        self._debouncers: dict[Key, QuietDebouncer] = {}
        wanted = {Key.OK: config.ok_pin, Key.CANCEL: config.cancel_pin, Key.FN: config.fn_pin}
        try:
            for key, pin in wanted.items():
                if pin != NO_PIN:
                    self._buttons[key] = Button(pin, pull_up=True, pin_factory=pin_factory)
                    self._debouncers[key] = QuietDebouncer(config.debounce_s)
        except Exception:
            self.close()  # give back the pins claimed so far
            raise

    @property
    def dropped(self) -> int:
        """Bounces ignored so far, over all buttons."""
        return sum(d.dropped for d in self._debouncers.values())

    def start(self, post: KeySink) -> None:
        # gpiozero calls these on its own thread (the mock: on the thread that drives the pin).
        for key, button in self._buttons.items():
            button.when_pressed, button.when_released = self._handlers(key, post)

    def _handlers(self, key: Key, post: KeySink) -> tuple[Callable[[], None], Callable[[], None]]:
        debouncer = self._debouncers[key]

        def pressed() -> None:
            if debouncer.press(self._clock()):
                post(key)

        def released() -> None:
            debouncer.release(self._clock())

        return pressed, released

    def close(self) -> None:
        for button in self._buttons.values():
            button.close()
        self._buttons.clear()

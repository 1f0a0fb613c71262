"""Green and red LEDs, the buzzer and the cash-drawer relay through gpiozero (Indicators protocol).

The buzzer is an active one behind a transistor: on/off only, so gpiozero's Buzzer. Each pattern
is a series of (on_s, off_s) beeps played in the background; a new beep cuts the one playing
(a key click never waits behind a long alert). Patterns of equal beeps use gpiozero's
blink(on_time, off_time, n); a mixed one (the offline alert) runs through gpiozero's `source`,
one value per 10 ms tick. The drawer relay is pulsed for drawer_pulse_s without blocking.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gpiozero import LED, Buzzer, DigitalOutputDevice

from pitill.config import NO_PIN, IndicatorsConfig
from pitill.core.types import BeepPattern

if TYPE_CHECKING:
    from gpiozero.pins import Factory

Beeps = tuple[tuple[float, float], ...]
"""A beep pattern: (on_s, off_s) for each beep, in order."""

SHORT_S = 0.08
BEEP_PATTERNS: dict[BeepPattern, Beeps] = {
    BeepPattern.CLICK: ((0.02, 0.02),),
    BeepPattern.APPROVE: ((SHORT_S, SHORT_S),) * 2,
    BeepPattern.DECLINE: ((0.5, 0.1),),
    BeepPattern.ERROR: ((SHORT_S, SHORT_S),) * 3,
    BeepPattern.ALERT: ((0.3, 0.1), (0.1, 0.1), (0.3, 0.1)),
}
TICK_S = 0.01  # step of a mixed pattern played through `source`


def _ticks(beeps: Beeps) -> Iterator[int]:
    for on_s, off_s in beeps:
        yield from [1] * round(on_s / TICK_S)
        yield from [0] * round(off_s / TICK_S)


class GpioIndicators:
    """Indicators on GPIO; a part whose pin is -1 (or a disabled buzzer) is simply absent."""

    def __init__(self, config: IndicatorsConfig, *, pin_factory: Factory | None = None) -> None:
        self._pulse_s = config.drawer_pulse_s
        self._green: LED | None = None
        self._red: LED | None = None
        self._buzzer: Buzzer | None = None
        self._drawer: DigitalOutputDevice | None = None
        try:
            if config.green_led_pin != NO_PIN:
                self._green = LED(config.green_led_pin, pin_factory=pin_factory)
            if config.red_led_pin != NO_PIN:
                self._red = LED(config.red_led_pin, pin_factory=pin_factory)
            if config.buzzer_enabled and config.buzzer_pin != NO_PIN:
                self._buzzer = Buzzer(config.buzzer_pin, pin_factory=pin_factory)
                self._buzzer.source_delay = TICK_S
            if config.drawer_pin != NO_PIN:
                self._drawer = DigitalOutputDevice(
                    config.drawer_pin,
                    active_high=config.drawer_active_high,
                    initial_value=False,
                    pin_factory=pin_factory,
                )
        except Exception:
            self.close()  # give back the pins claimed so far
            raise

    def set_leds(self, green: bool, red: bool) -> None:
        for led, lit in ((self._green, green), (self._red, red)):
            if led is not None:
                led.value = lit

    def beep(self, pattern: BeepPattern) -> None:
        if self._buzzer is None:
            return
        self._buzzer.source = None  # stops a mixed pattern still playing
        beeps = BEEP_PATTERNS[pattern]
        if len(set(beeps)) == 1:
            on_s, off_s = beeps[0]
            self._buzzer.blink(on_time=on_s, off_time=off_s, n=len(beeps), background=True)
        else:
            self._buzzer.source = _ticks(beeps)

    def open_drawer(self) -> None:
        if self._drawer is not None:
            self._drawer.blink(on_time=self._pulse_s, off_time=0, n=1, background=True)

    def close(self) -> None:
        for device in (self._green, self._red, self._buzzer, self._drawer):
            if device is not None:
                device.close()  # stops a blink or source thread and frees the pin
        self._green = self._red = self._buzzer = self._drawer = None

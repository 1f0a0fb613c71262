"""LEDs, buzzer patterns and the drawer pulse, checked as MockPin states over time.

MockPin records every change with the time spent in the state before it. The tests check the
exact sequence of states and that each beep/pulse lasted at least its nominal time; they put no
upper bound on durations, which would fail on a loaded machine.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory, MockPin

from pitill.config import IndicatorsConfig
from pitill.core.types import BeepPattern
from pitill.drivers.indicators import BEEP_PATTERNS, GpioIndicators

CONFIG = IndicatorsConfig()


@pytest.fixture
def indicators(factory: MockFactory) -> Iterator[GpioIndicators]:
    indicators = GpioIndicators(CONFIG, pin_factory=factory)
    yield indicators
    indicators.close()


def wait_for_changes(pin: MockPin, count: int, timeout_s: float = 5.0) -> list[tuple[bool, float]]:
    """Wait for `count` changes; (state, seconds it lasted) for each but the last (still on)."""
    deadline = time.monotonic() + timeout_s
    while len(pin.states) < count + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    states = pin.states
    assert len(states) >= count + 1, f"only {len(states) - 1} changes: {states}"
    return [(bool(s.state), nxt.timestamp) for s, nxt in itertools.pairwise(states[1:])]


def test_leds_follow_set_leds(factory: MockFactory, indicators: GpioIndicators) -> None:
    green, red = factory.pin(CONFIG.green_led_pin), factory.pin(CONFIG.red_led_pin)
    indicators.set_leds(green=True, red=False)
    assert (green.state, red.state) == (True, False)
    indicators.set_leds(green=False, red=True)
    assert (green.state, red.state) == (False, True)
    indicators.set_leds(green=False, red=False)
    green.assert_states([False, True, False])
    red.assert_states([False, True, False])


@pytest.mark.parametrize("pattern", list(BeepPattern))
def test_each_beep_pattern_plays_its_beeps(
    factory: MockFactory, indicators: GpioIndicators, pattern: BeepPattern
) -> None:
    buzzer = factory.pin(CONFIG.buzzer_pin)
    buzzer.clear_states()
    indicators.beep(pattern)
    beeps = BEEP_PATTERNS[pattern]
    changes = wait_for_changes(buzzer, 2 * len(beeps))
    buzzer.assert_states([False] + [True, False] * len(beeps))
    assert [state for state, _ in changes] == ([True, False] * len(beeps))[:-1]
    ons = [lasted for state, lasted in changes if state]
    assert len(ons) == len(beeps)
    for lasted_s, (on_s, _) in zip(ons, beeps, strict=True):
        assert lasted_s >= on_s * 0.9
    assert buzzer.state is False


def test_the_patterns_differ_in_count_and_length() -> None:
    ons = {p: [on for on, _ in beeps] for p, beeps in BEEP_PATTERNS.items()}
    assert ons[BeepPattern.CLICK] == [0.02]
    assert len(ons[BeepPattern.APPROVE]) == 2 and max(ons[BeepPattern.APPROVE]) < 0.2
    assert len(ons[BeepPattern.DECLINE]) == 1 and ons[BeepPattern.DECLINE][0] >= 0.4
    assert len(ons[BeepPattern.ERROR]) == 3
    long_, short, long2 = ons[BeepPattern.ALERT]
    assert long_ == long2 > short


def test_a_new_beep_cuts_the_alert(factory: MockFactory, indicators: GpioIndicators) -> None:
    buzzer = factory.pin(CONFIG.buzzer_pin)
    indicators.beep(BeepPattern.ALERT)
    wait_for_changes(buzzer, 1)  # the alert's first beep has begun
    indicators.beep(BeepPattern.CLICK)
    deadline = time.monotonic() + 5
    while buzzer.state and time.monotonic() < deadline:
        time.sleep(0.01)
    settled = len(buzzer.states)
    time.sleep(0.5)  # the alert would have toggled again by now
    assert len(buzzer.states) == settled
    assert buzzer.state is False


def test_the_drawer_pulses_once(factory: MockFactory, indicators: GpioIndicators) -> None:
    drawer = factory.pin(CONFIG.drawer_pin)
    indicators.open_drawer()
    ((state, lasted_s),) = wait_for_changes(drawer, 2)
    assert state is True and lasted_s >= CONFIG.drawer_pulse_s * 0.9
    drawer.assert_states([False, True, False])
    assert len(drawer.states) == 3


def test_an_active_low_drawer_idles_high_and_pulses_low(factory: MockFactory) -> None:
    config = IndicatorsConfig(drawer_active_high=False, drawer_pulse_s=0.05)
    indicators = GpioIndicators(config, pin_factory=factory)
    drawer = factory.pin(config.drawer_pin)
    assert drawer.state is True
    indicators.open_drawer()
    (idle, _), (pulse, lasted_s) = wait_for_changes(drawer, 3)  # idle high, pulse low, high
    assert [bool(s.state) for s in drawer.states] == [False, True, False, True]
    assert idle is True and pulse is False and lasted_s >= 0.05 * 0.9
    indicators.close()


def test_absent_parts_leave_their_pins_free(factory: MockFactory) -> None:
    config = IndicatorsConfig(red_led_pin=-1, buzzer_enabled=False, drawer_pin=-1)
    indicators = GpioIndicators(config, pin_factory=factory)
    indicators.set_leds(green=True, red=True)
    indicators.beep(BeepPattern.ERROR)
    indicators.open_drawer()
    assert factory.pin(config.green_led_pin).state is True
    for pin in (27, 18, 22):  # the default red LED, buzzer and drawer pins
        LED(pin, pin_factory=factory).close()
    indicators.close()


def test_close_gives_every_pin_back(factory: MockFactory) -> None:
    GpioIndicators(CONFIG, pin_factory=factory).close()
    for pin in (17, 27, 18, 22):
        LED(pin, pin_factory=factory).close()

"""Physical buttons on MockFactory pins, with a fake monotonic clock driving the debounce."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from pitill.config import ButtonsConfig
from pitill.core.types import Key
from pitill.drivers.buttons import PhysicalButtons, QuietDebouncer

CONFIG = ButtonsConfig(enabled=True, ok_pin=26, cancel_pin=23, fn_pin=4, debounce_s=0.05)


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def posted(factory: MockFactory, clock: FakeClock) -> Iterator[list[Key]]:
    keys: list[Key] = []
    buttons = PhysicalButtons(CONFIG, pin_factory=factory, clock=clock)
    buttons.start(keys.append)
    yield keys
    buttons.close()


def edges(factory: MockFactory, clock: FakeClock, pin: int, steps: list[tuple[float, str]]) -> None:
    """Drive `pin` through (delay_s, "low"/"high") steps on the fake clock."""
    for delay_s, level in steps:
        clock.now_s += delay_s
        getattr(factory.pin(pin), f"drive_{level}")()


def test_each_button_posts_its_key(
    factory: MockFactory, clock: FakeClock, posted: list[Key]
) -> None:
    for pin in (CONFIG.ok_pin, CONFIG.cancel_pin, CONFIG.fn_pin):
        edges(factory, clock, pin, [(1.0, "low"), (0.2, "high")])
    assert posted == [Key.OK, Key.CANCEL, Key.FN]


def test_a_bouncing_press_and_release_count_once(
    factory: MockFactory, clock: FakeClock, posted: list[Key]
) -> None:
    press = [(1.0, "low"), (0.002, "high"), (0.001, "low"), (0.003, "high"), (0.001, "low")]
    release = [(0.3, "high"), (0.002, "low"), (0.001, "high"), (0.004, "low"), (0.002, "high")]
    edges(factory, clock, CONFIG.ok_pin, press + release)
    assert posted == [Key.OK]
    edges(factory, clock, CONFIG.ok_pin, [(0.2, "low"), (0.1, "high")])  # a real second press
    assert posted == [Key.OK, Key.OK]


def test_a_press_right_after_a_release_bounce_is_dropped() -> None:
    debouncer = QuietDebouncer(quiet_s=0.05)
    assert debouncer.press(10.0)
    debouncer.release(10.2)
    assert not debouncer.press(10.21)  # 10 ms after the last edge: still bouncing
    assert debouncer.press(10.3)
    assert debouncer.dropped == 1


def test_an_absent_fn_button_leaves_its_pin_free(factory: MockFactory, clock: FakeClock) -> None:
    config = ButtonsConfig(enabled=True, ok_pin=26, cancel_pin=23, fn_pin=-1)
    buttons = PhysicalButtons(config, pin_factory=factory, clock=clock)
    LED(4, pin_factory=factory).close()  # GPIO4 was not claimed
    buttons.close()


def test_close_gives_the_pins_back(factory: MockFactory) -> None:
    PhysicalButtons(CONFIG, pin_factory=factory).close()
    for pin in (26, 23, 4):
        LED(pin, pin_factory=factory).close()

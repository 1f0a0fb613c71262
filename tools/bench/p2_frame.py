"""P2: CPU time from a keypress to the rendered 1-bit frame, against a bare luma canvas draw.

The path measured is the terminal's own: core.step on a KeyPressed, then every Show effect through
the one renderer onto luma's dummy device (DummyDisplay.show). Keys are a cashier's: amounts of
one to five random digits, a CLEAR now and then, CANCEL back to idle. The baseline draws one text
line on the same dummy device through luma.core.render.canvas, the least any frame costs.
Both are process CPU time (time.process_time), per frame.
"""

from __future__ import annotations

import random
import time

from benchlib import Figure, Options
from luma.core.render import canvas  # type: ignore[import-untyped]

from pitill.app import settings_from_config
from pitill.config import Config, DisplayConfig
from pitill.core.effects import Show
from pitill.core.events import Booted, KeyPressed, LinkChanged
from pitill.core.machine import step
from pitill.core.state import TerminalState
from pitill.core.types import Key, LinkStatus
from pitill.drivers.oled import DummyDisplay

GOAL_MS = 2.0


def cashier_keys(count: int, rng: random.Random) -> list[Key]:
    keys: list[Key] = []
    while len(keys) < count:
        keys.append(Key(str(rng.randint(1, 9))))
        keys += [Key(str(rng.randint(0, 9))) for _ in range(rng.randint(0, 4))]
        if rng.random() < 0.3:
            keys.append(Key.CLEAR)
        keys.append(Key.CANCEL)
    return keys[:count]


def _keypresses(count: int, rng: random.Random) -> float:
    """CPU seconds per key, from step to the frame on the dummy device."""
    display = DummyDisplay(DisplayConfig(driver="dummy"))
    state = TerminalState(settings=settings_from_config(Config()))
    state, _ = step(state, Booted(0.0, next_seq=1))
    state, _ = step(state, LinkChanged(0.0, LinkStatus.ONLINE))
    keys = cashier_keys(count, rng)
    start = time.process_time()
    for index, key in enumerate(keys):
        state, effects = step(state, KeyPressed(float(index), key))
        for effect in effects:
            if isinstance(effect, Show):
                display.show(effect.screen)
    spent = time.process_time() - start
    display.close()
    return spent / count


def _bare_canvas(count: int) -> float:
    display = DummyDisplay(DisplayConfig(driver="dummy"))
    device = display.device
    start = time.process_time()
    for index in range(count):
        with canvas(device) as draw:
            draw.text((0, 0), f"EUR {index % 10_000 / 100:.2f}", fill="white")
    spent = time.process_time() - start
    display.close()
    return spent / count


def measure(options: Options) -> list[Figure]:
    count = 500 if options.quick else 5000
    rng = random.Random(options.seed)
    _keypresses(200, rng)  # warm caches and imports, as a running terminal has them
    _bare_canvas(200)
    key_ms = _keypresses(count, rng) * 1000
    bare_ms = _bare_canvas(count) * 1000
    return [
        Figure(
            "P2",
            "keypress -> step -> 1-bit frame (CPU)",
            key_ms,
            "ms",
            baseline=bare_ms,
            baseline_name="bare luma canvas text",
            goal=f"<= {GOAL_MS:g} ms",
            meets=key_ms <= GOAL_MS,
            note=f"{count} cashier keys; mean CPU time per key",
        )
    ]

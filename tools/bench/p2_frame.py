"""P2: CPU time from a keypress to the bytes handed to the panel, against the least a frame costs.

The path measured is the terminal's own: core.step on a KeyPressed, then every Show effect through
the real OLED driver (OledDisplay: the one renderer, the changed-image check, luma.oled's ssd1306
page conversion) down to a serial interface that only counts the bytes it is handed (what would
go over I2C). Keys are a cashier's: amounts of one to five random digits, a CLEAR now and then,
CANCEL back to idle. The baseline is the least work that ends in the same place: one line of
text in a font loaded once, drawn on a 1-bit 128x64 image and handed to the same ssd1306 device
over the same counting interface. Both are process CPU time (time.process_time), per key / frame.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from benchlib import Figure, Options, load_tool
from luma.oled.device import ssd1306
from PIL import Image, ImageDraw, ImageFont

from pitill.app import settings_from_config
from pitill.config import Config, DisplayConfig
from pitill.core.effects import Show
from pitill.core.events import Booted, KeyPressed, LinkChanged
from pitill.core.machine import step
from pitill.core.state import TerminalState
from pitill.core.types import Key, LinkStatus
from pitill.drivers.oled import OledDisplay
from pitill.drivers.render import HEIGHT_PX, WIDTH_PX

GOAL_MS = 2.0
BARE_FONT_SIZE = 18  # the amount's size on the terminal's screens (the largest title font)


def cashier_keys(count: int, rng: random.Random) -> list[Key]:
    keys: list[Key] = []
    while len(keys) < count:
        keys.append(Key(str(rng.randint(1, 9))))
        keys += [Key(str(rng.randint(0, 9))) for _ in range(rng.randint(0, 4))]
        if rng.random() < 0.3:
            keys.append(Key.CLEAR)
        keys.append(Key.CANCEL)
    return keys[:count]


def _recording_serial() -> object:
    """tools/bench_drivers.py's luma serial interface that counts what it is given."""
    return load_tool("bench_drivers").RecordingSerial()


def _keypresses(keys: Sequence[Key]) -> tuple[float, int, int]:
    """(CPU seconds per key, frames sent to the panel, bytes handed to the interface)."""
    serial = _recording_serial()
    display = OledDisplay(DisplayConfig(driver="ssd1306"), serial_interface=serial)
    state = TerminalState(settings=settings_from_config(Config()))
    state, _ = step(state, Booted(0.0, next_seq=1))
    state, _ = step(state, LinkChanged(0.0, LinkStatus.ONLINE))
    serial.reset()  # type: ignore[attr-defined]
    start = time.process_time()
    for index, key in enumerate(keys):
        state, effects = step(state, KeyPressed(float(index), key))
        for effect in effects:
            if isinstance(effect, Show):
                display.show(effect.screen)
    spent = time.process_time() - start
    frames = serial.writes  # type: ignore[attr-defined]
    sent = serial.command_bytes + serial.data_bytes  # type: ignore[attr-defined]
    return spent / len(keys), frames, sent


def _bare_frames(count: int) -> tuple[float, int]:
    """(CPU seconds per frame, bytes per frame): text in a font loaded once, to the panel bytes."""
    serial = _recording_serial()
    device = ssd1306(serial, width=WIDTH_PX, height=HEIGHT_PX)
    font = ImageFont.load_default(size=BARE_FONT_SIZE)
    serial.reset()  # type: ignore[attr-defined]
    start = time.process_time()
    for index in range(count):
        image = Image.new("1", (WIDTH_PX, HEIGHT_PX))
        ImageDraw.Draw(image).text((0, 20), f"EUR {index % 10_000 / 100:.2f}", font=font, fill=1)
        device.display(image)
    spent = time.process_time() - start
    sent = serial.command_bytes + serial.data_bytes  # type: ignore[attr-defined]
    return spent / count, sent // count


def measure(options: Options) -> list[Figure]:
    count = 500 if options.quick else 5000
    rng = random.Random(options.seed)
    _keypresses(cashier_keys(200, rng))  # warm caches and imports, as a running terminal has them
    _bare_frames(200)
    key_s, frames, key_bytes = _keypresses(cashier_keys(count, rng))
    bare_s, bare_bytes = _bare_frames(count)
    key_ms, bare_ms = key_s * 1000, bare_s * 1000
    return [
        Figure(
            "P2",
            "keypress -> step -> render -> ssd1306 bytes (CPU)",
            key_ms,
            "ms",
            baseline=bare_ms,
            baseline_name="text, font loaded once -> ssd1306 bytes",
            goal=f"<= {GOAL_MS:g} ms",
            meets=key_ms <= GOAL_MS,
            note=(
                f"{count} cashier keys, mean CPU per key; {key_bytes / count:,.0f} bytes per key "
                f"handed to the I2C interface ({key_bytes:,} in {frames:,} writes: an unchanged "
                f"image sends nothing); the baseline sends {bare_bytes:,} bytes per frame"
            ),
        )
    ]

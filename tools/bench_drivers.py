"""Bench the drivers' CPU cost: one keypad scan, and one OLED frame (render + luma ssd1306).

The keypad is pitill's MatrixKeypad on gpiozero's MockFactory (4x4, default pins), with and
without the fake membrane (MockKeypadWiring) that moves the column pins; `scan_once` is what the
scanner thread does every keypad.scan_interval_s. The frame is the shared renderer drawing a
screen plus luma.oled's ssd1306 turning it into page bytes, over a serial interface that only
records what it is given (what would go over I2C is counted and the bus time computed).

CPU time is process time (time.process_time_ns), so sleeping and I/O do not count. Measured on
the machine that runs it: on a Pi multiply by the CPU ratio (a Zero 2 W / Pi 3 core is several
times slower than a laptop's), and lgpio's pin calls cost more than the mock's dict lookups.

    .venv/bin/python tools/bench_drivers.py [--scans 2000] [--frames 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from gpiozero.pins.mock import MockFactory
from luma.oled.device import ssd1306

from pitill.config import KeypadConfig
from pitill.drivers.keypad_matrix import MatrixKeypad, MockKeypadWiring
from pitill.drivers.render import HEIGHT_PX, WIDTH_PX, render, screen_gallery

I2C_BITS_PER_BYTE = 9  # 8 data bits and the ACK
# One i2c_rdwr write (luma over smbus2) carries the address byte and the control byte first.
I2C_OVERHEAD_BYTES = 2


class RecordingSerial:
    """A luma serial interface that counts the command and data bytes it would send."""

    def __init__(self) -> None:
        self.command_bytes = 0
        self.data_bytes = 0
        self.writes = 0

    def command(self, *cmd: int) -> None:
        self.command_bytes += len(cmd) + I2C_OVERHEAD_BYTES
        self.writes += 1

    def data(self, data: Sequence[int]) -> None:
        self.data_bytes += len(data) + I2C_OVERHEAD_BYTES
        self.writes += 1

    def cleanup(self) -> None:
        pass

    def reset(self) -> None:
        self.command_bytes = self.data_bytes = self.writes = 0


def cpu_us_per_call(action: Callable[[], Any], calls: int, rounds: int) -> list[float]:
    """CPU microseconds per call, one figure per round."""
    figures = []
    for _ in range(rounds):
        start_ns = time.process_time_ns()
        for _ in range(calls):
            action()
        figures.append((time.process_time_ns() - start_ns) / calls / 1000)
    return figures


def summary(figures: list[float]) -> str:
    low, mid, high = min(figures), statistics.median(figures), max(figures)
    return f"min {low:8.1f}  median {mid:8.1f}  max {high:8.1f}"


def bench_keypad(scans: int, rounds: int) -> list[tuple[str, list[float]]]:
    config = KeypadConfig()
    results = []
    for label, wired, held in (
        ("scan, plain mock pins, no key", False, ""),
        ("scan, fake membrane, no key", True, ""),
        ("scan, fake membrane, '5' held", True, "5"),
    ):
        factory = MockFactory()
        wiring = MockKeypadWiring(factory, config) if wired else None
        keypad = MatrixKeypad(config, pin_factory=factory)
        if wiring is not None and held:
            wiring.press(held)
        try:
            results.append((label, cpu_us_per_call(keypad.scan_once, scans, rounds)))
        finally:
            keypad.close()
            factory.reset()
    return results


def bench_frames(frames: int, rounds: int) -> tuple[list[tuple[str, list[float]]], RecordingSerial]:
    serial = RecordingSerial()
    device = ssd1306(serial, width=WIDTH_PX, height=HEIGHT_PX)
    screens = list(screen_gallery().values())
    images = [render(screen) for screen in screens]
    counter = {"i": 0}

    def next_index() -> int:
        counter["i"] = (counter["i"] + 1) % len(screens)
        return counter["i"]

    def render_only() -> None:
        render(screens[next_index()])

    def display_only() -> None:
        device.display(images[next_index()])

    def frame() -> None:
        device.display(render(screens[next_index()]))

    results = [
        ("render (pitill.drivers.render)", cpu_us_per_call(render_only, frames, rounds)),
        ("luma ssd1306.display", cpu_us_per_call(display_only, frames, rounds)),
        ("frame = render + display", cpu_us_per_call(frame, frames, rounds)),
    ]
    serial.reset()
    device.display(images[0])  # one frame's bytes, for the bus time
    return results, serial


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=2000, help="keypad scans per round")
    parser.add_argument("--frames", type=int, default=200, help="frames per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    # luma.oled 3.16 calls Image.getdata, deprecated in Pillow 12/13.
    warnings.filterwarnings("ignore", "Image.Image.getdata", DeprecationWarning)

    print(f"CPU microseconds per call ({args.rounds} rounds; Python {sys.version.split()[0]})")
    print("keypad (4x4, MockFactory):")
    for label, figures in bench_keypad(args.scans, args.rounds):
        print(f"  {label:34} {summary(figures)}")
    print(
        f"  per second at scan_interval_s = {KeypadConfig().scan_interval_s}: "
        f"{1 / KeypadConfig().scan_interval_s:.0f} scans"
    )
    results, serial = bench_frames(args.frames, args.rounds)
    print("OLED frame (128x64, ssd1306 over a recording serial interface):")
    for label, figures in results:
        print(f"  {label:34} {summary(figures)}")
    frame_bytes = serial.command_bytes + serial.data_bytes
    print(
        f"  one frame on the bus: {serial.writes} writes, {frame_bytes} bytes "
        f"({serial.data_bytes} pixel + {serial.command_bytes} command, with address and "
        "control bytes)"
    )
    for rate_hz in (100_000, 400_000):
        bus_ms = frame_bytes * I2C_BITS_PER_BYTE / rate_hz * 1000
        print(f"  I2C at {rate_hz // 1000} kHz: {bus_ms:.1f} ms per frame (wire time, not CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

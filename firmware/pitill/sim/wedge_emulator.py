"""A USB keyboard-wedge stripe reader for the simulator: typed key events through a pipe.

`type-stripe PAN YYMM` types track 1 and track 2 and Enter as a US-layout wedge reader would: real
24-byte input_event records (press, release, Shift around the shifted characters, a SYN after
each) written into a pipe that the terminal's real evdev driver (drivers/evdev_stripe.py) reads
through evdev's own EventIO. evdev is an optional extra: without it there is no wedge reader.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from typing import Any

from pitill.card.track import build_track1, build_track2
from pitill.card.wedge import strokes_for
from pitill.config import ReaderConfig, WedgeLayout
from pitill.drivers.evdev_stripe import UsbStripeReader
from pitill.errors import ScriptError

LAYOUT: WedgeLayout = "us"


class WedgeEmulator:
    def __init__(self) -> None:
        from evdev import ecodes
        from evdev.eventio import EventIO

        self._codes: dict[str, int] = dict(ecodes.ecodes)
        self._ev_key, self._ev_syn = ecodes.EV_KEY, ecodes.EV_SYN
        self._read_fd, self._write_fd = os.pipe()

        class PipeDevice(EventIO):
            """evdev's reader over the pipe: grab() is a no-op, there is no console to keep."""

            def __init__(self, fd: int) -> None:
                self.fd = fd

            def grab(self) -> None:
                pass

            def read(self) -> Iterator[Any]:
                return super().read()

            def close(self) -> None:
                os.close(self.fd)

        self._device = PipeDevice(self._read_fd)
        path = f"/proc/self/fd/{self._read_fd}"  # a path that exists while the pipe is open
        config = ReaderConfig(port=path, type="usb-stripe", layout=LAYOUT)
        self.reader = UsbStripeReader(config, open_device=lambda _path: self._device)

    def type_stripe(self, pan: str, expiry_yymm: str) -> str:
        """Type both tracks of a test card and Enter; what was typed, for the log."""
        try:
            text = build_track1(pan, expiry_yymm, "PITILL/TEST CARD") + build_track2(
                pan, expiry_yymm
            )
        except ValueError as exc:
            raise ScriptError(f"type-stripe: {exc}") from None
        now = time.time()
        sec, usec = int(now), int(now % 1 * 1e6)
        records = bytearray()
        for name, value in strokes_for(text, LAYOUT):
            records += struct.pack("llHHi", sec, usec, self._ev_key, self._codes[name], value)
            records += struct.pack("llHHi", sec, usec, self._ev_syn, 0, 0)
        os.write(self._write_fd, bytes(records))
        return f"USB stripe reader typed {len(text)} characters"

    def close(self) -> None:
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1

"""USB keyboard-wedge stripe reader: real input_event records through a pipe, read by evdev."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from evdev import ecodes
from evdev.eventio import EventIO
from evdev.events import InputEvent

from pitill.card.model import Card, ReadBy
from pitill.card.track import build_track1, build_track2
from pitill.card.wedge import LAYOUTS
from pitill.config import ReaderConfig
from pitill.drivers.evdev_stripe import UsbStripeReader
from reader_sink import QueueSink

PAN, EXPIRY = "4111111111111111", "3012"


def record(etype: int, code: int, value: int) -> bytes:
    return struct.pack("llHHi", 1_700_000_000, 0, etype, code, value)


def key(name: str, value: int) -> bytes:
    return (
        record(ecodes.EV_MSC, ecodes.MSC_SCAN, 0x70000)
        + record(ecodes.EV_KEY, ecodes.ecodes[name], value)
        + record(ecodes.EV_SYN, ecodes.SYN_REPORT, 0)
    )


def typed(text: str, layout: str = "us") -> bytes:
    """The records a wedge reader sends typing `text` and Enter for `layout`."""
    out = b""
    for char in text:
        name, shifted = next(
            (name, index == 1)
            for name, pair in LAYOUTS[layout].items()
            for index, typed_char in enumerate(pair)
            if typed_char == char
        )
        body = key(name, 1) + key(name, 0)
        out += key("KEY_LEFTSHIFT", 1) + body + key("KEY_LEFTSHIFT", 0) if shifted else body
    return out + key("KEY_ENTER", 1) + key("KEY_ENTER", 0)


class PipeEventDevice(EventIO):
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.grabbed = False

    def grab(self) -> None:
        self.grabbed = True

    def read(self) -> Iterator[InputEvent]:
        return super().read()

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def wedge(
    tmp_path: Path,
) -> Iterator[tuple[UsbStripeReader, QueueSink, int, list[PipeEventDevice]]]:
    path = tmp_path / "usb-MagTek_Swipe-event-kbd"
    path.touch()
    read_fd, write_fd = os.pipe()
    opened: list[PipeEventDevice] = []

    def open_device(_: str) -> PipeEventDevice:
        opened.append(PipeEventDevice(read_fd))
        return opened[-1]

    reader = UsbStripeReader(
        ReaderConfig(port=str(tmp_path / "*-event-kbd"), type="usb-stripe"),
        open_device=open_device,
        poll_s=0.01,
    )
    sink = QueueSink()
    reader.start(sink)
    kind, (connected, _) = sink.next()  # type: ignore[misc]
    assert (kind, connected) == ("status", True)
    yield reader, sink, write_fd, opened
    reader.close()
    os.close(write_fd)


def test_a_swipe_typed_as_keys_becomes_one_card_and_the_device_is_grabbed(
    wedge: tuple[UsbStripeReader, QueueSink, int, list[PipeEventDevice]],
) -> None:
    reader, sink, write_fd, opened = wedge
    os.write(write_fd, typed(build_track1(PAN, EXPIRY, "DOE/JANE") + build_track2(PAN, EXPIRY)))
    kind, card = sink.next()
    assert kind == "card" and isinstance(card, Card)
    assert (card.pan, card.expiry_yymm, card.read_by) == (PAN, EXPIRY, ReadBy.USB_STRIPE)
    assert opened[0].grabbed and reader.cards == 1


def test_garbage_is_unreadable_and_the_next_swipe_still_reads(
    wedge: tuple[UsbStripeReader, QueueSink, int, list[PipeEventDevice]],
) -> None:
    reader, sink, write_fd, _ = wedge
    os.write(write_fd, typed("hello") + typed(build_track2(PAN, EXPIRY)))
    kind, reason = sink.next()
    assert kind == "unreadable" and "start sentinel" in str(reason)
    kind, card = sink.next()
    assert kind == "card" and isinstance(card, Card) and card.pan == PAN
    assert reader.unreadable == 1

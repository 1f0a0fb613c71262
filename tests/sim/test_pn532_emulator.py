"""The PN532 emulator's framing: any bytes never crash it, a bad frame is never answered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pitill.card.pn532_frame import ACK, NACK, Ack, ErrorFrame, Frame, FrameReader, encode_frame
from pitill.sim.pn532_emulator import Pn532Emulator

GET_FIRMWARE_VERSION = encode_frame(0xD4, b"\x02")
FIRMWARE_RESPONSE = encode_frame(0xD5, b"\x03\x32\x01\x06\x07")


@pytest.fixture(scope="module")
def emulator() -> Iterator[Pn532Emulator]:
    emulator = Pn532Emulator()  # not started: feed() is driven directly
    yield emulator
    emulator.close()


def test_a_command_is_acked_then_answered_and_a_nack_repeats_the_answer(
    emulator: Pn532Emulator,
) -> None:
    assert emulator.feed(GET_FIRMWARE_VERSION) == [ACK, FIRMWARE_RESPONSE]
    assert emulator.feed(NACK) == [FIRMWARE_RESPONSE]
    assert emulator.feed(ACK) == []  # the host's ACK (a cancel) is not answered


def test_unknown_commands_get_the_error_frame(emulator: Pn532Emulator) -> None:
    replies = emulator.feed(encode_frame(0xD4, b"\x8c\x00"))  # TgInitAsTarget: not emulated
    assert replies[0] == ACK and FrameReader().feed(replies[1]) == [ErrorFrame()]


@settings(max_examples=300)
@given(st.binary(max_size=400), st.integers(0, 5), st.integers(1, 255))
def test_no_bad_frame_is_answered_and_nothing_crashes(noise: bytes, index: int, flip: int) -> None:
    emulator = Pn532Emulator()  # not started: the chip's logic without its thread
    try:
        for reply in emulator.feed(noise):  # garbage: whatever it answers is well formed
            assert all(isinstance(r, Ack | Frame | ErrorFrame) for r in FrameReader().feed(reply))
        bad = bytearray(GET_FIRMWARE_VERSION)
        bad[3 + index] ^= flip  # LEN through the postamble
        emulator.feed(b"\x00" * 8)  # flush any half frame of the noise
        assert FIRMWARE_RESPONSE not in emulator.feed(bytes(bad))
    finally:
        emulator.close()

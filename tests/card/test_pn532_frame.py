"""PN532 host frames: round trips, resync after noise, and no bad frame ever accepted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pitill.card.pn532_frame import (
    ACK,
    ERROR_FRAME,
    MAX_DATA_BYTES,
    NACK,
    TFI_HOST_TO_PN532,
    Ack,
    Dropped,
    ErrorFrame,
    Frame,
    FrameReader,
    Nack,
    Rejected,
    encode_frame,
)

# UM0701-02 example: GetFirmwareVersion (command 02) from the host.
GET_FIRMWARE_VERSION = bytes.fromhex("0000FF02FED4022A00")

payloads = st.binary(min_size=0, max_size=MAX_DATA_BYTES - 1)


def test_the_user_manuals_get_firmware_version_frame() -> None:
    assert encode_frame(TFI_HOST_TO_PN532, b"\x02") == GET_FIRMWARE_VERSION
    assert FrameReader().feed(GET_FIRMWARE_VERSION) == [Frame(0xD4, b"\x02")]


def test_ack_nack_error_and_noise_between() -> None:
    stream = b"\xff\x55" + ACK + b"\x12" + NACK + ERROR_FRAME + GET_FIRMWARE_VERSION
    assert FrameReader().feed(stream) == [Ack(), Nack(), ErrorFrame(), Frame(0xD4, b"\x02")]


def test_bad_checksums_are_dropped_and_the_next_frame_still_reads() -> None:
    bad_dcs = bytearray(GET_FIRMWARE_VERSION)
    bad_dcs[-2] ^= 1
    bad_lcs = bytearray(GET_FIRMWARE_VERSION)
    bad_lcs[4] ^= 1
    reader = FrameReader()
    results = reader.feed(bytes(bad_dcs) + bytes(bad_lcs) + GET_FIRMWARE_VERSION)
    assert Dropped(Rejected.DATA_CHECKSUM) in results
    assert Dropped(Rejected.LENGTH_CHECKSUM) in results
    assert results[-1] == Frame(0xD4, b"\x02") and reader.dropped == 2


@given(st.sampled_from([0xD4, 0xD5]), payloads, st.integers(1, 40))
def test_round_trip_in_any_chunking(tfi: int, payload: bytes, chunk: int) -> None:
    wire = encode_frame(tfi, payload)
    reader = FrameReader()
    results = [r for i in range(0, len(wire), chunk) for r in reader.feed(wire[i : i + chunk])]
    assert results == [Frame(tfi, payload)]


@given(st.binary(max_size=600))
def test_any_bytes_never_crash_and_every_frame_is_in_the_input(noise: bytes) -> None:
    for result in FrameReader().feed(noise):
        if isinstance(result, Frame):
            assert encode_frame(result.tfi, result.payload)[1:] in noise  # checksums held


@given(payloads, st.data())
def test_a_changed_byte_is_never_accepted(payload: bytes, data: st.DataObject) -> None:
    wire = bytearray(encode_frame(0xD5, payload))
    index = data.draw(st.integers(3, len(wire) - 1))  # LEN through the postamble
    wire[index] ^= data.draw(st.integers(1, 255))
    frames = [r for r in FrameReader().feed(bytes(wire)) if isinstance(r, Frame)]
    assert Frame(0xD5, payload) not in frames
    for frame in frames:  # only a frame hidden in the payload, checksums and all
        assert encode_frame(frame.tfi, frame.payload)[1:] in bytes(wire)

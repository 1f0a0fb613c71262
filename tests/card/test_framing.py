"""The reader's wire protocols: pitill.card.framing (frames with ACK/NAK, and plain lines)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pitill.card.framing import (
    ACK_BYTES,
    ETX,
    NAK_BYTES,
    STX,
    DecodedFrame,
    FrameDecoder,
    FrameRejected,
    LineDecoder,
    RejectReason,
    Result,
    encode_frame,
    frame_lrc,
)

TRACK = b";4111111111111111=3012201?"
MAX = 64

payloads = st.binary(max_size=MAX).map(lambda b: bytes(x for x in b if x not in (STX, ETX)))
garbage = st.binary(max_size=200)


def feed_in_chunks(
    decoder: FrameDecoder | LineDecoder, stream: bytes, cuts: list[int]
) -> list[Result]:
    results: list[Result] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        results += decoder.feed(stream[start:cut])
        start = max(start, cut)
    return results


def decoded(results: list[Result]) -> list[bytes]:
    return [r.data for r in results if isinstance(r, DecodedFrame)]


def test_encode_frame_layout() -> None:
    assert encode_frame(b"AB") == bytes([STX, 0x41, 0x42, ETX, 0x41 ^ 0x42 ^ ETX])
    assert encode_frame(b"") == bytes([STX, ETX, ETX])


def test_encode_frame_refuses_control_bytes_in_data() -> None:
    with pytest.raises(ValueError, match="STX"):
        encode_frame(b"a\x03b")


def test_good_frame_is_acked() -> None:
    decoder = FrameDecoder()
    [result] = decoder.feed(encode_frame(TRACK))
    assert result == DecodedFrame(TRACK, ACK_BYTES)
    assert decoder.frames_ok == 1


def test_decoded_frame_repr_hides_the_track() -> None:
    assert "4111" not in repr(DecodedFrame(TRACK, ACK_BYTES))


def test_bad_lrc_is_naked_and_counted() -> None:
    frame = bytearray(encode_frame(TRACK))
    frame[-1] ^= 0x10
    decoder = FrameDecoder()
    [result] = decoder.feed(bytes(frame))
    assert result == FrameRejected(RejectReason.BAD_LRC, NAK_BYTES, len(frame))
    assert (decoder.frames_ok, decoder.frames_bad_lrc) == (0, 1)


def test_garbage_between_frames_is_dropped_and_counted() -> None:
    decoder = FrameDecoder()
    results = decoder.feed(b"\xff\x00noise" + encode_frame(TRACK) + b"xx" + encode_frame(b"2"))
    assert decoded(results) == [TRACK, b"2"]
    assert decoder.bytes_dropped == 9


def test_torn_frame_resyncs_on_the_next_stx() -> None:
    decoder = FrameDecoder()
    results = decoder.feed(encode_frame(TRACK)[:10] + encode_frame(TRACK))
    assert [type(r) for r in results] == [FrameRejected, DecodedFrame]
    assert results[0].reply == b""  # a torn frame is not NAKed: nothing to retransmit
    assert decoder.frames_torn == 1
    assert decoder.bytes_dropped == 10


def test_noise_frame_end_followed_by_a_frame_is_not_naked() -> None:
    # Noise "STX x ETX", then a real frame whose STX lands where the noise's LRC would be.
    decoder = FrameDecoder()
    results = decoder.feed(bytes([STX, 0x78, ETX]) + encode_frame(TRACK))
    assert decoded(results) == [TRACK]
    assert all(r.reply != NAK_BYTES for r in results)


def test_too_long_frame_is_dropped_and_memory_stays_bounded() -> None:
    decoder = FrameDecoder(max_data_len=8)
    results = decoder.feed(encode_frame(b"0123456789") + encode_frame(b"ok"))
    assert decoded(results) == [b"ok"]
    assert decoder.frames_too_long == 1
    assert results[0] == FrameRejected(RejectReason.TOO_LONG, b"", 10)


def test_reset_drops_the_partial_frame() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(TRACK)[:5])
    decoder.reset()
    assert decoder.pending == 0
    assert decoder.bytes_dropped == 5
    assert decoder.feed(encode_frame(TRACK)[5:]) == []


@given(st.lists(payloads, max_size=6), st.lists(st.integers(0, 600), max_size=8))
def test_round_trip_in_any_split(datas: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(d) for d in datas)
    decoder = FrameDecoder(max_data_len=MAX)
    results = feed_in_chunks(decoder, stream, cuts)
    assert decoded(results) == datas
    assert [r.reply for r in results] == [ACK_BYTES] * len(datas)
    assert decoder.bytes_dropped == 0 and decoder.pending == 0


@given(payloads, st.integers(0, 255))
def test_no_frame_with_a_bad_lrc_is_accepted(data: bytes, lrc: int) -> None:
    if lrc == frame_lrc(data):
        lrc ^= 0x01
    decoder = FrameDecoder(max_data_len=MAX)
    results = decoder.feed(bytes([STX]) + data + bytes([ETX, lrc]))
    assert decoded(results) == []
    assert decoder.frames_ok == 0


@given(garbage, st.lists(payloads, min_size=2, max_size=4), st.lists(st.integers(0, 600)))
def test_resync_within_one_frame_after_garbage(
    junk: bytes, datas: list[bytes], cuts: list[int]
) -> None:
    decoder = FrameDecoder(max_data_len=MAX)
    results = feed_in_chunks(decoder, junk + b"".join(encode_frame(d) for d in datas), cuts)
    got = decoded(results)
    # Garbage may swallow (or fake, with a 1-in-256 LRC) at most the first frame.
    assert got[-(len(datas) - 1) :] == datas[1:]


@given(st.lists(st.one_of(garbage, payloads.map(encode_frame)), max_size=12))
def test_fuzz_never_raises_stays_bounded_and_accounts_for_every_byte(parts: list[bytes]) -> None:
    decoder = FrameDecoder(max_data_len=MAX)
    stream = b"".join(parts)
    results: list[Result] = []
    for part in parts:
        results += decoder.feed(part)
        assert decoder.pending <= MAX + 2
    ok = [r for r in results if isinstance(r, DecodedFrame)]
    bad = [r for r in results if isinstance(r, FrameRejected) and r.reason is RejectReason.BAD_LRC]
    for frame in ok:
        assert encode_frame(frame.data) in stream  # only frames that really were on the line
    assert all(r.reply == NAK_BYTES for r in bad)
    accounted = sum(len(f.data) + 3 for f in ok) + sum(r.size for r in bad)
    assert accounted + decoder.bytes_dropped + decoder.pending == len(stream)
    assert (decoder.frames_ok, decoder.frames_bad_lrc) == (len(ok), len(bad))


def test_lines_in_any_terminator() -> None:
    decoder = LineDecoder()
    results = decoder.feed(TRACK + b"\r\n" + TRACK + b"\r" + TRACK + b"\n")
    assert decoded(results) == [TRACK] * 3
    assert all(r.reply == b"" for r in results)
    assert decoder.lines_ok == 3


def test_line_noise_before_the_sentinel_and_noise_lines_are_dropped() -> None:
    decoder = LineDecoder()
    results = decoder.feed(b"\x00\xffjunk\r\n" + b"zz" + TRACK + b"\r\n")
    assert decoded(results) == [TRACK]
    assert decoder.bytes_dropped == len(b"\x00\xffjunk\r\n") + 2 + 2


def test_too_long_line_is_dropped_up_to_its_end() -> None:
    decoder = LineDecoder(max_data_len=8)
    results = decoder.feed(b";" + b"9" * 20 + b"\r\n;12?\n")
    assert decoded(results) == [b";12?"]
    assert results[0] == FrameRejected(RejectReason.TOO_LONG, b"", 21)
    assert decoder.lines_too_long == 1


@given(st.lists(st.binary(max_size=80), max_size=10))
def test_line_fuzz_bounded_and_accounted(parts: list[bytes]) -> None:
    decoder = LineDecoder(max_data_len=MAX)
    ok: list[bytes] = []
    for part in parts:
        ok += decoded(decoder.feed(part))
        assert decoder.pending <= MAX
    assert all(line[:1] in (b"%", b";") and b"\r" not in line and b"\n" not in line for line in ok)
    total = sum(len(part) for part in parts)
    assert sum(map(len, ok)) + decoder.bytes_dropped + decoder.pending == total


@given(
    st.lists(st.sampled_from([TRACK, b"%B1^AB^3012201?"]), max_size=5),
    st.lists(st.integers(0, 300)),
)
def test_lines_round_trip_in_any_split(lines: list[bytes], cuts: list[int]) -> None:
    results = feed_in_chunks(LineDecoder(), b"".join(line + b"\r\n" for line in lines), cuts)
    assert decoded(results) == lines

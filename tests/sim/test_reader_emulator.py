"""The card reader emulator (pitill.sim.reader_emulator) against a scripted terminal.

The terminal side is played by the test over a real pty (pyserial on the slave), or, where the
shape of the writes matters, by an in-memory Link that records them.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import serial

from pitill.card.framing import (
    ACK_BYTES,
    ETX,
    NAK_BYTES,
    STX,
    DecodedFrame,
    FrameDecoder,
    FrameRejected,
    RejectReason,
    Result,
    encode_frame,
)
from pitill.card.track import build_track1, build_track2, parse_track
from pitill.errors import CardDataError
from pitill.sim.reader_emulator import (
    LINE_END,
    NOISE,
    TEST_CARDS,
    FdLink,
    ReaderEmulator,
    Reply,
    find_test_card,
    open_pty_pair,
)

WAIT_S = 5.0
PAN, EXPIRY = "4111111111111111", "3012"
TRACK2 = build_track2(PAN, EXPIRY)


class ScriptedTerminal:
    """The terminal's end of a pty: reads frames and answers as the test says."""

    def __init__(self, slave_path: str) -> None:
        self.port = serial.Serial(slave_path, 9600, timeout=0.05)
        self.decoder = FrameDecoder()
        self.raw = bytearray()
        self._results: list[Result] = []

    def next_result(self) -> Result:
        deadline = time.monotonic() + WAIT_S
        while not self._results:
            if time.monotonic() > deadline:
                pytest.fail(f"no frame from the emulator; got {bytes(self.raw)!r}")
            chunk = self.port.read(256)
            self.raw += chunk
            self._results += self.decoder.feed(chunk)
        return self._results.pop(0)

    def read_exactly(self, size: int) -> bytes:
        deadline = time.monotonic() + WAIT_S
        while len(self.raw) < size and time.monotonic() < deadline:
            self.raw += self.port.read(size - len(self.raw))
        return bytes(self.raw)

    def reply(self, data: bytes) -> None:
        self.port.write(data)


@pytest.fixture
def pty() -> Iterator[tuple[ReaderEmulator, ScriptedTerminal]]:
    master_fd, slave_path = open_pty_pair()
    terminal = ScriptedTerminal(slave_path)
    emulator = ReaderEmulator.from_fd(master_fd, reply_timeout_s=WAIT_S, max_retries=2)
    yield emulator, terminal
    terminal.port.close()
    emulator.close()


@pytest.fixture
def background() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


class RecordingLink:
    """An in-memory Link: records every write; each read after a write gets the next answer."""

    def __init__(self, *answers: bytes) -> None:
        self.writes: list[bytes] = []
        self._answers = list(answers)
        self._written = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self._written = True

    def read(self, timeout_s: float) -> bytes:
        if self._written and self._answers:
            self._written = False
            return self._answers.pop(0)
        time.sleep(min(timeout_s, 0.01))  # nothing scripted: behave like a quiet line
        return b""

    def close(self) -> None:
        pass


def test_framed_swipe_sends_one_frame_and_returns_the_ack(
    pty: tuple[ReaderEmulator, ScriptedTerminal], background: ThreadPoolExecutor
) -> None:
    emulator, terminal = pty
    swipe = background.submit(emulator.swipe, PAN, EXPIRY)
    assert terminal.next_result() == DecodedFrame(TRACK2.encode(), ACK_BYTES)
    terminal.reply(ACK_BYTES)
    result = swipe.result(WAIT_S)
    assert result.replies == (Reply.ACK,)
    assert str(result) == "ACK"
    assert bytes(terminal.raw) == encode_frame(TRACK2.encode())


def test_nak_makes_it_retransmit_up_to_max_retries(
    pty: tuple[ReaderEmulator, ScriptedTerminal], background: ThreadPoolExecutor
) -> None:
    emulator, terminal = pty
    swipe = background.submit(emulator.swipe, PAN, EXPIRY, track=1)
    for _ in range(1 + emulator.max_retries):
        frame = terminal.next_result()
        assert isinstance(frame, DecodedFrame)
        assert frame.data == build_track1(PAN, EXPIRY).encode()
        terminal.reply(NAK_BYTES)
    result = swipe.result(WAIT_S)
    assert result.replies == (Reply.NAK,) * 3
    assert result.accepted is False
    assert terminal.decoder.frames_ok == 3  # and no fourth frame was sent before the result


def test_no_answer_is_a_timeout(pty: tuple[ReaderEmulator, ScriptedTerminal]) -> None:
    emulator, terminal = pty
    emulator.reply_timeout_s = 0.05
    result = emulator.swipe(PAN, EXPIRY)
    assert result.replies == (Reply.TIMEOUT,)
    assert result.accepted is False
    assert isinstance(terminal.next_result(), DecodedFrame)


def test_bad_lrc_fault_corrupts_the_first_transmission_only(
    pty: tuple[ReaderEmulator, ScriptedTerminal], background: ThreadPoolExecutor
) -> None:
    emulator, terminal = pty
    swipe = background.submit(emulator.swipe, PAN, EXPIRY, fault="bad-lrc")
    first = terminal.next_result()
    assert isinstance(first, FrameRejected) and first.reason is RejectReason.BAD_LRC
    terminal.reply(first.reply)
    assert terminal.next_result() == DecodedFrame(TRACK2.encode(), ACK_BYTES)
    terminal.reply(ACK_BYTES)
    result = swipe.result(WAIT_S)
    assert result.replies == (Reply.NAK, Reply.ACK)
    assert str(result) == "NAK, ACK (accepted on attempt 2)"


def test_stale_replies_are_not_taken_for_the_answer(
    pty: tuple[ReaderEmulator, ScriptedTerminal], background: ThreadPoolExecutor
) -> None:
    emulator, terminal = pty
    terminal.reply(ACK_BYTES)  # left over from an earlier swipe that timed out
    assert select.select([emulator.link.fd], [], [], WAIT_S)[0]  # type: ignore[attr-defined]
    swipe = background.submit(emulator.swipe, PAN, EXPIRY)
    terminal.next_result()
    terminal.reply(NAK_BYTES)
    terminal.next_result()
    terminal.reply(ACK_BYTES)
    assert swipe.result(WAIT_S).replies == (Reply.NAK, Reply.ACK)


def test_noise_fault_surrounds_the_frame_with_bytes_that_cannot_start_a_frame(
    pty: tuple[ReaderEmulator, ScriptedTerminal], background: ThreadPoolExecutor
) -> None:
    emulator, terminal = pty
    swipe = background.submit(emulator.swipe, PAN, EXPIRY, fault="noise")
    assert isinstance(terminal.next_result(), DecodedFrame)
    terminal.reply(ACK_BYTES)
    assert swipe.result(WAIT_S).accepted
    frame = encode_frame(TRACK2.encode())
    assert terminal.read_exactly(2 * len(NOISE) + len(frame)) == NOISE + frame + NOISE
    assert not set(NOISE) & {STX, ETX, ord("\r"), ord("\n"), ord("%"), ord(";")}


def test_split_fault_writes_small_pieces() -> None:
    link = RecordingLink(ACK_BYTES)
    emulator = ReaderEmulator(link, split_chunk_bytes=3, split_delay_s=0.0)
    assert emulator.swipe(PAN, EXPIRY, fault="split").accepted
    assert len(link.writes) > 3 and all(len(piece) <= 3 for piece in link.writes)
    assert b"".join(link.writes) == encode_frame(TRACK2.encode())


def test_concat_fault_writes_two_frames_at_once_and_collects_both_answers() -> None:
    link = RecordingLink(ACK_BYTES + ACK_BYTES)
    emulator = ReaderEmulator(link)
    results = emulator.swipe_all(PAN, EXPIRY, fault="concat")
    assert [r.replies for r in results] == [(Reply.ACK,), (Reply.ACK,)]
    assert link.writes == [encode_frame(TRACK2.encode()) * 2]


def test_concat_retransmits_only_the_naked_frame() -> None:
    link = RecordingLink(NAK_BYTES + ACK_BYTES, ACK_BYTES)
    tracks = [TRACK2, build_track2("4000000000000002", EXPIRY)]
    results = ReaderEmulator(link).send_tracks(tracks, "framed", "concat")
    assert [r.replies for r in results] == [(Reply.NAK, Reply.ACK), (Reply.ACK,)]
    assert link.writes[1:] == [encode_frame(TRACK2.encode())]


def test_lines_format_sends_the_track_and_crlf() -> None:
    link = RecordingLink()
    result = ReaderEmulator(link).swipe(PAN, EXPIRY, fmt="lines", track=1)
    assert result.accepted is None
    assert str(result).startswith("sent")
    assert link.writes == [build_track1(PAN, EXPIRY).encode() + LINE_END]


def test_lines_bad_lrc_fault_sends_a_wrong_track_lrc() -> None:
    link = RecordingLink()
    ReaderEmulator(link).swipe(PAN, EXPIRY, fmt="lines", fault="bad-lrc")
    line = link.writes[0].decode("ascii").rstrip()
    with pytest.raises(CardDataError, match="LRC mismatch"):
        parse_track(line)


def test_serial_port_by_path(background: ThreadPoolExecutor) -> None:
    master_fd, slave_path = open_pty_pair()
    terminal = FdLink(master_fd)  # here the test is the terminal, on the master side
    try:
        with ReaderEmulator.open_port(slave_path, reply_timeout_s=WAIT_S) as emulator:
            swipe = background.submit(emulator.swipe, PAN, EXPIRY)
            decoder, frames = FrameDecoder(), []
            deadline = time.monotonic() + WAIT_S
            while not frames and time.monotonic() < deadline:
                frames += decoder.feed(terminal.read(0.05))
            assert frames == [DecodedFrame(TRACK2.encode(), ACK_BYTES)]
            terminal.write(ACK_BYTES)
            assert swipe.result(WAIT_S).replies == (Reply.ACK,)
    finally:
        terminal.close()


def test_pty_master_reads_nothing_while_no_terminal_is_attached() -> None:
    master_fd, slave_path = open_pty_pair()
    link = FdLink(master_fd)
    try:
        assert os.path.exists(slave_path) and os.isatty(master_fd)
        link.write(b"nobody listens")
        assert link.read(0.05) == b""  # EIO from the pty is "nothing yet", not an error
    finally:
        link.close()


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("approved", None),
        ("declined", None),
        ("expired", "EXPIRED CARD"),
        ("bad-luhn", "INVALID CARD"),
    ],
)
def test_test_cards(name: str, problem: str | None) -> None:
    card = TEST_CARDS[name]
    assert parse_track(build_track2(card.pan, card.expiry_yymm)).problem("2501") == problem


def test_find_test_card_by_any_spelling() -> None:
    assert find_test_card("BAD_LUHN") is TEST_CARDS["bad-luhn"]
    assert find_test_card(" Approved ") is TEST_CARDS["approved"]
    assert find_test_card("platinum") is None
    assert TEST_CARDS["approved"].pan == "4111111111111111"
    assert (TEST_CARDS["expired"].pan, TEST_CARDS["expired"].expiry_yymm) == (
        "5555555555554444",
        "2001",
    )


def test_closing_twice_closes_the_fd_once() -> None:
    master_fd, _ = open_pty_pair()
    emulator = ReaderEmulator.from_fd(master_fd)
    emulator.close()
    other_fd = os.open(os.devnull, os.O_RDONLY)  # may reuse the master's number
    try:
        emulator.close()
        os.fstat(other_fd)  # still open: the second close did not touch it
    finally:
        os.close(other_fd)


def test_a_terminal_that_never_reads_makes_writes_time_out() -> None:
    master_fd, slave_path = open_pty_pair()
    link = FdLink(master_fd, write_timeout_s=0.05)
    stalled = serial.Serial(slave_path, 9600, timeout=0)  # open, and never read
    try:
        with pytest.raises(TimeoutError, match="has not read"):
            for _ in range(10_000):  # the pty buffer holds far less than 10 MB
                link.write(b"x" * 1024)
    finally:
        stalled.close()
        link.close()

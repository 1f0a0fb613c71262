"""SerialCardReader over real pty pairs, driven by the reader emulator (pitill.sim.reader_emulator).

Every wait polls with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pitill.card.framing import encode_frame
from pitill.card.model import Card
from pitill.card.track import build_track1, build_track2
from pitill.config import ReaderConfig
from pitill.drivers.serial_reader import SerialCardReader
from pitill.errors import ConfigError
from pitill.sim.reader_emulator import NOISE, TEST_CARDS, ReaderEmulator, Reply, open_pty_pair

WAIT_S = 5.0  # a deadline for things that take milliseconds; only reached when a test fails
POLL_S = 0.01
APPROVED = TEST_CARDS["approved"]
DECLINED = TEST_CARDS["declined"]


class RecordingSink:
    """A CardSink that records what it is told, for tests that wait on it."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._changed = threading.Condition()

    def _add(self, *event: Any) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def card(self, card: Card) -> None:
        self._add("card", card)

    def unreadable(self, reason: str) -> None:
        self._add("unreadable", reason)

    def reader_status(self, connected: bool, detail: str) -> None:
        self._add("status", connected, detail)

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        with self._changed:
            return [event[1:] for event in self.events if event[0] == kind]

    @property
    def cards(self) -> list[Card]:
        return [event[0] for event in self.of("card")]

    @property
    def statuses(self) -> list[bool]:
        return [event[0] for event in self.of("status")]

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
        """Wake on every sink event, and poll too: conditions may also read reader.stats."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not condition():
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    pytest.fail(f"condition not met within {timeout_s} s; events: {self.events}")
                self._changed.wait(min(left_s, POLL_S))


class Bench:
    """A reader on a path, emulators on ptys behind it, and the sink they report to."""

    def __init__(self, path: str, protocol: str = "framed") -> None:
        self.path = path
        self.sink = RecordingSink()
        self.emulators: list[ReaderEmulator] = []
        self.reader = SerialCardReader(
            ReaderConfig(port=path, protocol=protocol),  # type: ignore[arg-type]
            read_timeout_s=0.05,
            reopen_initial_s=0.01,
            reopen_max_s=0.05,
        )

    @classmethod
    def on_new_pty(cls, protocol: str = "framed") -> tuple[Bench, ReaderEmulator]:
        """A bench whose reader is configured with a fresh pty's slave path."""
        emulator, slave_path = new_emulator()
        bench = cls(slave_path, protocol)
        bench.emulators.append(emulator)
        return bench, emulator

    def emulator(self) -> tuple[ReaderEmulator, str]:
        """Another pty (closed with the bench): its emulator and its slave path."""
        emulator, slave_path = new_emulator()
        self.emulators.append(emulator)
        return emulator, slave_path

    def start(self) -> None:
        self.reader.start(self.sink)

    def wait_connected(self, times: int = 1) -> None:
        self.sink.wait_for(lambda: self.sink.statuses.count(True) >= times)

    def close(self) -> None:
        self.reader.close()
        for emulator in self.emulators:
            with contextlib.suppress(OSError):  # already closed by the test
                emulator.close()


def new_emulator() -> tuple[ReaderEmulator, str]:
    master_fd, slave_path = open_pty_pair()
    return ReaderEmulator.from_fd(master_fd, reply_timeout_s=WAIT_S), slave_path


@pytest.fixture
def bench_factory() -> Iterator[Callable[..., tuple[Bench, ReaderEmulator]]]:
    benches: list[Bench] = []

    def make(protocol: str = "framed") -> tuple[Bench, ReaderEmulator]:
        bench, emulator = Bench.on_new_pty(protocol)
        benches.append(bench)
        bench.start()
        bench.wait_connected()
        return bench, emulator

    yield make
    for bench in benches:
        bench.close()


@pytest.fixture
def framed(
    bench_factory: Callable[..., tuple[Bench, ReaderEmulator]],
) -> tuple[Bench, ReaderEmulator]:
    return bench_factory("framed")


def card_of(pan: str, expiry: str) -> Card:
    return Card(pan=pan, expiry_yymm=expiry, service_code="201")


def test_valid_frame_is_acked_and_delivered(framed: tuple[Bench, ReaderEmulator]) -> None:
    bench, emulator = framed
    result = emulator.swipe(APPROVED.pan, APPROVED.expiry_yymm)
    assert result.replies == (Reply.ACK,)
    bench.sink.wait_for(lambda: len(bench.sink.cards) == 1)
    assert bench.sink.cards == [card_of(APPROVED.pan, APPROVED.expiry_yymm)]
    assert bench.reader.stats.frames_ok == 1
    assert bench.reader.connected


def test_bad_lrc_is_naked_and_the_retransmission_accepted_once(
    framed: tuple[Bench, ReaderEmulator],
) -> None:
    bench, emulator = framed
    result = emulator.swipe(APPROVED.pan, APPROVED.expiry_yymm, fault="bad-lrc")
    assert result.replies == (Reply.NAK, Reply.ACK)
    # A second, different card marks the end: a duplicate of the first would come before it.
    emulator.swipe(DECLINED.pan, DECLINED.expiry_yymm)
    bench.sink.wait_for(lambda: len(bench.sink.cards) >= 2)
    assert [c.pan for c in bench.sink.cards] == [APPROVED.pan, DECLINED.pan]
    assert bench.reader.stats.frames_bad_lrc == 1
    assert bench.sink.of("unreadable") == []


def test_split_frame_is_reassembled(framed: tuple[Bench, ReaderEmulator]) -> None:
    bench, emulator = framed
    assert emulator.swipe(APPROVED.pan, APPROVED.expiry_yymm, fault="split").accepted
    bench.sink.wait_for(lambda: len(bench.sink.cards) == 1)
    assert bench.sink.cards[0].pan == APPROVED.pan


def test_concatenated_frames_give_two_cards_in_order(framed: tuple[Bench, ReaderEmulator]) -> None:
    bench, emulator = framed
    tracks = [build_track2(APPROVED.pan, "3012"), build_track2(DECLINED.pan, "3012")]
    results = emulator.send_tracks(tracks, "framed", "concat")
    assert [r.replies for r in results] == [(Reply.ACK,), (Reply.ACK,)]
    bench.sink.wait_for(lambda: len(bench.sink.cards) == 2)
    assert [c.pan for c in bench.sink.cards] == [APPROVED.pan, DECLINED.pan]


def test_noise_between_frames_is_dropped_and_counted(framed: tuple[Bench, ReaderEmulator]) -> None:
    bench, emulator = framed
    assert emulator.swipe(APPROVED.pan, APPROVED.expiry_yymm, fault="noise").accepted
    assert emulator.swipe(DECLINED.pan, DECLINED.expiry_yymm, fault="noise").accepted
    # The trailing noise may be counted before or after the card is delivered: wait for both.
    bench.sink.wait_for(
        lambda: len(bench.sink.cards) == 2 and bench.reader.stats.bytes_dropped == 4 * len(NOISE)
    )
    assert [c.pan for c in bench.sink.cards] == [APPROVED.pan, DECLINED.pan]


def test_luhn_failing_card_is_delivered_for_the_core_to_refuse(
    framed: tuple[Bench, ReaderEmulator],
) -> None:
    bench, emulator = framed
    bad = TEST_CARDS["bad-luhn"]
    emulator.swipe(bad.pan, bad.expiry_yymm)
    bench.sink.wait_for(lambda: len(bench.sink.cards) == 1)
    assert bench.sink.cards[0].problem("2501") == "INVALID CARD"


def test_a_good_frame_with_no_track_is_unreadable_without_the_data(
    framed: tuple[Bench, ReaderEmulator],
) -> None:
    bench, emulator = framed
    emulator.send_raw(encode_frame(b";4111111111111111=30"))  # cut short inside the frame
    emulator.send_raw(encode_frame(b"\xff\xfe"))
    bench.sink.wait_for(lambda: len(bench.sink.of("unreadable")) == 2)
    reasons = [event[0] for event in bench.sink.of("unreadable")]
    assert "end sentinel" in reasons[0]
    assert "not ASCII" in reasons[1]
    assert not any("4111111111111111" in reason for reason in reasons)
    assert bench.reader.stats.unreadable == 2


def test_plain_track_lines(bench_factory: Callable[..., tuple[Bench, ReaderEmulator]]) -> None:
    bench, emulator = bench_factory("lines")
    result = emulator.swipe(APPROVED.pan, APPROVED.expiry_yymm, fmt="lines", track=1)
    assert result.accepted is None  # no ACK in the lines protocol
    emulator.swipe(DECLINED.pan, DECLINED.expiry_yymm, fmt="lines", fault="noise")
    emulator.swipe(APPROVED.pan, APPROVED.expiry_yymm, fmt="lines", fault="bad-lrc")
    emulator.send_raw(
        (build_track1(DECLINED.pan, "3012") + build_track2(DECLINED.pan, "3012")).encode() + b"\r"
    )
    bench.sink.wait_for(lambda: len(bench.sink.cards) == 3)
    assert [c.pan for c in bench.sink.cards] == [APPROVED.pan, DECLINED.pan, DECLINED.pan]
    assert bench.sink.cards[0].cardholder_name == "PITILL/TEST CARD"
    [(reason,)] = bench.sink.of("unreadable")
    assert "LRC mismatch" in reason


def test_sink_errors_do_not_stop_the_reader(framed: tuple[Bench, ReaderEmulator]) -> None:
    bench, emulator = framed
    calls: list[Card] = []
    record = bench.sink.card

    def failing_card(card: Card) -> None:
        calls.append(card)
        if len(calls) == 1:
            raise RuntimeError("sink broke")
        record(card)

    bench.sink.card = failing_card  # type: ignore[method-assign]
    emulator.swipe(APPROVED.pan, APPROVED.expiry_yymm)
    emulator.swipe(DECLINED.pan, DECLINED.expiry_yymm)
    bench.sink.wait_for(lambda: len(bench.sink.cards) == 1)
    assert [c.pan for c in calls] == [APPROVED.pan, DECLINED.pan]


def test_port_vanishes_and_comes_back(tmp_path: Path) -> None:
    link = tmp_path / "card-reader"
    bench = Bench(str(link))
    try:
        first, first_path = bench.emulator()
        link.symlink_to(first_path)
        bench.start()
        bench.wait_connected()

        first.close()  # the USB adapter is unplugged: its device node goes away
        link.unlink()
        bench.sink.wait_for(lambda: bench.sink.statuses == [True, False])
        assert not bench.reader.connected

        second, second_path = bench.emulator()
        link.symlink_to(second_path)
        bench.wait_connected(times=2)
        assert second.swipe(APPROVED.pan, APPROVED.expiry_yymm).accepted
        bench.sink.wait_for(lambda: len(bench.sink.cards) == 1)
        assert bench.sink.statuses == [True, False, True]  # told once per change, not per retry
        stats = bench.reader.stats
        assert (stats.disconnects, stats.connects) == (1, 2)
    finally:
        bench.close()


def test_missing_port_is_reported_then_found(tmp_path: Path) -> None:
    link = tmp_path / "ttyUSB-reader"
    bench = Bench(str(link))
    try:
        bench.start()
        bench.sink.wait_for(lambda: bench.sink.statuses == [False])
        [(_, detail)] = bench.sink.of("status")
        assert str(link) in detail and "not available" in detail
        emulator, emulator_path = bench.emulator()
        link.symlink_to(emulator_path)
        bench.wait_connected()
        assert emulator.swipe(APPROVED.pan, APPROVED.expiry_yymm).accepted
    finally:
        bench.close()


def test_close_stops_the_thread_while_reading_and_while_waiting(tmp_path: Path) -> None:
    reading, _ = Bench.on_new_pty()
    reading.start()
    reading.wait_connected()
    waiting = Bench(str(tmp_path / "absent"))
    waiting.start()
    waiting.sink.wait_for(lambda: waiting.sink.statuses == [False])
    for bench in (reading, waiting):
        bench.close()
        alive = [t for t in threading.enumerate() if t.name == f"card-reader {bench.path}"]
        assert alive == []


def test_start_twice_is_an_error(framed: tuple[Bench, ReaderEmulator]) -> None:
    bench, _ = framed
    with pytest.raises(RuntimeError, match="already"):
        bench.reader.start(bench.sink)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (ReaderConfig(port=""), "reader.port"),
        (ReaderConfig(baudrate=0), "reader.baudrate"),
        (ReaderConfig(protocol="binary"), "reader.protocol"),  # type: ignore[arg-type]
    ],
)
def test_config_errors_name_the_key(config: ReaderConfig, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        config.validate("reader")
    with pytest.raises(ConfigError, match=key):
        SerialCardReader(config)


def test_default_config_is_valid() -> None:
    ReaderConfig().validate("reader")
    assert ReaderConfig() == ReaderConfig("/dev/serial0", 9600, "framed")

"""The PN532 reader: nfcpy's real PN532 driver over a real pty, answered by the PN532 emulator."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pitill.card.model import CardTier, ReadBy
from pitill.card.sun import verify_sun
from pitill.config import ReaderConfig
from pitill.drivers.pn532_reader import Pn532Reader
from pitill.sim.pn532_emulator import ClonedTag, Ntag424Tag, Pn532Emulator, UidTag
from reader_sink import QueueSink

WAIT_S = 10.0  # bound on every wait for the reader thread; never reached when things work
META_KEY = bytes(range(16))
MASTER_KEY = bytes(range(16, 32))
UID = bytes.fromhex("04A1B2C3D4E5F6")


@pytest.fixture
def emulator() -> Iterator[Pn532Emulator]:
    with Pn532Emulator() as emulator:
        yield emulator


def start(
    emulator: Pn532Emulator, meta_key: bytes | None = META_KEY
) -> tuple[Pn532Reader, QueueSink]:
    config = ReaderConfig(port=emulator.slave_path, type="pn532", nfc_poll_s=0.02)
    reader = Pn532Reader(config, meta_key=meta_key)
    sink = QueueSink()
    reader.start(sink)
    # A busy machine can miss nfcpy's 100 ms wait for the first ACK: the reader then retries.
    assert sink.until_connected() == f"PN532v1.6 on {emulator.slave_path}"
    return reader, sink


def wait_gone(emulator: Pn532Emulator) -> None:
    """Until the tag has left the field (its polls are used up): a bounded wait, not a timing."""
    deadline = time.monotonic() + WAIT_S
    while emulator.tag_in_field() is not None:
        assert time.monotonic() < deadline, "the tag never left the field"
        time.sleep(0.01)


def test_a_uid_tag_held_on_the_reader_is_one_tap(emulator: Pn532Emulator) -> None:
    reader, sink = start(emulator)
    try:
        emulator.tap(UidTag(UID), polls=5)
        card = sink.next_card()
        assert (card.uid, card.tier, card.read_by) == (
            UID.hex().upper(),
            CardTier.UID_ONLY,
            ReadBy.PN532,
        )
        wait_gone(emulator)
        assert emulator.stats.commands["InListPassiveTarget"] >= 6  # seen on five polls
        emulator.tap(UidTag(bytes.fromhex("04AAAAAAAAAAAA")), polls=2)
        assert sink.next_card().uid == "04AAAAAAAAAAAA"  # the held tag gave exactly one card
        assert reader.taps == 2
    finally:
        reader.close()


def test_ntag424_taps_give_sun_cards_that_the_host_verifies(emulator: Pn532Emulator) -> None:
    reader, sink = start(emulator)
    tag = Ntag424Tag.enrolled(UID, META_KEY, MASTER_KEY)
    try:
        emulator.tap(tag)
        first = sink.next_card()
        wait_gone(emulator)
        emulator.tap(tag)
        second = sink.next_card()
        assert first.tier is CardTier.SUN and first.uid == UID.hex().upper()
        assert (first.sun_counter, second.sun_counter) == (1, 2)
        for card in (first, second):
            assert card.sun is not None
            assert verify_sun(META_KEY, MASTER_KEY, card.sun).counter == card.sun_counter
    finally:
        reader.close()


def test_a_clone_replays_the_last_message_with_its_old_counter(emulator: Pn532Emulator) -> None:
    reader, sink = start(emulator)
    tag = Ntag424Tag.enrolled(UID, META_KEY, MASTER_KEY)
    try:
        emulator.tap(tag)
        original = sink.next_card()
        wait_gone(emulator)
        emulator.tap(ClonedTag(uid=UID, url=tag.last_url))
        clone = sink.next_card()
        assert clone.sun == original.sun and clone.sun_counter == original.sun_counter
    finally:
        reader.close()


def test_a_tag_pulled_away_mid_read_is_tap_again_and_the_next_tap_reads(
    emulator: Pn532Emulator,
) -> None:
    reader, sink = start(emulator)
    tag = Ntag424Tag.enrolled(UID, META_KEY, MASTER_KEY)
    try:
        emulator.tap(tag, pull_after_exchanges=3)
        assert sink.next() == ("unreadable", "Card moved away too soon: tap again")
        wait_gone(emulator)
        emulator.tap(tag)
        assert sink.next_card().tier is CardTier.SUN
    finally:
        reader.close()


def test_random_uids_and_other_programs_cards_are_refused(emulator: Pn532Emulator) -> None:
    reader, sink = start(emulator)
    try:
        emulator.tap(UidTag(bytes.fromhex("08123456")))
        kind, reason = sink.next()
        assert kind == "unreadable" and "random UID" in str(reason)
        wait_gone(emulator)
        emulator.tap(Ntag424Tag.enrolled(UID, bytes(16), MASTER_KEY))  # another meta key
        kind, reason = sink.next()
        assert kind == "unreadable" and "cannot read" in str(reason)
    finally:
        reader.close()


def test_without_a_meta_key_every_tag_is_uid_only(emulator: Pn532Emulator) -> None:
    reader, sink = start(emulator, meta_key=None)
    try:
        emulator.tap(Ntag424Tag.enrolled(UID, META_KEY, MASTER_KEY))
        assert sink.next_card().tier is CardTier.UID_ONLY
    finally:
        reader.close()


def test_no_pn532_on_the_port_is_reported_and_retried(tmp_path: object) -> None:
    reader = Pn532Reader(ReaderConfig(port="/dev/nonexistent-pn532", type="pn532"))
    sink = QueueSink()
    reader.start(sink)
    try:
        kind, (connected, detail) = sink.next()  # type: ignore[misc]
        assert kind == "status" and connected is False
        assert "no PN532 on /dev/nonexistent-pn532" in detail and "HSU" in detail
    finally:
        reader.close()

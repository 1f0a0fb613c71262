"""`pitill card enroll` on the emulated PN532: a blank NTAG 424 DNA comes out as a card of the
program whose taps the host verifies; an enrolled tag is locked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pitill.card.model import Card, CardTier
from pitill.card.sun import card_app_key, card_file_key, verify_sun
from pitill.config import ReaderConfig
from pitill.drivers.pn532_reader import Pn532Reader
from pitill.enroll import EnrollError, enroll
from pitill.sim.pn532_emulator import Ntag424Tag, Pn532Emulator
from pitill_cli import PITILL
from reader_sink import QueueSink

MASTER = bytes(range(32, 48))
META = bytes(range(48, 64))
UID = bytes.fromhex("04112233445566")


def test_enroll_a_blank_tag_then_its_taps_verify_on_the_host() -> None:
    blank = Ntag424Tag.blank(UID)
    lines: list[str] = []
    with Pn532Emulator() as emulator:
        emulator.tap(blank, polls=1000)
        assert enroll(emulator.slave_path, MASTER, META, say=lines.append) == UID.hex().upper()
        assert blank.keys[:3] == [card_app_key(MASTER, UID), META, card_file_key(MASTER, UID)]
        assert blank.sdm is not None
        assert lines[0] == "tag 04112233445566: an ISO 14443-4 tag"
        assert any(line.startswith("set key 0") and "locked" in line for line in lines)
        emulator.lift()
        reader = Pn532Reader(
            ReaderConfig(port=emulator.slave_path, type="pn532", nfc_poll_s=0.02), meta_key=META
        )
        sink = QueueSink()
        reader.start(sink)
        try:
            emulator.tap(blank)
            sink.until_connected()
            card = sink.next_card()
        finally:
            reader.close()
    assert isinstance(card, Card) and card.tier is CardTier.SUN and card.sun is not None
    assert verify_sun(META, MASTER, card.sun).counter == card.sun_counter == 1


def test_an_enrolled_tag_cannot_be_enrolled_again() -> None:
    with Pn532Emulator() as emulator:
        emulator.tap(Ntag424Tag.enrolled(UID, META, MASTER), polls=1000)
        with pytest.raises(EnrollError, match="write the NDEF file: the tag answered 6982"):
            enroll(emulator.slave_path, MASTER, META, say=lambda _: None)


def test_no_tag_on_the_reader() -> None:
    with Pn532Emulator() as emulator, pytest.raises(EnrollError, match="no tag on the reader"):
        enroll(emulator.slave_path, MASTER, META, say=lambda _: None)


def test_the_command_prints_each_step(tmp_path: Path) -> None:
    master, meta = tmp_path / "master.key", tmp_path / "meta.key"
    master.write_text(MASTER.hex(), encoding="ascii")
    meta.write_text(META.hex(), encoding="ascii")
    keys = ["--master-key-file", str(master), "--meta-key-file", str(meta)]
    with Pn532Emulator() as emulator:
        emulator.tap(Ntag424Tag.blank(UID), polls=1000)
        done = subprocess.run(
            [*PITILL, "card", "enroll", "--port", emulator.slave_path, *keys],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.splitlines()[-1]
    assert last == "enrolled tag 04112233445566: its taps now read as tier sun"
    meta.write_text("12", encoding="ascii")
    bad = subprocess.run(
        [*PITILL, "card", "enroll", "--port", "/dev/null", *keys],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--meta-key-file" in bad.stderr and "holds 1 bytes" in bad.stderr
    master.write_text("not hex", encoding="ascii")
    wrong = subprocess.run(
        [*PITILL, "card", "enroll", "--port", "/dev/null", *keys],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert wrong.returncode != 0 and wrong.stderr.count("\n") == 1, wrong.stderr
    assert "--master-key-file" in wrong.stderr and "the program master key" in wrong.stderr
    assert "meta read key" not in wrong.stderr  # the master key is not the meta key

"""Sealing of card data: round trip, key file handling, and every way opening must fail closed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from journal_helpers import card, pan_for

from pitill.card.model import Card
from pitill.errors import SealError
from pitill.journal.seal import KEY_FILE_NAME, KEY_SIZE_BYTES, Sealer


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / KEY_FILE_NAME


def test_round_trip_keeps_pan_and_expiry_only(key_path: Path) -> None:
    sealer = Sealer.load_or_create(key_path)
    original = card(7)
    blob = sealer.seal(7, original)
    opened = sealer.open(7, blob)
    assert opened == Card(pan=original.pan, expiry_yymm=original.expiry_yymm)
    assert opened.service_code == "" and opened.cardholder_name == ""  # never sealed
    assert original.pan.encode() not in blob
    assert b"A B" not in blob and b"2812" not in blob


def test_each_seal_uses_a_fresh_nonce_and_hides_the_pan_length(key_path: Path) -> None:
    sealer = Sealer.load_or_create(key_path)
    blobs = {sealer.seal(1, card(1)) for _ in range(20)}
    assert len(blobs) == 20
    short = Card(pan="4111111111111", expiry_yymm="2812")  # 13 digits
    long = Card(pan="4111111111111111111", expiry_yymm="2812")  # 19 digits
    assert len(sealer.seal(1, short)) == len(sealer.seal(1, long))


def test_key_is_created_at_first_seal_owner_only(key_path: Path) -> None:
    sealer = Sealer.load_or_create(key_path)
    assert not key_path.exists() and not sealer.has_key
    sealer.seal(1, card(1))
    info = key_path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_size == KEY_SIZE_BYTES
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    assert [p.name for p in key_path.parent.iterdir()] == [KEY_FILE_NAME]  # no temp file left


def test_key_survives_a_reload(key_path: Path) -> None:
    blob = Sealer.load_or_create(key_path).seal(3, card(3))
    reloaded = Sealer.load_or_create(key_path)
    assert reloaded.open(3, blob).pan == pan_for(3)


def test_an_existing_key_is_never_replaced(key_path: Path) -> None:
    first = Sealer.load_or_create(key_path)  # no key yet
    second = Sealer.load_or_create(key_path)
    blob = second.seal(1, card(1))  # creates the file
    first.seal(1, card(1))  # must load that file, not make another
    assert first.key_id == second.key_id
    assert first.open(1, blob).pan == pan_for(1)


def test_group_or_world_readable_key_is_refused(key_path: Path) -> None:
    Sealer.load_or_create(key_path).seal(1, card(1))
    os.chmod(key_path, 0o640)
    with pytest.raises(SealError, match=r"mode 0640.*chmod 600"):
        Sealer.load_or_create(key_path)


@pytest.mark.parametrize("size", [0, 16, KEY_SIZE_BYTES + 1])
def test_key_of_the_wrong_size_is_refused(key_path: Path, size: int) -> None:
    key_path.parent.mkdir()
    key_path.write_bytes(b"k" * size)
    key_path.chmod(0o600)
    with pytest.raises(SealError, match=f"exactly {KEY_SIZE_BYTES}"):
        Sealer.load_or_create(key_path)


def test_wrong_key_fails_closed_and_names_both_keys(key_path: Path, tmp_path: Path) -> None:
    blob = Sealer.load_or_create(key_path).seal(1, card(1))
    other = Sealer.load_or_create(tmp_path / "other" / KEY_FILE_NAME)
    other.seal(1, card(1))
    with pytest.raises(SealError, match="wrong seal key") as caught:
        other.open(1, blob)
    assert blob[1:9].hex() in str(caught.value) and str(other.key_id) in str(caught.value)


def test_missing_key_fails_closed_and_is_not_recreated(key_path: Path) -> None:
    blob = Sealer.load_or_create(key_path).seal(1, card(1))
    key_path.unlink()
    sealer = Sealer.load_or_create(key_path)
    with pytest.raises(SealError, match=r"missing.*Restore"):
        sealer.open(1, blob)
    with pytest.raises(SealError, match="missing"):
        sealer.check(1, blob)
    assert not key_path.exists()


def test_tampered_blob_fails_closed(key_path: Path) -> None:
    sealer = Sealer.load_or_create(key_path)
    blob = bytearray(sealer.seal(1, card(1)))
    blob[-20] ^= 0x01  # one bit of the ciphertext
    with pytest.raises(SealError, match="altered"):
        sealer.open(1, bytes(blob))


def test_blob_moved_to_another_seq_does_not_open(key_path: Path) -> None:
    sealer = Sealer.load_or_create(key_path)
    blob = sealer.seal(1, card(1))
    with pytest.raises(SealError, match="another transaction"):
        sealer.open(2, blob)


@pytest.mark.parametrize("blob", [b"", b"\x01short", b"\x02" + bytes(60), "\x01" * 61])
def test_malformed_blob_fails_closed(key_path: Path, blob: bytes | str) -> None:
    sealer = Sealer.load_or_create(key_path)
    sealer.seal(1, card(1))
    with pytest.raises(SealError, match="malformed"):
        sealer.open(1, blob)  # type: ignore[arg-type]  # a str is what a bad UPDATE leaves


@pytest.mark.parametrize(
    "bad",
    [Card(pan="4111-1111", expiry_yymm="2812"), Card(pan="4111111111111111", expiry_yymm="28")],
)
def test_seal_refuses_what_is_not_a_pan_and_expiry(key_path: Path, bad: Card) -> None:
    with pytest.raises(SealError, match="cannot seal"):
        Sealer.load_or_create(key_path).seal(1, bad)

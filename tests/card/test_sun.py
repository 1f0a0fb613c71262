"""NTAG 424 DNA SUN crypto against NXP's published worked examples, and counter replay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pitill.card.model import SunMessage
from pitill.card.sun import (
    aes_cmac,
    card_file_key,
    counter_is_fresh,
    decrypt_picc_data,
    diversify_key,
    make_sun,
    sdmmac,
    session_mac_key,
    sun_from_url,
    sun_url,
    verify_sun,
)
from pitill.errors import SunError

ZERO_KEY = bytes(16)

# NXP AN12196 (NTAG 424 DNA features and hints), SUN message with encrypted PICCData and SDMMAC,
# SDMMetaReadKey and SDMFileReadKey both the factory key (16 zero bytes):
#   ...?picc_data=EF963FF7828658A599F3041510671E88&cmac=94EED9EE65337086
AN12196_PICC = bytes.fromhex("EF963FF7828658A599F3041510671E88")
AN12196_CMAC = bytes.fromhex("94EED9EE65337086")
AN12196_UID = bytes.fromhex("04DE5F1EACC040")
AN12196_COUNTER = 0x3D  # SDMReadCtr 3D0000, least significant byte first
AN12196_SESSION_MAC_KEY = bytes.fromhex("3FB5F6E3A807A03D5E3570ACE393776F")

# NXP AN10922 (symmetric key diversifications), AES-128 example: UID 04782E21801D80,
# AID 3042F5, system identifier "NXP Abu".
AN10922_MASTER = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
AN10922_INPUT = bytes.fromhex("04782E21801D80" + "3042F5" + "4E585020416275")
AN10922_KEY = bytes.fromhex("A8DD63A3B89D54B37CA802473FDA9175")

# NIST SP 800-38B, AES-128 CMAC examples (key 2B7E1516...).
NIST_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")


def test_cmac_matches_nist_sp800_38b() -> None:
    assert aes_cmac(NIST_KEY, b"").hex() == "bb1d6929e95937287fa37d129b756746"
    message = bytes.fromhex("6BC1BEE22E409F96E93D7E117393172A")
    assert aes_cmac(NIST_KEY, message).hex() == "070a16b46b4d4144f79bdd9dd04a287c"


def test_an12196_picc_data_decrypts_to_uid_and_counter() -> None:
    picc = decrypt_picc_data(ZERO_KEY, AN12196_PICC)
    assert picc.uid == AN12196_UID
    assert picc.counter == AN12196_COUNTER


def test_an12196_session_key_and_sdmmac() -> None:
    assert session_mac_key(ZERO_KEY, AN12196_UID, AN12196_COUNTER) == AN12196_SESSION_MAC_KEY
    assert sdmmac(ZERO_KEY, AN12196_UID, AN12196_COUNTER) == AN12196_CMAC


def test_an10922_aes128_diversification() -> None:
    assert diversify_key(AN10922_MASTER, AN10922_INPUT) == AN10922_KEY


def test_diversification_pads_short_inputs_to_two_blocks() -> None:
    # Under 16 bytes a plain CMAC would pad to one block; AN10922 pads to two.
    short = bytes.fromhex("04782E21801D80")
    assert diversify_key(AN10922_MASTER, short) != aes_cmac(AN10922_MASTER, b"\x01" + short)
    # At 31 bytes no padding: then it is exactly CMAC(0x01 || M).
    full = bytes(range(31))
    assert diversify_key(AN10922_MASTER, full) == aes_cmac(AN10922_MASTER, b"\x01" + full)


def test_verify_accepts_a_message_made_with_the_cards_diversified_key() -> None:
    meta, master = bytes(range(16)), bytes(range(16, 32))
    uid = bytes.fromhex("04A1B2C3D4E5F6")
    message = make_sun(meta, card_file_key(master, uid), uid, 7, b"\x01\x02\x03\x04\x05")
    picc = verify_sun(meta, master, message)
    assert (picc.uid, picc.counter) == (uid, 7)


def test_verify_refuses_another_programs_card_and_an_altered_mac() -> None:
    meta, master = bytes(range(16)), bytes(range(16, 32))
    uid = bytes.fromhex("04A1B2C3D4E5F6")
    message = make_sun(meta, card_file_key(master, uid), uid, 7, bytes(5))
    with pytest.raises(SunError, match="does not match"):
        verify_sun(meta, bytes(16), message)
    flipped = SunMessage(message.picc_data, bytes([message.sdmmac[0] ^ 1]) + message.sdmmac[1:])
    with pytest.raises(SunError, match="does not match"):
        verify_sun(meta, master, flipped)


def test_wrong_meta_key_is_named() -> None:
    with pytest.raises(SunError, match="wrong meta read key"):
        decrypt_picc_data(bytes(range(16)), AN12196_PICC)


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=8, max_size=8))
def test_random_sun_data_never_verifies(picc: bytes, mac: bytes) -> None:
    with pytest.raises(SunError):
        verify_sun(ZERO_KEY, bytes(range(16)), SunMessage(picc, mac))


def test_counter_must_only_go_up() -> None:
    assert counter_is_fresh(None, 0)
    assert counter_is_fresh(4, 5)
    assert not counter_is_fresh(5, 5)  # a clone replaying the last message
    assert not counter_is_fresh(5, 3)


def test_sun_message_hex_round_trip_and_bad_text() -> None:
    message = SunMessage(AN12196_PICC, AN12196_CMAC)
    assert message.hex() == "EF963FF7828658A599F3041510671E88:94EED9EE65337086"
    assert SunMessage.from_hex(message.hex()) == message
    with pytest.raises(ValueError, match="hex digits"):
        SunMessage.from_hex("EF96")


def test_sun_url_round_trip_and_urls_without_sun() -> None:
    message = SunMessage(AN12196_PICC, AN12196_CMAC)
    url = sun_url(message)
    assert "picc_data=EF963FF7828658A599F3041510671E88&cmac=94EED9EE65337086" in url
    assert sun_from_url(url) == message
    assert sun_from_url("https://example.org/x") is None
    assert sun_from_url("https://example.org/x?picc_data=zz&cmac=00") is None
    assert sun_from_url("https://example.org/x?picc_data=00&cmac=00") is None  # wrong lengths

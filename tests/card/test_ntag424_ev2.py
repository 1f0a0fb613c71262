"""NTAG 424 DNA secure messaging against the worked examples of NXP AN12196 (NTAG 424 DNA and
NTAG 424 DNA TagTamper features and hints): AuthenticateEV2First, CommMode.MAC and FULL."""

from __future__ import annotations

import pytest

from pitill.card.ntag424_ev2 import (
    Session,
    authenticate_part1,
    authenticate_part2,
    change_key_data,
    mact,
    pad,
)
from pitill.errors import SunError

H = bytes.fromhex
KEY0 = bytes(16)


def test_authenticate_ev2_first_with_key_0() -> None:
    # AN12196 section 6.6: authentication with the factory key 0.
    rnda = H("13C5DB8A5930439FC3DEF9A4C675360F")
    answer, rndb = authenticate_part1(KEY0, H("A04C124213C186F22399D33AC2A30215"), rnda)
    assert answer == H("35C3E05A752E0144BAC0DE51C1F22C56B34408A23D8AEA266CAB947EA8E0118D")
    session = authenticate_part2(
        KEY0, rnda, rndb, H("3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F08120663")
    )
    assert session.ti == H("9D00C4DF")
    assert session.k_enc == H("1309C877509E5A215007FF0ED19CA564")
    assert session.k_mac == H("4C6626F5E72EA694202139295C7A7FC7")


def test_authenticate_ev2_first_second_example() -> None:
    # AN12196 section 6.10.
    rnda = H("B98F4C50CF1C2E084FD150E33992B048")
    answer, rndb = authenticate_part1(KEY0, H("B875CEB0E66A6C5CD00898DC371F92D1"), rnda)
    assert answer == H("FF0306E47DFBC50087C4D8A78E88E62DE1E8BE457AA477C707E2F0874916A8B1")
    session = authenticate_part2(
        KEY0, rnda, rndb, H("0CC9A8094A8EEA683ECAAC5C7BF20584206D0608D477110FC6B3D5D3F65C3A6A")
    )
    assert (session.ti, session.k_enc, session.k_mac) == (
        H("7614281A"),
        H("7A93D6571E4B180FCA6AC90C9A7488D4"),
        H("FC4AF159B62E549B5812394CAB1918CC"),
    )


def test_a_tag_without_the_key_is_refused() -> None:
    rnda = H("13C5DB8A5930439FC3DEF9A4C675360F")
    _, rndb = authenticate_part1(KEY0, H("A04C124213C186F22399D33AC2A30215"), rnda)
    with pytest.raises(SunError, match="does not hold this key"):
        authenticate_part2(KEY0, rnda, rndb, bytes(32))


def test_command_and_response_in_mac_mode() -> None:
    # AN12196 section 5.3: GetFileSettings (F5) of file 02 in CommMode.MAC.
    session = Session(ti=H("7A21085E"), k_enc=KEY0, k_mac=H("8248134A386E86EB7FAF54A52E536CB6"))
    assert mact(session.k_mac, H("F500007A21085E02")) == H("6597A457C8CD442C")
    assert session.mac_command(0xF5, header=b"\x02") == H("026597A457C8CD442C")
    data = session.check_response(
        0x00, H("0040EEEE000100D1FE001F00004400004400002000006A00002A474282E7A47986")
    )
    assert data == H("0040EEEE000100D1FE001F00004400004400002000006A0000")
    assert session.cmd_counter == 1


def test_command_data_in_full_mode() -> None:
    # AN12196 section 6.12: WriteData (8D) of 10 bytes to file 03 in CommMode.FULL.
    session = Session(
        ti=H("7614281A"),
        k_enc=H("7A93D6571E4B180FCA6AC90C9A7488D4"),
        k_mac=H("FC4AF159B62E549B5812394CAB1918CC"),
    )
    sent = session.full_command(0x8D, H("030000000A0000"), H("0102030405060708090A"))
    assert sent == H("030000000A00006B5E6804909962FC4E3FF5522CF0F8436C0C53315B9C73AA")
    assert session.check_response(0x00, H("C26D236E4A7C046D")) == b""


def test_response_data_in_full_mode() -> None:
    # AN12196 section 7.3: GetCardUID (51), the UID comes back encrypted.
    session = Session(
        ti=H("DF055522"),
        k_enc=H("2B4D963C014DC36F24F69A50A394F875"),
        k_mac=H("379D32130CE61705DD5FD8C36B95D764"),
    )
    assert session.full_command(0x51) == H("8E2C155ADDA99BE3")
    data = session.check_response(0x00, H("70756055688505B52A5E26E59E329CD6595F672298EA41B7"))
    assert session.decrypt_response(data) == H("04958CAA5C5E80")


def test_a_changed_response_is_refused_and_padding_is_always_added() -> None:
    session = Session(ti=H("DF055522"), k_enc=KEY0, k_mac=KEY0)
    with pytest.raises(SunError, match="MAC does not match"):
        session.check_response(0x00, bytes(8))
    assert pad(bytes(16)) == bytes(16) + b"\x80" + bytes(15)


# AN12196 tables 25-27: ChangeKey in the session of section 6.10 (command counter at 2, then 3).
CHANGE_KEY_SESSION = {
    "ti": H("7614281A"),
    "k_enc": H("4CF3CB41A22583A61E89B158D252FC53"),
    "k_mac": H("5529860B2FC5FB6154B7F28361D30BF9"),
}


def test_change_key_of_another_key() -> None:
    session = Session(**CHANGE_KEY_SESSION, cmd_counter=2)
    new_key = H("F3847D627727ED3BC9C4CC050489B966")
    plain = change_key_data(2, new_key, version=1, old_key=bytes(16))
    assert pad(plain) == H("F3847D627727ED3BC9C4CC050489B96601789DFADC8000000000000000000000")
    sent = session.full_command(0xC4, b"\x02", plain)
    assert sent == H(
        "022CF362B7BF4311FF3BE1DAA295E8C68DE09050560D19B9E16C2393AE9CD1FAC75D0CE20BCD1D06E6"
    )
    assert session.check_response(0x00, H("203BB55D1089D587")) == b""


def test_change_key_of_the_session_key() -> None:
    session = Session(**CHANGE_KEY_SESSION, cmd_counter=3)
    plain = change_key_data(0, H("5004BF991F408672B1EF00F08F9E8647"), version=1)
    sent = session.full_command(0xC4, b"\x00", plain)
    assert sent == H(
        "00C0EB4DEEFEDDF0B513A03A95A75491818580503190D4D05053FF75668A01D6FDA6610234BDED6432"
    )
    with pytest.raises(SunError, match="needs its old"):
        change_key_data(1, bytes(16), version=1)

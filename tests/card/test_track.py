"""ISO 7813 track parsing and building: pitill.card.track."""

from __future__ import annotations

from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pitill.card.model import Card, luhn_ok
from pitill.card.track import (
    build_track1,
    build_track2,
    parse_track,
    parse_track1,
    parse_track2,
    split_tracks,
    track_lrc,
)
from pitill.errors import CardDataError

PAN = "4111111111111111"
TRACK2 = ";4111111111111111=3012201123?"
TRACK1 = "%B4111111111111111^DOE/JANE             ^3012201000000000123?"

pans = st.text(alphabet="0123456789", min_size=1, max_size=19)
yymms = st.from_regex(r"\A[0-9]{2}(0[1-9]|1[0-2])\Z")
service_codes = st.from_regex(r"\A[0-9]{3}\Z")
names = st.from_regex(r"\A[A-Z][A-Z /.]{0,24}[A-Z]\Z")


def stripe_parity_ok(text: str, offset: int, bits: int) -> bool:
    """The stripe's defining property of an LRC: every data-bit row XORs to zero."""
    codes = [ord(char) - offset for char in text]
    return all(0 <= code < 1 << bits for code in codes) and reduce(int.__xor__, codes) == 0


def test_track2_fields() -> None:
    card = parse_track2(TRACK2)
    assert card == Card(pan=PAN, expiry_yymm="3012", service_code="201")


def test_track1_fields_and_name_without_padding() -> None:
    card = parse_track1(TRACK1)
    assert (card.pan, card.expiry_yymm, card.service_code) == (PAN, "3012", "201")
    assert card.cardholder_name == "DOE/JANE"


def test_known_track2_lrc_can_be_the_end_sentinel_character() -> None:
    # By hand: ; 4 1x15 = 3 0 1 2 2 0 1 ? are 11 4 1 13 3 0 1 2 2 0 1 15; their XOR is 15 = '?'.
    assert track_lrc(";4111111111111111=3012201?") == "?"
    assert parse_track2(";4111111111111111=3012201??").pan == PAN


def test_known_track1_lrc() -> None:
    # By hand: % B 1 ^ A B ^ 3 0 1 2 2 0 1 ? are 5 34 17 62 33 34 62 19 16 17 18 18 16 17 31;
    # their XOR is 57, and 0x20 + 57 is 'Y'.
    assert track_lrc("%B1^AB^3012201?") == "Y"
    assert parse_track1("%B1^AB^3012201?Y").pan == "1"


def test_built_tracks_make_every_bit_row_even() -> None:
    assert stripe_parity_ok(build_track2(PAN, "3012", with_lrc=True), 0x30, 4)
    assert stripe_parity_ok(build_track1(PAN, "3012", "DOE/J", with_lrc=True), 0x20, 6)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no track data"),
        ("4111111111111111=3012201?", "start sentinel"),
        (";4111111111111111=3012201", "end sentinel"),
        (";41111111111111113012201?", "'=' separator"),
        (";4111111111111111=301?", "expiry"),
        (";4111111111111111=3012 0?", "service code"),
        (";4111111111111111=3012201A?", "discretionary"),
        (";4111111111111111=3012201?66", "unexpected data after"),
        (";4111111111111111=3012201?7", "LRC mismatch"),
        (";=3012201?", "PAN is empty"),
        (";4111111111111111111111=3012201?", "at most 19"),
        (";" + "4" * 16 + "=3012201" + "0" * 16 + "?", "at most 40"),
        (";E?", "could not read"),
        ("%A4111111111111111^DOE/J^3012201?", "format code"),
        ("%B4111111111111111^DOE/J3012201?", "two '^' separators"),
        ("%B4111111111111111^X^3012201?", "name must be"),
        ("%B4111111111111111^doe/jane^3012201?", "outside the track 1 set"),
        ("%B4111111111111111^DOE/J^" + "0" * 80 + "?", "at most 79"),
    ],
)
def test_bad_tracks_raise_card_data_error(text: str, fragment: str) -> None:
    with pytest.raises(CardDataError) as info:
        parse_track(text)
    assert fragment in str(info.value)


def test_lengths_at_the_limit_parse_and_one_more_does_not() -> None:
    longest2 = ";" + PAN + "=3012201" + "0" * 13 + "?"  # 39 + the LRC = 40
    assert len(longest2) == 39
    assert parse_track2(longest2 + track_lrc(longest2)).pan == PAN
    longest1 = "%B" + PAN + "^DOE/J^3012201" + "0" * 45 + "?"  # 78 + the LRC = 79
    assert len(longest1) == 78
    assert parse_track1(longest1).pan == PAN
    with pytest.raises(CardDataError, match="41 characters with the LRC, at most 40"):
        parse_track2(longest2.replace("=", "=0", 1))
    with pytest.raises(CardDataError, match="80 characters with the LRC, at most 79"):
        parse_track1(longest1.replace("^3", "^30", 1))


def test_luhn_failing_card_still_parses() -> None:
    card = parse_track(build_track2("4111111111111112", "3012"))
    assert not luhn_ok(card.pan)
    assert card.problem("2501") == "INVALID CARD"


def test_bad_month_parses_and_the_model_reports_it() -> None:
    card = parse_track(";4111111111111111=3013201?")
    assert card.problem("2501") == "CARD READ ERROR"


def test_reader_line_with_both_tracks_prefers_track2_and_keeps_the_name() -> None:
    line = build_track1(PAN, "3012", "DOE/JANE", service_code="101") + TRACK2
    card = parse_track(line + "\r\n")
    assert card.service_code == "201"  # from track 2
    assert card.cardholder_name == "DOE/JANE"  # from track 1


def test_both_tracks_with_different_pans_take_track2_without_the_name() -> None:
    line = build_track1("5555555555554444", "3012", "DOE/JANE") + TRACK2
    card = parse_track(line)
    assert card.pan == PAN
    assert card.cardholder_name == ""


def test_unreadable_track2_falls_back_to_track1() -> None:
    card = parse_track(TRACK1 + ";E?")
    assert card.cardholder_name == "DOE/JANE"


def test_unreadable_track1_is_ignored_when_track2_is_good() -> None:
    assert parse_track("%E?" + TRACK2).pan == PAN


def test_both_tracks_bad_reports_track2() -> None:
    with pytest.raises(CardDataError, match="track 2"):
        parse_track("%E?;E?")


def test_three_tracks_on_a_line() -> None:
    assert parse_track(TRACK1 + TRACK2 + "+1234?").pan == PAN


@pytest.mark.parametrize(("track", "sentinel"), [(1, "%"), (1, ";"), (1, "+"), (2, ";")])
def test_an_lrc_that_looks_like_a_start_sentinel_is_still_an_lrc(track: int, sentinel: str) -> None:
    # Vary one discretionary character until the track's LRC is the sentinel character.
    texts = (
        build_track1(PAN, "3012", "A B", discretionary=char)
        if track == 1
        else build_track2(PAN, "3012", discretionary=char)
        for char in ("0123456789" if track == 2 else "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    )
    text = next((t for t in texts if track_lrc(t) == sentinel), None)
    assert text is not None, "no discretionary character gives that LRC"
    following = TRACK2 if track == 1 else "+1234?"
    line = text + sentinel + following
    assert split_tracks(line) == [text + sentinel, following]
    assert parse_track(line).pan == PAN


def test_builders_reject_bad_fields_without_the_pan() -> None:
    with pytest.raises(CardDataError) as info:
        build_track2("41111111111111X1", "3012")
    assert "41111111111111" not in str(info.value)
    with pytest.raises(CardDataError, match="service code"):
        build_track1(PAN, "3012", service_code="2A1")


@given(pans, yymms, service_codes, st.booleans(), st.from_regex(r"\A[0-9]{0,8}\Z"))
def test_track2_round_trip(
    pan: str, yymm: str, service: str, with_lrc: bool, discretionary: str
) -> None:
    text = build_track2(pan, yymm, service, with_lrc=with_lrc, discretionary=discretionary)
    assert parse_track(text) == Card(pan=pan, expiry_yymm=yymm, service_code=service)
    if with_lrc:
        assert stripe_parity_ok(text, 0x30, 4)


@given(pans, yymms, service_codes, names, st.booleans())
def test_track1_round_trip(pan: str, yymm: str, service: str, name: str, with_lrc: bool) -> None:
    text = build_track1(pan, yymm, name, service, with_lrc=with_lrc)
    card = parse_track(text)
    assert (card.pan, card.expiry_yymm, card.service_code) == (pan, yymm, service)
    assert card.cardholder_name == name.strip()
    if with_lrc:
        assert stripe_parity_ok(text, 0x20, 6)


@given(st.text(alphabet="0123456789", min_size=12, max_size=19), st.data())
def test_a_corrupted_track_never_shows_the_pan(pan: str, data: st.DataObject) -> None:
    text = build_track2(pan, "3012", with_lrc=True)
    position = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(st.characters(codec="ascii"))
    corrupted = text[:position] + replacement + text[position + 1 :]
    try:
        parse_track(corrupted)
    except CardDataError as exc:
        assert pan not in str(exc)
        assert pan[:-1] not in str(exc) and pan[1:] not in str(exc)


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_card_data_error(text: str) -> None:
    try:
        card = parse_track(text)
    except CardDataError:
        return
    assert card.pan.isdigit()
    assert len(card.expiry_yymm) == 4


@given(st.text(alphabet="%;+?^=B0123456789E ", max_size=120))
def test_sentinel_heavy_text_parses_or_raises_card_data_error(text: str) -> None:
    try:
        parse_track(text)
    except CardDataError as exc:
        assert str(exc)


def test_a_line_with_only_track3_has_no_usable_track() -> None:
    with pytest.raises(CardDataError, match="no track 1"):
        parse_track("+1234567?")

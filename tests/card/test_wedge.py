"""Keyboard-wedge decoding: key strokes back into tracks, per layout, with garbage and limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pitill.card.model import ReadBy
from pitill.card.track import build_track1, build_track2
from pitill.card.wedge import LAYOUTS, MAX_LINE_CHARS, WedgeDecoder, decode_line
from pitill.errors import CardDataError

PAN, EXPIRY = "4111111111111111", "3012"


def strokes_for(text: str, layout: str) -> list[tuple[str, int]]:
    """The (key name, value) events a reader typing `text` for `layout` sends, Enter last."""
    events: list[tuple[str, int]] = []
    for char in text:
        name, shifted = next(
            (name, index == 1)
            for name, pair in LAYOUTS[layout].items()
            for index, typed in enumerate(pair)
            if typed == char
        )
        if shifted:
            events.append(("KEY_LEFTSHIFT", 1))
        events += [(name, 1), (name, 2), (name, 0)]  # a repeat in between, as a held key does
        if shifted:
            events.append(("KEY_LEFTSHIFT", 0))
        if layout == "de" and name == "KEY_GRAVE":
            events += [("KEY_SPACE", 1), ("KEY_SPACE", 0)]  # a dead key needs a space
    return [*events, ("KEY_ENTER", 1), ("KEY_ENTER", 0)]


def lines_of(events: list[tuple[str, int]], layout: str) -> list[list[tuple[str, bool]]]:
    decoder = WedgeDecoder(layout)
    return [line for name, value in events for line in decoder.feed(name, value)]


TRACKS = build_track1(PAN, EXPIRY, "DOE/JANE") + build_track2(PAN, EXPIRY)


@pytest.mark.parametrize("layout", ["us", "de"])
def test_both_tracks_typed_in_each_layout(layout: str) -> None:
    (line,) = lines_of(strokes_for(TRACKS, layout), layout)
    card = decode_line(line, layout)
    assert (card.pan, card.expiry_yymm, card.cardholder_name) == (PAN, EXPIRY, "DOE/JANE")
    assert card.read_by is ReadBy.USB_STRIPE


def test_a_german_reader_read_as_us_is_named_not_guessed() -> None:
    (line,) = lines_of(strokes_for(build_track2(PAN, EXPIRY), "de"), "de")
    with pytest.raises(CardDataError, match=r'German keyboard layout: set reader.layout = "de"'):
        decode_line(line, "us")


def test_garbage_and_unknown_keys() -> None:
    decoder = WedgeDecoder("us")
    events = [("KEY_F1", 1), ("KEY_LEFTALT", 1), ("KEY_A", 1), ("KEY_ENTER", 1)]
    (line,) = [line for name, value in events for line in decoder.feed(name, value)]
    assert decoder.dropped_keys == 2
    with pytest.raises(CardDataError, match="no start sentinel"):
        decode_line(line, "us")
    assert decoder.feed("KEY_ENTER", 1) == []  # an empty line is no swipe


def test_an_endless_line_is_cut_off() -> None:
    decoder = WedgeDecoder("us")
    lines = [line for _ in range(MAX_LINE_CHARS + 5) for line in decoder.feed("KEY_1", 1)]
    assert decoder.overlong_lines == 1
    with pytest.raises(CardDataError, match="more than"):
        decode_line(lines[0], "us")


def test_unknown_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="keyboard layout"):
        WedgeDecoder("fr")


NAMES = sorted({*LAYOUTS["us"], *LAYOUTS["de"], "KEY_LEFTSHIFT", "KEY_ENTER", "KEY_F5"})


@given(st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 2)), max_size=300))
def test_any_key_events_give_a_card_or_a_card_data_error(events: list[tuple[str, int]]) -> None:
    for layout in LAYOUTS:
        for line in lines_of(events, layout):
            assert len(line) <= MAX_LINE_CHARS
            try:
                card = decode_line(line, layout)
            except CardDataError:
                continue
            assert card.read_by is ReadBy.USB_STRIPE


@pytest.mark.parametrize("layout", ["us", "de"])
def test_strokes_for_types_what_the_decoder_reads(layout: str) -> None:
    from pitill.card.wedge import strokes_for

    (line,) = lines_of(strokes_for(TRACKS, layout), layout)
    assert decode_line(line, layout).pan == PAN
    with pytest.raises(CardDataError, match="no key for"):
        strokes_for("%B€", layout)

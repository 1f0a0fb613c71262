"""ISO/IEC 7813 magnetic stripe tracks 1 and 2: parse them into a Card, and build them for tests.

Track 1 (IATA, format B):  ``%B PAN ^ NAME ^ YYMM SVC DISCRETIONARY ? [LRC]``  at most 79 characters
Track 2 (ABA):             ``;PAN = YYMM SVC DISCRETIONARY ? [LRC]``           at most 40 characters

The limits count the sentinels and the LRC character, as ISO 7813 does, so the text through the
end sentinel may hold 78 (track 1) or 39 (track 2) characters. The LRC character is optional here
because most readers check it on the stripe and do not send it on; when present it must match. It is
the XOR of the characters' data bits in the track's own encoding, sentinels included (ISO/IEC 7811):
track 1 characters are 6-bit (``ord(c) - 0x20``, the set 0x20..0x5F), track 2 characters are 4-bit
(``ord(c) - 0x30``, the set 0x30..0x3F); the per-character parity bits are not part of it.

Parsing checks structure only. A PAN that fails Luhn, or an expiry month of 13, still parses: the
core then says INVALID CARD or CARD READ ERROR (see Card.problem). No error message ever contains
the PAN: they name the track, the field and what was wrong with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import reduce

from pitill.card.model import Card
from pitill.card.sealed_track import SealedTrack
from pitill.errors import CardDataError

TRACK1_START = "%"
TRACK2_START = ";"
TRACK3_START = "+"  # some readers put track 3 behind tracks 1 and 2 on the same line
END_SENTINEL = "?"
TRACK1_SEPARATOR = "^"
TRACK2_SEPARATOR = "="
TRACK1_FORMAT_CODE = "B"  # format B: financial cards

TRACK1_MAX_CHARS = 79  # ISO 7813, sentinels and LRC included
TRACK2_MAX_CHARS = 40
PAN_MAX_DIGITS = 19
NAME_MIN_CHARS = 2
NAME_MAX_CHARS = 26

_TRACK1_OFFSET, _TRACK1_MASK = 0x20, 0x3F  # 6 data bits per character
_TRACK2_OFFSET, _TRACK2_MASK = 0x30, 0x0F  # 4 data bits per character
_START_SENTINELS = frozenset((TRACK1_START, TRACK2_START, TRACK3_START))
_READ_ERROR = "E"  # readers send %E? or ;E? for a track they could not read


def track_lrc(text: str) -> str:
    """The LRC character for a track from its start sentinel through its end sentinel."""
    if text[:1] == TRACK1_START:
        offset, mask, name = _TRACK1_OFFSET, _TRACK1_MASK, "track 1"
    elif text[:1] == TRACK2_START:
        offset, mask, name = _TRACK2_OFFSET, _TRACK2_MASK, "track 2"
    else:
        raise CardDataError("cannot compute an LRC: the text has no start sentinel ('%' or ';')")
    codes = [ord(char) - offset for char in text]
    if any(not 0 <= code <= mask for code in codes):
        raise CardDataError(f"{name}: a character is outside the track's character set")
    return chr(offset + reduce(int.__xor__, codes, 0))


def parse_track1(text: str) -> Card:
    """Parse one track 1 (``%B...^...^...?`` and an optional LRC character) into a Card."""
    body = _checked_body(text, TRACK1_START, TRACK1_MAX_CHARS, "track 1")
    if not all(_TRACK1_OFFSET <= ord(char) <= _TRACK1_OFFSET + _TRACK1_MASK for char in body):
        raise CardDataError(
            "track 1: a character is outside the track 1 set (space to underscore, upper case)"
        )
    if body[:1] != TRACK1_FORMAT_CODE:
        raise CardDataError(
            f"track 1: format code must be {TRACK1_FORMAT_CODE!r} (financial), got {body[:1]!r}"
        )
    fields = body[1:].split(TRACK1_SEPARATOR, 2)
    if len(fields) != 3:
        raise CardDataError("track 1: expected two '^' separators (PAN ^ NAME ^ data)")
    pan, name, rest = fields
    _check_pan(pan, "track 1")
    if not NAME_MIN_CHARS <= len(name) <= NAME_MAX_CHARS:
        raise CardDataError(
            f"track 1: name must be {NAME_MIN_CHARS}..{NAME_MAX_CHARS} characters, got {len(name)}"
        )
    expiry, service, _ = _split_expiry_service(rest, "track 1")
    return Card(
        pan=pan,
        expiry_yymm=expiry,
        service_code=service,
        cardholder_name=name.strip(),
        track=SealedTrack(1, body),
    )


def parse_track2(text: str) -> Card:
    """Parse one track 2 (``;PAN=YYMMSVC...?`` and an optional LRC character) into a Card."""
    body = _checked_body(text, TRACK2_START, TRACK2_MAX_CHARS, "track 2")
    pan, separator, rest = body.partition(TRACK2_SEPARATOR)
    if not separator:
        raise CardDataError("track 2: no '=' separator after the PAN")
    _check_pan(pan, "track 2")
    expiry, service, discretionary = _split_expiry_service(rest, "track 2")
    if discretionary and not (discretionary.isascii() and discretionary.isdecimal()):
        raise CardDataError("track 2: discretionary data must be digits")
    return Card(pan=pan, expiry_yymm=expiry, service_code=service, track=SealedTrack(2, body))


def parse_track(text: str) -> Card:
    """Parse what a reader sent for one swipe: track 1, track 2, or several tracks in one line.

    The start sentinel picks the track. On a line with both, track 2 wins (it is what authorization
    uses); the name comes from track 1 when both tracks carry the same PAN. A line where track 2 is
    unreadable falls back to track 1. Surrounding whitespace (a reader's CR/LF) is ignored.
    """
    segments = split_tracks(text.strip())
    track1 = next((s for s in segments if s.startswith(TRACK1_START)), None)
    track2 = next((s for s in segments if s.startswith(TRACK2_START)), None)
    if track2 is None:
        if track1 is None:
            raise CardDataError("no track 1 ('%') or track 2 (';') in the data; swipe again")
        return parse_track1(track1)
    try:
        card = parse_track2(track2)
    except CardDataError as track2_error:
        if track1 is None:
            raise
        try:
            return parse_track1(track1)
        except CardDataError:
            raise track2_error from None  # the track that would have been used
    if track1 is not None:
        try:
            named = parse_track1(track1)
        except CardDataError:
            return card
        if named.track is not None:
            named.track.drop()  # track 2 is the one the 0200 carries
        if named.pan == card.pan:
            return dataclasses.replace(card, cardholder_name=named.cardholder_name)
    return card


def split_tracks(text: str) -> list[str]:
    """Cut a reader line into its tracks, each from its start sentinel through its LRC (if any).

    After an end sentinel the next character is an LRC unless it starts the next track: a start
    sentinel followed by a character that is not a start sentinel (every track starts with a
    format code, a digit or a reader's 'E'). Text before the first start sentinel makes the line
    unparseable, as does a track with no end sentinel.
    """
    if not text:
        raise CardDataError("no track data: the reader sent an empty line")
    if text[0] not in _START_SENTINELS:
        raise CardDataError("no start sentinel: track data must begin with '%' or ';'")
    segments: list[str] = []
    start = 0
    while start < len(text):
        end = text.find(END_SENTINEL, start + 1)
        if end < 0:
            raise CardDataError("no end sentinel: the track data is cut short (swipe again)")
        stop = end + 1
        if stop < len(text) and not _starts_track(text, stop):
            stop += 1  # the LRC character
        segments.append(text[start:stop])
        if stop < len(text) and not _starts_track(text, stop):
            raise CardDataError("unexpected data after a track's end sentinel")
        start = stop
    return segments


def build_track2(
    pan: str,
    expiry_yymm: str,
    service_code: str = "201",
    with_lrc: bool = False,
    discretionary: str = "",
) -> str:
    """Track 2 text for a test card (emulator, simulator); the result is checked by parsing it."""
    text = f"{TRACK2_START}{pan}{TRACK2_SEPARATOR}{expiry_yymm}{service_code}{discretionary}?"
    return _finish(text, with_lrc, parse_track2)


def build_track1(
    pan: str,
    expiry_yymm: str,
    name: str = "PITILL/TEST CARD",
    service_code: str = "201",
    with_lrc: bool = False,
    discretionary: str = "",
) -> str:
    """Track 1 text for a test card (emulator, simulator); the result is checked by parsing it."""
    sep = TRACK1_SEPARATOR
    text = (
        f"{TRACK1_START}{TRACK1_FORMAT_CODE}{pan}{sep}{name}{sep}"
        f"{expiry_yymm}{service_code}{discretionary}?"
    )
    return _finish(text, with_lrc, parse_track1)


def _finish(text: str, with_lrc: bool, parse: Callable[[str], Card]) -> str:
    if with_lrc:
        text += track_lrc(text)
    parse(text)  # raises CardDataError naming the bad field, never the PAN
    return text


def _starts_track(text: str, index: int) -> bool:
    return (
        text[index] in _START_SENTINELS
        and index + 1 < len(text)
        and text[index + 1] not in _START_SENTINELS
    )


def _checked_body(text: str, start: str, max_chars: int, name: str) -> str:
    """The characters between the sentinels, after checking sentinels, length and any LRC."""
    if text[:1] != start:
        raise CardDataError(f"{name}: must begin with the start sentinel {start!r}")
    if text[1:2] == _READ_ERROR and text[2:3] == END_SENTINEL:
        raise CardDataError(f"{name}: the reader could not read this track (swipe again)")
    end = text.find(END_SENTINEL)
    if end < 0:
        raise CardDataError(f"{name}: no end sentinel '?' (the swipe was cut short)")
    with_sentinels, trailer = text[: end + 1], text[end + 1 :]
    if len(trailer) > 1:
        raise CardDataError(f"{name}: {len(trailer)} characters after the end sentinel, at most 1")
    if len(with_sentinels) + 1 > max_chars:  # +1: the LRC the stripe always has
        raise CardDataError(
            f"{name}: {len(with_sentinels) + 1} characters with the LRC, at most {max_chars}"
        )
    if trailer:
        expected = track_lrc(with_sentinels)
        if trailer != expected:
            raise CardDataError(
                f"{name}: LRC mismatch (got {trailer!r}, computed {expected!r}); swipe again"
            )
    return with_sentinels[1:-1]


def _check_pan(pan: str, name: str) -> None:
    if not pan:
        raise CardDataError(f"{name}: the PAN is empty")
    if not (pan.isascii() and pan.isdecimal()):
        position = next(i for i, char in enumerate(pan) if not ("0" <= char <= "9"))
        raise CardDataError(f"{name}: the PAN has a non-digit at position {position + 1}")
    if len(pan) > PAN_MAX_DIGITS:
        raise CardDataError(f"{name}: the PAN has {len(pan)} digits, at most {PAN_MAX_DIGITS}")


def _split_expiry_service(rest: str, name: str) -> tuple[str, str, str]:
    """YYMM, the 3-digit service code and the discretionary data after the last separator."""
    expiry, service, discretionary = rest[:4], rest[4:7], rest[7:]
    if len(expiry) != 4 or not (expiry.isascii() and expiry.isdecimal()):
        raise CardDataError(f"{name}: the expiry must be 4 digits YYMM after the separator")
    if len(service) != 3 or not (service.isascii() and service.isdecimal()):
        raise CardDataError(f"{name}: the service code must be 3 digits after the expiry")
    return expiry, service, discretionary

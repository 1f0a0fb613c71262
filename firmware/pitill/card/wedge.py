"""USB keyboard-wedge stripe readers: key events back into track text (sans-IO).

A USB stripe reader is a HID keyboard: it "types" ``%B...^...^...?;...=...?`` and Enter. Evdev
reports key codes (physical key positions), so what a key means depends on the keyboard layout the
reader was set to type for: on a US layout ``;`` is the key right of L, on a German one it is
Shift+comma, and ``^`` is a dead key. The decoder is given key names (``KEY_5``, ``KEY_LEFTSHIFT``)
and key values (1 down, 0 up, 2 repeat), tracks the Shift keys, turns key-downs into characters
through the layout's table and hands back each line when Enter comes.

`decode_line` then parses the line with the serial reader's own track validation. A line that does
not parse in the configured layout but does in another is named ("the reader types a German
layout: set reader.layout = 'de'") rather than guessed: a wrong guess could move a digit.

Keys outside the table (Alt, F-keys, Ctrl) are counted and dropped; a line longer than two full
tracks is cut off and reported, never grown without bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pitill.card.model import Card, ReadBy
from pitill.card.track import TRACK1_MAX_CHARS, TRACK2_MAX_CHARS, parse_track
from pitill.errors import CardDataError

KEY_UP, KEY_DOWN = 0, 1  # evdev EV_KEY values; 2 (auto-repeat) is ignored
SHIFT_KEYS = frozenset(("KEY_LEFTSHIFT", "KEY_RIGHTSHIFT"))
ENTER_KEYS = frozenset(("KEY_ENTER", "KEY_KPENTER"))
MAX_LINE_CHARS = TRACK1_MAX_CHARS + TRACK2_MAX_CHARS + 40  # tracks 1 and 2 and a track 3 stub

# Shared by both layouts: digits' and letters' positions and unshifted digits.
_DIGITS = {f"KEY_{d}": (d, "") for d in "0123456789"}
_LETTERS = {f"KEY_{c}": (c.lower(), c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}

# key name -> (character unshifted, character with Shift); "" = nothing.
_US: dict[str, tuple[str, str]] = {
    **_DIGITS,
    **_LETTERS,
    "KEY_1": ("1", "!"),
    "KEY_5": ("5", "%"),
    "KEY_6": ("6", "^"),
    "KEY_SEMICOLON": (";", ":"),
    "KEY_EQUAL": ("=", "+"),
    "KEY_SLASH": ("/", "?"),
    "KEY_MINUS": ("-", "_"),
    "KEY_DOT": (".", ">"),
    "KEY_COMMA": (",", "<"),
    "KEY_SPACE": (" ", " "),
    "KEY_APOSTROPHE": ("'", '"'),
}
# German QWERTZ (what readers sold in Germany, Austria and Switzerland often type): Y and Z swap,
# ^ is the dead key left of 1 (readers send it followed by a space), ? is Shift+ß, ; Shift+comma.
_DE: dict[str, tuple[str, str]] = {
    **_DIGITS,
    **_LETTERS,
    "KEY_Y": ("z", "Z"),
    "KEY_Z": ("y", "Y"),
    "KEY_1": ("1", "!"),
    "KEY_5": ("5", "%"),
    "KEY_0": ("0", "="),
    "KEY_7": ("7", "/"),
    "KEY_GRAVE": ("^", ""),
    "KEY_MINUS": ("ß", "?"),
    "KEY_COMMA": (",", ";"),
    "KEY_DOT": (".", ":"),
    "KEY_SLASH": ("-", "_"),
    "KEY_SPACE": (" ", " "),
}
LAYOUTS: dict[str, dict[str, tuple[str, str]]] = {"us": _US, "de": _DE}
# A dead key types nothing until the next key; a space after it types the accent alone.
_DEAD_KEYS: dict[str, frozenset[str]] = {"us": frozenset(), "de": frozenset(("KEY_GRAVE",))}
LAYOUT_NAMES = {"us": "US", "de": "German"}


@dataclass
class WedgeDecoder:
    """Key events in, complete lines out: `feed(name, value)` returns the lines Enter finished.

    It keeps the raw key strokes of the line too, so `decode_line` can try other layouts.
    """

    layout: str = "us"
    dropped_keys: int = 0
    overlong_lines: int = 0
    _shift: set[str] = field(default_factory=set)
    _strokes: list[tuple[str, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(
                f"keyboard layout must be one of {sorted(LAYOUTS)}, got {self.layout!r}"
            )

    def feed(self, name: str, value: int) -> list[list[tuple[str, bool]]]:
        """One EV_KEY event; returns the key strokes of each line an Enter completed."""
        if name in SHIFT_KEYS:
            if value == KEY_DOWN:
                self._shift.add(name)
            elif value == KEY_UP:
                self._shift.discard(name)
            return []
        if value != KEY_DOWN:
            return []
        if name in ENTER_KEYS:
            line, self._strokes = self._strokes, []
            return [line] if line else []
        if name not in _US and name not in _DE:
            self.dropped_keys += 1
            return []
        if len(self._strokes) >= MAX_LINE_CHARS:
            self.overlong_lines += 1
            self._strokes = []
            return [[("KEY_OVERLONG", False)]]
        self._strokes.append((name, bool(self._shift)))
        return []


def text_of(strokes: list[tuple[str, bool]], layout: str) -> str:
    """The characters these key strokes type in `layout` (an unknown stroke types nothing)."""
    table, dead = LAYOUTS[layout], _DEAD_KEYS[layout]
    chars: list[str] = []
    after_dead = False
    for name, shifted in strokes:
        if not (after_dead and name == "KEY_SPACE"):
            chars.append(table.get(name, ("", ""))[1 if shifted else 0])
        after_dead = name in dead and not shifted
    return "".join(chars)


def decode_line(strokes: list[tuple[str, bool]], layout: str) -> Card:
    """The card a line of key strokes carries, read as the serial reader reads a track.

    Raises CardDataError naming what was wrong (never the PAN); when another layout parses, the
    message names that layout and the config key to set.
    """
    if strokes == [("KEY_OVERLONG", False)]:
        raise CardDataError(
            f"the USB reader typed more than {MAX_LINE_CHARS} characters; swipe again"
        )
    try:
        card = parse_track(text_of(strokes, layout))
    except CardDataError as error:
        for other in LAYOUTS:
            if other == layout:
                continue
            try:
                parse_track(text_of(strokes, other))
            except CardDataError:
                continue
            raise CardDataError(
                f"the USB reader types a {LAYOUT_NAMES[other]} keyboard layout: set "
                f'reader.layout = "{other}" (or set the reader to {LAYOUT_NAMES[layout]})'
            ) from None
        raise error from None
    return replace(card, read_by=ReadBy.USB_STRIPE)


def strokes_for(text: str, layout: str = "us") -> list[tuple[str, int]]:
    """The (key name, value) events a reader typing `text` and Enter for `layout` sends: Shift
    down and up around each shifted character, a space after a dead key (the simulator's reader
    and the tests type with it)."""
    table, dead = LAYOUTS[layout], _DEAD_KEYS[layout]
    by_char: dict[str, tuple[str, bool]] = {}
    for name, pair in table.items():
        for shifted, char in enumerate(pair):
            if char and char not in by_char:
                by_char[char] = (name, bool(shifted))
    events: list[tuple[str, int]] = []
    for char in text:
        if char not in by_char:
            raise CardDataError(f"{LAYOUT_NAMES[layout]} layout has no key for {char!r}")
        name, shifted = by_char[char]
        keys = [(name, KEY_DOWN), (name, KEY_UP)]
        if shifted:
            keys = [("KEY_LEFTSHIFT", KEY_DOWN), *keys, ("KEY_LEFTSHIFT", KEY_UP)]
        if name in dead and not shifted:
            keys += [("KEY_SPACE", KEY_DOWN), ("KEY_SPACE", KEY_UP)]
        events += keys
    return [*events, ("KEY_ENTER", KEY_DOWN), ("KEY_ENTER", KEY_UP)]

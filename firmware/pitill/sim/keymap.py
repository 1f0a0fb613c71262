"""The laptop keyboard as the terminal's keypad, plus the simulator's hotkeys.

Enter or # = OK, Backspace or * = CLEAR (back one digit), Esc = CANCEL, f = FN;
letters swipe test cards, tap NFC cards and break or heal the upstream, ? shows every key.
Escape sequences (arrow keys, function keys) are recognised and ignored so that they never read
as CANCEL.
"""

from __future__ import annotations

from dataclasses import dataclass

from pitill.core.types import Key
from pitill.sim.tty_display import KeyHelp


@dataclass(frozen=True)
class Hotkey:
    char: str
    action: str  # "swipe:<card name>", "tap:<kind> <arg>", "upstream:<mode>", "help", "quit"
    label: str  # what it does, in a few words


SWIPES = (
    Hotkey("a", "swipe:approved", "approved"),
    Hotkey("d", "swipe:declined", "declined (05)"),
    Hotkey("e", "swipe:expired", "expired"),
    Hotkey("l", "swipe:bad-luhn", "bad Luhn"),
)
TAPS = (
    Hotkey("t", "tap:uid 04A1B2C3D4E5F6", "UID-only tag"),
    Hotkey("y", "tap:ntag424 alice", "alice's NTAG 424"),
    Hotkey("c", "tap:clone alice", "a clone of alice's"),
)
HOST_FAULTS = (
    Hotkey("n", "upstream:down", "down (refuses)"),
    Hotkey("b", "upstream:blackhole", "blackhole"),
    Hotkey("s", "upstream:dns-fail", "DNS fails"),
    Hotkey("w", "upstream:slow", "slow answers"),
    Hotkey("x", "upstream:failing", "fails sales (91)"),
    Hotkey("u", "upstream:up", "heal"),
)
HOTKEYS = (
    *SWIPES,
    *TAPS,
    *HOST_FAULTS,
    Hotkey("?", "help", "all keys"),
    Hotkey("q", "quit", "quit"),
)
_HOTKEYS_BY_CHAR = {h.char: h for h in HOTKEYS}

_KEYS = {str(d): Key(str(d)) for d in range(10)}
_KEYS.update({"\r": Key.OK, "\n": Key.OK, "\x7f": Key.CLEAR, "\x08": Key.CLEAR, "f": Key.FN})
_KEYS.update({"#": Key.OK, "*": Key.CLEAR})  # as on the 4x4 keypad's label

KEY_HELP = KeyHelp(
    terminal=(
        ("0-9", "amount"),
        ("Enter", "OK"),
        ("Bksp", "CLEAR"),
        ("Esc", "CANCEL"),
        ("f", "FN menu"),
    ),
    terminal_long=(
        ("0-9", "the amount; digits shift in from the right (1 2 5 0 = 12.50)"),
        ("Enter #", "OK: card, confirm, next page (# on the keypad)"),
        ("Bksp *", "CLEAR: takes back the last digit (* on the keypad)"),
        ("Esc", "CANCEL: drops the sale (D on the keypad)"),
        ("f", "FN: pay cash instead; at idle the mode and report menu (A)"),
    ),
    swipe=tuple((h.char, h.label) for h in SWIPES),
    tap=tuple((h.char, h.label) for h in TAPS),
    host=tuple((h.char, h.label) for h in HOST_FAULTS),
)


def decode_input(data: str) -> list[Key | Hotkey]:
    """Keys and hotkeys in a chunk read from a raw terminal; unknown bytes are dropped."""
    out: list[Key | Hotkey] = []
    index = 0
    while index < len(data):
        char = data[index]
        if char == "\x1b":
            if index + 1 < len(data) and data[index + 1] in "[O":
                index = _skip_escape_sequence(data, index)
                continue
            out.append(Key.CANCEL)
        elif char == "\x03":  # Ctrl-C
            out.append(_HOTKEYS_BY_CHAR["q"])
        elif char in _KEYS:
            out.append(_KEYS[char])
        elif char.lower() in _HOTKEYS_BY_CHAR:
            out.append(_HOTKEYS_BY_CHAR[char.lower()])
        index += 1
    return out


def _skip_escape_sequence(data: str, index: int) -> int:
    """Index just past a CSI/SS3 sequence starting at data[index] == ESC."""
    index += 2
    while index < len(data) and not ("@" <= data[index] <= "~"):
        index += 1
    return index + 1

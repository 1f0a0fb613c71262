"""The laptop keyboard as the terminal's keypad, plus the simulator's hotkeys.

Enter = OK, Backspace = CLEAR, Esc = CANCEL, f = FN; letters swipe test cards and break or heal
the upstream. Escape sequences (arrow keys, function keys) are recognised and ignored so that
they never read as CANCEL.
"""

from __future__ import annotations

from dataclasses import dataclass

from pitill.core.types import Key


@dataclass(frozen=True)
class Hotkey:
    char: str
    action: str  # "swipe:<card name>", "upstream:<mode>", "quit"
    label: str


HOTKEYS = (
    Hotkey("a", "swipe:approved", "swipe card: approved"),
    Hotkey("d", "swipe:declined", "swipe card: declined (05)"),
    Hotkey("e", "swipe:expired", "swipe card: expired"),
    Hotkey("l", "swipe:bad-luhn", "swipe card: bad Luhn"),
    Hotkey("n", "upstream:down", "host down (refuses)"),
    Hotkey("b", "upstream:blackhole", "host blackhole"),
    Hotkey("s", "upstream:dns-fail", "DNS fails"),
    Hotkey("w", "upstream:slow", "host answers slowly"),
    Hotkey("x", "upstream:failing", "host answers echoes, fails sales (91)"),
    Hotkey("u", "upstream:up", "heal the upstream"),
    Hotkey("q", "quit", "quit"),
)
_HOTKEYS_BY_CHAR = {h.char: h for h in HOTKEYS}

_KEYS = {str(d): Key(str(d)) for d in range(10)}
_KEYS.update({"\r": Key.OK, "\n": Key.OK, "\x7f": Key.CLEAR, "\x08": Key.CLEAR, "f": Key.FN})


def legend() -> list[str]:
    """Three short lines for the simulator panel."""
    return [
        "0-9 amount  Enter OK  Backspace CLEAR  Esc CANCEL  f FN  q quit",
        "swipe: a approved  d declined  e expired  l bad Luhn",
        "host:  n down  b blackhole  s dns-fail  w slow  x failing  u heal",
    ]


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

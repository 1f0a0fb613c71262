"""The laptop keyboard as the keypad: what each byte from a raw terminal becomes."""

from __future__ import annotations

from pitill.core.types import Key
from pitill.sim.keymap import Hotkey, decode_input


def names(data: str) -> list[str]:
    return [i.action if isinstance(i, Hotkey) else i.value for i in decode_input(data)]


def test_keys_as_on_a_laptop_and_as_on_the_keypad_label() -> None:
    assert names("12\r\x7f\x1bf") == ["1", "2", "OK", "CLEAR", "CANCEL", "FN"]
    assert names("#*") == ["OK", "CLEAR"]  # the 4x4 keypad's OK and CLEAR


def test_arrow_and_function_keys_are_not_cancel() -> None:
    assert names("\x1b[A\x1bOP\x1b[15~5") == ["5"]


def test_hotkeys() -> None:
    assert names("a?Uq\x03") == ["swipe:approved", "help", "upstream:up", "quit", "quit"]
    assert all(isinstance(i, Key) for i in decode_input("0123456789"))

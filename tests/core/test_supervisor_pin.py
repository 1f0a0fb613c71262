"""The supervisor PIN in the core: keyed as asterisks, checked by the shell, obeyed when locked."""

from __future__ import annotations

from till import Till

from pitill.core.effects import Beep, SetPin, VerifyPin
from pitill.core.events import Booted, KeyPressed, PinChecked, PinSaved
from pitill.core.state import Phase
from pitill.core.types import BeepPattern, Key, LinkStatus, PinPurpose, TxnKind


def pin_set_till() -> Till:
    return Till(booted=Booted(0.0, next_seq=1, pin_set=True))


def test_fn_asks_for_the_pin_and_shows_only_asterisks() -> None:
    till = pin_set_till()
    till.keys("FN", "2", "5", "8")
    assert till.state.phase is Phase.PIN_ENTRY
    text = till.screen_text
    assert "PIN" in text and "***" in text and "****" not in text
    assert not any(d in text for d in "258")
    till.keys("CLEAR")
    assert till.state.pin_entry == "25"


def test_the_keyed_pin_never_appears_in_a_repr() -> None:
    till = pin_set_till()
    till.keys("FN", "9", "7", "3", "1")
    assert "9731" not in repr(till.state)
    effects = till.feed(KeyPressed(till.now_s, Key.OK))
    verify = next(e for e in effects if isinstance(e, VerifyPin))
    assert verify.pin == "9731" and "9731" not in repr(verify)
    assert "9731" not in repr(till.state)


def test_a_right_pin_opens_the_menu_a_short_one_is_refused() -> None:
    till = pin_set_till()
    till.keys("FN", "1", "2", "3", "OK")
    assert till.state.phase is Phase.PIN_ENTRY and "4 to 8 digits" in till.screen_text
    till.keys("4", "OK")
    assert till.state.phase is Phase.PIN_CHECKING
    assert VerifyPin("1234") in till.effects
    till.keys("1")  # the verdict is not in yet: the menu's 1 must not change the mode
    assert till.state.phase is Phase.PIN_CHECKING
    till.feed(PinChecked(till.now_s, ok=True))
    assert till.state.phase is Phase.MENU and "1 Mode" in till.screen_text


def test_wrong_pins_count_down_then_lock_the_menu_with_a_beep() -> None:
    till = pin_set_till()
    till.keys("FN", "1", "1", "1", "1", "OK")
    effects = till.feed(PinChecked(till.now_s, ok=False, tries_left=4))
    assert till.state.phase is Phase.PIN_ENTRY and "Wrong PIN: 4 left" in till.screen_text
    assert Beep(BeepPattern.ERROR) in effects
    till.keys("2", "2", "2", "2", "OK")
    effects = till.feed(PinChecked(till.now_s, ok=False, locked_for_s=60.0))
    assert till.state.phase is Phase.IDLE and "Menu locked 1 min" in till.screen_text
    assert Beep(BeepPattern.ALERT) in effects
    till.advance(59.0)
    till.keys("FN")
    assert till.state.phase is Phase.IDLE and "Menu locked 1 min" in till.screen_text
    till.advance(1.5)
    till.keys("FN")
    assert till.state.phase is Phase.PIN_ENTRY


def test_a_lock_from_before_the_restart_holds() -> None:
    till = Till(booted=Booted(100.0, next_seq=1, pin_set=True, pin_locked_for_s=150.0))
    till.now_s = 100.0
    till.keys("FN")
    assert till.state.phase is Phase.IDLE and "Menu locked 3 min" in till.screen_text
    till.now_s = 251.0
    till.keys("FN")
    assert till.state.phase is Phase.PIN_ENTRY


def test_anyone_may_still_sell_and_take_cash_while_the_menu_is_locked() -> None:
    till = Till(booted=Booted(0.0, next_seq=1, pin_set=True, pin_locked_for_s=600.0))
    till.link(LinkStatus.ONLINE)
    till.keys("5", "0", "0", "FN", "OK")
    assert till.state.phase is Phase.CHANGE
    assert till.records()[-1].txn.kind is TxnKind.CASH


def test_without_a_pin_fn_asks_for_a_new_one_twice() -> None:
    till = Till()
    till.keys("FN")
    assert till.state.pin_purpose is PinPurpose.NEW and "NEW PIN" in till.screen_text
    till.keys("4", "7", "1", "1", "OK", "4", "7", "1", "2", "OK")
    assert till.state.pin_purpose is PinPurpose.NEW and "PINs differ" in till.screen_text
    till.keys("4", "7", "1", "1", "OK")
    assert "PIN AGAIN" in till.screen_text
    till.keys("4", "7", "1", "1", "OK")
    assert SetPin("4711") in till.effects and till.state.phase is Phase.PIN_CHECKING
    till.feed(PinSaved(till.now_s, saved=True))
    assert till.state.phase is Phase.MENU and till.state.pin_set
    till.keys("CANCEL", "FN")
    assert till.state.pin_purpose is PinPurpose.UNLOCK


def test_a_pin_not_saved_leaves_the_menu_shut() -> None:
    till = Till()
    till.keys("FN", "4", "7", "1", "1", "OK", "4", "7", "1", "1", "OK")
    till.feed(PinSaved(till.now_s, saved=False))
    assert till.state.phase is Phase.IDLE and "PIN NOT saved" in till.screen_text
    assert not till.state.pin_set


def test_a_late_verdict_after_cancel_still_locks() -> None:
    till = pin_set_till()
    till.keys("FN", "1", "1", "1", "1", "OK", "CANCEL")
    assert till.state.phase is Phase.IDLE
    till.feed(PinChecked(till.now_s, ok=True))  # a late yes opens nothing
    assert till.state.phase is Phase.IDLE
    till.feed(PinChecked(till.now_s, ok=False, locked_for_s=120.0))
    till.keys("FN")
    assert till.state.phase is Phase.IDLE and "Menu locked 2 min" in till.screen_text


def test_leaving_the_menu_needs_the_pin_again() -> None:
    till = pin_set_till()
    till.open_menu()
    till.keys("CANCEL", "FN")
    assert till.state.phase is Phase.PIN_ENTRY and till.state.pin_entry == ""

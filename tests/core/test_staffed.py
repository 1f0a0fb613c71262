"""The staffed terminal in the core: the balance a closed-loop host answers with, on screen."""

from __future__ import annotations

from till import Till

from pitill.core.events import AuthOutcome, AuthResult
from pitill.core.state import Phase


def test_an_approved_sale_shows_the_balance_the_host_answered_with() -> None:
    till = Till(next_seq=3)
    till.keys("1", "2", "5", "0", "OK")
    till.swipe()
    till.feed(AuthResult(till.now_s, 3, AuthOutcome.APPROVED, "00", "000042", balance_minor=750))
    assert till.state.phase is Phase.APPROVED
    assert "Balance EUR 7.50" in till.screen_text
    assert till.records()[-1].txn.balance_minor == 750  # journaled: the receipt prints it


def test_a_sale_declined_for_funds_shows_what_is_left() -> None:
    till = Till()
    till.keys("2", "0", "0", "0", "OK")
    till.swipe()
    till.feed(AuthResult(till.now_s, 1, AuthOutcome.DECLINED, "51", balance_minor=-250))
    assert "INSUFFICIENT FUNDS" in till.screen_text and "Balance EUR -2.50" in till.screen_text


def test_without_a_balance_the_approval_shows_the_auth_code_as_before() -> None:
    till = Till()
    till.keys("5", "OK")
    till.swipe()
    till.feed(AuthResult(till.now_s, 1, AuthOutcome.APPROVED, "00", "123456"))
    assert "Auth 123456" in till.screen_text and "Balance" not in till.screen_text

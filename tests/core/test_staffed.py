"""The staffed terminal in the core: the balance a closed-loop host answers with, on screen,
FN 7 top-up with cash and FN 8 balance inquiry."""

from __future__ import annotations

import pytest
from till import EXPIRED, GOOD, TODAY, Till

from pitill.core.effects import Authorize, OpenDrawer, PrintReceipt, Record, Show
from pitill.core.events import AuthOutcome, AuthResult, CardSwiped
from pitill.core.state import Phase, Settings
from pitill.core.txn import Txn
from pitill.core.types import LinkStatus, TxnKind, TxnStatus


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


# --- FN 7 top-up with cash, FN 8 balance inquiry ------------------------------------------------


def topped_up(till: Till, keys: tuple[str, ...] = ("2", "0", "0", "0")) -> Txn:
    """FN 7, an amount, a card: the AUTHORIZING top-up journaled and sent."""
    till.open_menu()
    till.keys("7", *keys, "OK")
    assert till.state.phase is Phase.TOPUP_CARD and "Top-up EUR 20.00" in till.screen_text
    effects = till.swipe()
    record = next(e for e in effects if isinstance(e, Record))
    assert isinstance(effects[effects.index(record) + 1], Authorize)  # journaled, then sent
    return record.txn


def test_a_top_up_is_journaled_before_it_goes_and_the_drawer_opens_only_once_credited() -> None:
    till = Till(next_seq=4, settings=Settings(print_receipts=True))
    till.link(LinkStatus.ONLINE)
    txn = topped_up(till)
    assert (txn.kind, txn.status, txn.amount_minor, txn.seq) == (
        TxnKind.TOPUP, TxnStatus.AUTHORIZING, 2000, 4,
    )  # fmt: skip
    assert not any(isinstance(e, OpenDrawer) for e in till.effects)
    effects = till.feed(AuthResult(till.now_s, 4, AuthOutcome.APPROVED, "00", "000009", 1750))
    kinds = [type(e) for e in effects]
    assert kinds.index(Record) < kinds.index(OpenDrawer) < kinds.index(Show)
    assert kinds[-1] is PrintReceipt
    assert till.state.phase is Phase.TOPPED_UP
    assert "Cash in EUR 20.00" in till.screen_text and "Balance EUR 17.50" in till.screen_text
    assert till.records()[-1].txn.status is TxnStatus.APPROVED


def test_a_top_up_declined_takes_no_cash() -> None:
    till = Till()
    till.link(LinkStatus.ONLINE)
    topped_up(till)
    till.feed(AuthResult(till.now_s, 1, AuthOutcome.DECLINED, "62"))
    assert till.state.phase is Phase.DECLINED and "RESTRICTED CARD" in till.screen_text
    assert not any(isinstance(e, OpenDrawer) for e in till.effects)


def test_a_top_up_without_an_answer_is_reversed_and_takes_no_cash() -> None:
    till = Till()
    till.link(LinkStatus.ONLINE)
    topped_up(till)
    till.advance(15.0)  # the authorizing guard
    assert till.records()[-1].txn.status is TxnStatus.REVERSAL_PENDING
    assert till.state.phase is Phase.DECLINED and "No answer: no top-up" in till.screen_text
    assert not any(isinstance(e, OpenDrawer) for e in till.effects)


def test_a_top_up_never_sent_is_declined_by_the_terminal_not_reversed() -> None:
    till = Till()
    till.link(LinkStatus.ONLINE)
    topped_up(till)
    till.feed(AuthResult(till.now_s, 1, AuthOutcome.UNREACHABLE))
    assert till.records()[-1].txn.status is TxnStatus.DECLINED
    assert "Host unreachable" in till.screen_text


@pytest.mark.parametrize(("choice", "notice"), [("7", "Top-up needs host"), ("8", "Balance")])
def test_offline_the_menu_refuses_top_up_and_balance(choice: str, notice: str) -> None:
    till = Till()
    till.link(LinkStatus.OFFLINE)
    till.open_menu()
    till.keys(choice)
    assert till.state.phase is Phase.MENU and notice in till.screen_text
    assert not till.records()


def test_the_link_lost_while_the_amount_is_keyed_refuses_the_top_up() -> None:
    till = Till()
    till.link(LinkStatus.ONLINE)
    till.open_menu()
    till.keys("7", "5", "0", "0")
    till.link(LinkStatus.OFFLINE)
    till.keys("OK")
    assert till.state.phase is Phase.IDLE and "Top-up needs host" in till.screen_text


def test_a_balance_inquiry_takes_a_seq_and_shows_the_balance_without_a_receipt() -> None:
    till = Till(next_seq=9, settings=Settings(print_receipts=True))
    till.link(LinkStatus.ONLINE)
    till.open_menu()
    till.keys("8")
    effects = till.swipe()
    txn = next(e for e in effects if isinstance(e, Record)).txn
    assert (txn.kind, txn.amount_minor, txn.seq, till.state.next_seq) == (
        TxnKind.BALANCE, 0, 9, 10,
    )  # fmt: skip
    effects = till.feed(AuthResult(till.now_s, 9, AuthOutcome.APPROVED, "00", balance_minor=-250))
    assert till.state.phase is Phase.BALANCE_SHOWN and "EUR -2.50" in till.screen_text
    assert not any(isinstance(e, (PrintReceipt, OpenDrawer)) for e in effects)


def test_a_balance_inquiry_the_host_refuses_says_why() -> None:
    till = Till()
    till.link(LinkStatus.ONLINE)
    till.open_menu()
    till.keys("8")
    till.swipe()
    till.feed(AuthResult(till.now_s, 1, AuthOutcome.DECLINED, "14"))
    assert "NO BALANCE" in till.screen_text and "INVALID CARD" in till.screen_text


def test_an_expired_card_never_reaches_the_host_for_a_top_up() -> None:
    till = Till()
    till.link(LinkStatus.ONLINE)
    till.open_menu()
    till.keys("7", "5", "OK")
    effects = till.swipe(EXPIRED)
    assert not any(isinstance(e, (Record, Authorize)) for e in effects)
    assert till.state.phase is Phase.DECLINED


# --- the program's hotlist ------------------------------------------------------------------------


def hotlisted_swipe(till: Till) -> tuple[object, ...]:
    return till.feed(CardSwiped(till.now_s, GOOD, TODAY, hotlisted=True))


def test_offline_a_hotlisted_card_is_declined_and_journaled_as_the_terminals_decline() -> None:
    till = Till(next_seq=5)
    till.link(LinkStatus.OFFLINE)
    till.keys("5", "0", "0", "OK")
    effects = hotlisted_swipe(till)
    record = next(e for e in effects if isinstance(e, Record))
    assert (record.txn.status, record.txn.response_code, record.txn.seq) == (
        TxnStatus.DECLINED, "Z3", 5,
    )  # fmt: skip
    assert till.state.phase is Phase.DECLINED and "CARD BLOCKED" in till.screen_text
    assert till.state.offline_count == 0 and till.state.next_seq == 6


def test_online_a_hotlisted_card_goes_to_the_host_which_decides() -> None:
    till = Till()
    till.link(LinkStatus.ONLINE)
    till.keys("5", "0", "0", "OK")
    effects = hotlisted_swipe(till)
    assert any(isinstance(e, Authorize) for e in effects)  # unblocked meanwhile? the host knows
    till.feed(AuthResult(till.now_s, 1, AuthOutcome.APPROVED, "00", "000001"))
    assert till.state.phase is Phase.APPROVED


@pytest.mark.parametrize("outcome", [AuthOutcome.UNREACHABLE, AuthOutcome.TIMEOUT])
def test_a_hotlisted_card_whose_0200_failed_is_not_approved_offline(outcome: AuthOutcome) -> None:
    till = Till()
    till.link(LinkStatus.ONLINE)
    till.keys("5", "0", "0", "OK")
    hotlisted_swipe(till)
    till.feed(AuthResult(till.now_s, 1, outcome))
    assert till.state.phase is Phase.DECLINED and "CARD BLOCKED" in till.screen_text
    statuses = [r.txn.status for r in till.records()]
    if outcome is AuthOutcome.TIMEOUT:  # the 0200 may have charged: reversed, then declined
        assert statuses[-2:] == [TxnStatus.REVERSAL_PENDING, TxnStatus.DECLINED]
    else:  # never sent: its own seq is the decline
        assert statuses == [TxnStatus.AUTHORIZING, TxnStatus.DECLINED]
    assert not any(r.txn.status is TxnStatus.PENDING for r in till.records())

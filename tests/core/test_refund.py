"""Refund (FN 4): the cap (never more than the sale less earlier refunds), card and cash refunds,
online and offline within the refund limits, and what the core refuses."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from till import GOOD, Till

from pitill.card.model import Card
from pitill.core.effects import Authorize, Beep, FindRecentSales, OpenDrawer, Record
from pitill.core.events import AuthOutcome, AuthResult, BacklogChanged, Booted, RecentSalesFound
from pitill.core.refund import REFUNDABLE, refund_refusal, refundable_minor
from pitill.core.state import OfflineLimits, Phase, Settings, TerminalState
from pitill.core.txn import SaleOnRecord, Txn
from pitill.core.types import BeepPattern, LinkStatus, TxnKind, TxnMode, TxnStatus

OTHER = Card(pan="5555555555554444", expiry_yymm="3012")


def sale(
    seq: int = 7,
    kind: TxnKind = TxnKind.CARD,
    amount_minor: int = 1250,
    refunded_minor: int = 0,
    status: TxnStatus = TxnStatus.APPROVED,
    mode: TxnMode = TxnMode.ONLINE,
) -> SaleOnRecord:
    pan = GOOD.masked_pan if kind is TxnKind.CARD else ""
    return SaleOnRecord(
        seq,
        kind,
        mode,
        status,
        amount_minor,
        "EUR",
        pan,
        60.0,
        False,
        refunded_minor=refunded_minor,
    )


def at_list(*found: SaleOnRecord, settings: Settings | None = None) -> Till:
    till = Till(settings, booted=Booted(0.0, next_seq=20, pin_set=True))
    till.link(LinkStatus.ONLINE)
    till.open_menu()
    effects = till.feed_key("4")
    assert till.state.phase is Phase.REFUND_LOOKUP and FindRecentSales() in effects
    till.feed(RecentSalesFound(till.now_s, found))
    return till


def recorded(effects: tuple[object, ...]) -> list[Txn]:
    return [e.txn for e in effects if isinstance(e, Record)]


# --- the cap -------------------------------------------------------------------------------------


@given(
    amount=st.integers(min_value=1, max_value=10**9),
    refunded=st.integers(min_value=0, max_value=10**9),
    asked=st.integers(min_value=-10, max_value=2 * 10**9),
    kind=st.sampled_from([TxnKind.CARD, TxnKind.CASH]),
)
def test_a_refund_is_never_more_than_the_sale_less_earlier_refunds(
    amount: int, refunded: int, asked: int, kind: TxnKind
) -> None:
    status = next(iter(REFUNDABLE[kind]))
    on_record = sale(kind=kind, amount_minor=amount, refunded_minor=refunded, status=status)
    refusal = refund_refusal(TerminalState(), on_record, asked)
    assert (refusal is None) == (0 < asked <= amount - refunded)


@given(
    amount=st.integers(min_value=1, max_value=99_999),
    refunds=st.lists(st.integers(min_value=0, max_value=120_000), max_size=6),
)
def test_refunds_one_after_another_never_add_up_past_the_sale(
    amount: int, refunds: list[int]
) -> None:
    """Through the keypad: each refund keyed in full, the journal's sum fed back each time."""
    given_back = 0
    for asked in refunds:
        till = at_list(sale(amount_minor=amount, refunded_minor=given_back))
        if refundable_minor(sale(amount_minor=amount, refunded_minor=given_back)) == 0:
            assert till.state.phase is Phase.IDLE  # nothing left: not even listed
            continue
        till.keys("OK", *str(asked), "OK")
        txns = [t for t in till.effects if isinstance(t, Record)]
        if txns:
            given_back += txns[-1].txn.amount_minor
    assert given_back <= amount


@pytest.mark.parametrize(
    ("status", "kind", "ok"),
    [
        (TxnStatus.APPROVED, TxnKind.CARD, True),
        (TxnStatus.PENDING, TxnKind.CARD, True),
        (TxnStatus.FORWARDED, TxnKind.CARD, True),
        (TxnStatus.COMPLETED, TxnKind.CASH, True),
        (TxnStatus.DECLINED, TxnKind.CARD, False),
        (TxnStatus.DECLINED_AFTER, TxnKind.CARD, False),
        (TxnStatus.VOIDED, TxnKind.CARD, False),
        (TxnStatus.REVERSED, TxnKind.CARD, False),
        (TxnStatus.APPROVED, TxnKind.REFUND, False),
    ],
)
def test_only_sales_the_shop_holds_money_for_are_refundable(
    status: TxnStatus, kind: TxnKind, ok: bool
) -> None:
    assert (refundable_minor(sale(kind=kind, status=status)) > 0) is ok


# --- card refunds --------------------------------------------------------------------------------


def test_card_refund_online_is_an_authorized_refund_row_naming_its_sale() -> None:
    till = at_list(sale(seq=5, amount_minor=900), sale(seq=7))
    assert till.state.phase is Phase.REFUND_PICK
    assert "> #5 9.00 1111" in till.screen_text
    till.keys("8")  # down to #7
    assert "> #7 12.50 1111" in till.screen_text
    till.keys("OK")
    assert till.state.phase is Phase.REFUND_AMOUNT and "Max EUR 12.50" in till.screen_text
    till.keys("5", "0", "0", "OK")
    assert till.state.phase is Phase.REFUND_CARD  # picked from the list: the card, please
    till.swipe(OTHER)
    assert till.state.phase is Phase.REFUND_CARD and "Not the card of #7" in till.screen_text
    effects = till.swipe(GOOD)
    (txn,) = recorded(effects)
    assert (txn.kind, txn.status, txn.amount_minor, txn.refunds_seq, txn.seq) == (
        TxnKind.REFUND,
        TxnStatus.AUTHORIZING,
        500,
        7,
        20,
    )
    assert Authorize(txn) in effects and txn.card == GOOD
    assert till.state.phase is Phase.REFUND_AUTHORIZING
    till.keys("CANCEL")  # in flight: its outcome must be learned
    assert till.state.phase is Phase.REFUND_AUTHORIZING
    done = till.feed(AuthResult(till.now_s, 20, AuthOutcome.APPROVED, "00", "R12345"))
    (approved,) = recorded(done)
    assert approved.status is TxnStatus.APPROVED and till.state.phase is Phase.REFUNDED
    assert done.index(Record(approved)) < done.index(Beep(BeepPattern.APPROVE))
    assert "Auth R12345" in till.screen_text


def test_swiping_the_card_at_the_list_finds_its_sales_and_needs_no_second_swipe() -> None:
    till = at_list(sale(seq=5))
    effects = till.swipe(GOOD)
    assert FindRecentSales(GOOD) in effects and till.state.phase is Phase.REFUND_LOOKUP
    till.feed(RecentSalesFound(till.now_s, (sale(seq=5),), card=GOOD))
    till.keys("OK", "OK")  # the sale, all of it
    (txn,) = recorded(tuple(till.effects))
    assert (txn.amount_minor, txn.card, txn.status) == (1250, GOOD, TxnStatus.AUTHORIZING)


def test_a_card_with_no_sale_keeps_the_list() -> None:
    till = at_list(sale(seq=5))
    till.swipe(OTHER)
    till.feed(RecentSalesFound(till.now_s, (), card=OTHER))
    assert till.state.phase is Phase.REFUND_PICK and "No sale of this card" in till.screen_text


def test_the_host_declining_a_refund_is_final() -> None:
    till = at_list(sale())
    till.keys("OK", "OK")
    till.swipe(GOOD)
    done = till.feed(AuthResult(till.now_s, 20, AuthOutcome.DECLINED, "62"))
    (declined,) = recorded(done)
    assert declined.status is TxnStatus.DECLINED and till.state.phase is Phase.REFUND_DECLINED
    assert "NOT REFUNDED" in till.screen_text


LOW = Settings(limits=OfflineLimits(refund_floor_limit_minor=1000, refund_max_total_minor=1500))


@pytest.mark.parametrize("how", ["offline", "unreachable", "retry", "timeout"])
def test_offline_refund_within_its_limits_is_pending_like_an_offline_sale(how: str) -> None:
    till = at_list(sale(), settings=LOW)
    if how == "offline":
        till.link(LinkStatus.OFFLINE)
    till.keys("OK", "8", "0", "0", "OK")
    effects = till.swipe(GOOD)
    if how == "unreachable":
        effects = till.feed(AuthResult(till.now_s, 20, AuthOutcome.UNREACHABLE))
    elif how == "retry":
        effects = till.feed(AuthResult(till.now_s, 20, AuthOutcome.DECLINED, "91"))
    elif how == "timeout":
        till.advance(LOW.timeouts.authorizing_s)
        effects = tuple(till.effects[-4:])
    pending = recorded(effects)[-1]
    assert (pending.status, pending.mode, pending.amount_minor, pending.refunds_seq) == (
        TxnStatus.PENDING,
        TxnMode.OFFLINE,
        800,
        7,
    )
    assert pending.response_code == "Y3" and pending.card == GOOD
    assert till.state.phase is Phase.REFUNDED and "OFFLINE - queued" in till.screen_text
    assert till.state.refund_offline_minor == 800
    if how == "timeout":  # the refund sent may have been applied: reversed before anything else
        first = recorded(tuple(till.effects))[-2]
        assert first.status is TxnStatus.REVERSAL_PENDING and pending.reverses_seq == first.seq


@pytest.mark.parametrize(
    ("amount", "already_minor", "notice"),
    [
        ("1001", 0, "Offline: over EUR 10.00"),
        ("600", 1000, "Limit: EUR 15.00 refunds"),
    ],
)
def test_offline_refund_over_its_limits_is_not_given(
    amount: str, already_minor: int, notice: str
) -> None:
    till = at_list(sale(), settings=LOW)
    till.link(LinkStatus.OFFLINE)
    till.feed(BacklogChanged(till.now_s, pending=1, refund_offline_minor=already_minor))
    till.keys("OK", *amount, "OK")
    effects = till.swipe(GOOD)
    assert recorded(effects) == [] and till.state.phase is Phase.REFUND_DECLINED
    assert notice in till.screen_text


def test_an_unreachable_refund_over_the_limits_is_declined_by_the_terminal() -> None:
    till = at_list(sale(), settings=LOW)
    till.keys("OK", "OK")
    till.swipe(GOOD)
    effects = till.feed(AuthResult(till.now_s, 20, AuthOutcome.UNREACHABLE))
    (undone,) = recorded(effects)
    assert (undone.seq, undone.status, undone.response_code) == (20, TxnStatus.DECLINED, "Z3")
    assert till.state.phase is Phase.REFUND_DECLINED


# --- cash refunds --------------------------------------------------------------------------------


def test_cash_refund_is_journaled_then_opens_the_drawer() -> None:
    till = at_list(sale(kind=TxnKind.CASH, status=TxnStatus.COMPLETED, amount_minor=2000))
    till.keys("OK", "7", "5", "0")
    effects = till.feed_key("OK")
    (txn,) = recorded(effects)
    assert (txn.kind, txn.status, txn.amount_minor, txn.refunds_seq, txn.card) == (
        TxnKind.REFUND,
        TxnStatus.COMPLETED,
        750,
        7,
        None,
    )
    assert effects.index(Record(txn)) < effects.index(OpenDrawer())
    assert till.state.phase is Phase.REFUNDED and "Give the cash back" in till.screen_text


def test_more_than_is_left_cannot_even_be_keyed() -> None:
    till = at_list(sale(amount_minor=1000, refunded_minor=600))
    till.keys("OK", "4", "0", "1")
    assert till.state.amount_minor == 40 and "At most EUR 4.00" in till.screen_text


def test_nothing_refundable_goes_back_to_idle() -> None:
    till = at_list(sale(refunded_minor=1250), replace(sale(), status=TxnStatus.DECLINED))
    assert till.state.phase is Phase.IDLE and "No sale to refund" in till.screen_text

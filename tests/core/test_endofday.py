"""End of day (FN 5) and reprints (FN 6; FN 6 OK without a PIN) in the core, and the settlement
rule both the Z report and the host's check count with."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st
from till import Till

from pitill.core.effects import CloseDay, FindReceipt, ReprintReceipt, VerifyPin
from pitill.core.events import Booted, DayClosed, LastSaleFound, ReceiptFound
from pitill.core.settlement import (
    CARD_OFFLINE,
    CARD_ONLINE,
    CASH,
    REFUND_CARD,
    REFUND_CASH,
    STANDING,
    DayLine,
    Reconciliation,
    Tally,
    owed_count,
    reconciliation,
    z_totals,
)
from pitill.core.state import Phase
from pitill.core.txn import SaleOnRecord
from pitill.core.types import TxnKind, TxnMode, TxnStatus

ON, OFF = TxnMode.ONLINE, TxnMode.OFFLINE


def booted() -> Till:
    return Till(booted=Booted(0.0, next_seq=8, pin_set=True))


def test_fn5_asks_then_closes_then_pages_the_z_report() -> None:
    till = booted()
    till.open_menu()
    assert "5 End day" in till.screen_text and "6 Print" in till.screen_text
    till.keys("5")
    assert till.state.phase is Phase.END_OF_DAY and "END OF DAY?" in till.screen_text
    assert not any(isinstance(e, CloseDay) for e in till.effects)  # nothing before OK
    effects = till.feed_key("OK")
    assert CloseDay() in effects and till.state.phase is Phase.CLOSING_DAY
    till.keys("OK", "CANCEL")  # the cashier cannot leave while the shell closes it
    assert till.state.phase is Phase.CLOSING_DAY
    lines = ("Z day 1 #1-7", "Card Online 2 25.00", "Cash 1 5.00", "Voids 0 0.00", "Host agrees")
    till.feed(DayClosed(till.now_s, True, lines))
    assert till.state.phase is Phase.REPORT and "1/2 OK: next" in till.screen_text
    till.keys("OK")
    assert "Host agrees" in till.screen_text
    till.keys("OK")
    assert till.state.phase is Phase.IDLE


def test_fn5_cancel_closes_nothing() -> None:
    till = booted()
    till.open_menu()
    till.keys("5", "CANCEL")
    assert till.state.phase is Phase.IDLE
    assert not any(isinstance(e, CloseDay) for e in till.effects)


def test_a_day_not_closed_says_so() -> None:
    till = booted()
    till.open_menu()
    till.keys("5", "OK")
    till.feed(DayClosed(till.now_s, False, ("Day NOT closed",)))
    assert till.state.phase is Phase.IDLE and "Day NOT closed" in till.screen_text


def test_a_host_disagreement_is_on_screen() -> None:
    till = booted()
    till.open_menu()
    till.keys("5", "OK")
    till.feed(DayClosed(till.now_s, True, ("HOST DISAGREES (95)", "debits 2/3")))
    assert "HOST DISAGREES (95)" in till.screen_text and "debits 2/3" in till.screen_text


def test_fn_6_ok_reprints_the_last_receipt_without_a_pin() -> None:
    till = booted()
    till.keys("FN", "6")
    effects = till.feed_key("OK")
    assert ReprintReceipt(0, merchant=False) in effects
    assert not any(isinstance(e, VerifyPin) for e in effects)  # no PIN was asked for
    assert till.state.phase is Phase.IDLE and "Reprinting last" in till.screen_text


def test_a_real_pin_starting_with_6_is_still_a_pin() -> None:
    till = booted()
    effects = [*till.feed_key("FN"), *till.feed_key("6"), *till.feed_key("1")]
    effects += [*till.feed_key("2"), *till.feed_key("3"), *till.feed_key("OK")]
    assert VerifyPin("6123") in effects
    assert not any(isinstance(e, ReprintReceipt) for e in effects)


def test_fn6_with_the_pin_browses_older_receipts_and_prints_either_copy() -> None:
    till = booted()
    till.open_menu()
    effects = till.feed_key("6")
    assert FindReceipt(0) in effects and till.state.phase is Phase.REPRINT
    till.feed(ReceiptFound(till.now_s, 7, "12.50 APPROVED"))
    assert "REPRINT #7" in till.screen_text and "12.50 APPROVED" in till.screen_text
    assert FindReceipt(7) in till.feed_key("CLEAR")
    till.feed(ReceiptFound(till.now_s, 5, "5.00 CASH"))
    assert ReprintReceipt(5, merchant=True) in till.feed_key("FN")
    assert "Merchant copy sent" in till.screen_text
    assert ReprintReceipt(5, merchant=False) in till.feed_key("OK")
    till.feed_key("CLEAR")
    till.feed(ReceiptFound(till.now_s, 0))  # nothing older
    assert till.state.reprint_seq == 5 and "No older receipt" in till.screen_text
    till.keys("CANCEL")
    assert till.state.phase is Phase.IDLE


def test_a_sale_of_a_closed_day_is_not_voided() -> None:
    till = booted()
    till.open_menu()
    till.keys("3")
    sale = SaleOnRecord(7, TxnKind.CASH, ON, TxnStatus.COMPLETED, 500, "EUR", "", 10.0, False)
    till.feed(LastSaleFound(till.now_s, dataclasses.replace(sale, day_closed=True)))
    assert till.state.phase is Phase.IDLE and "Day closed: no void" in till.screen_text


# --- the settlement rule -------------------------------------------------------------------


def line(
    kind: str, mode: TxnMode, status: TxnStatus, count: int, amount: int, voided: bool = False
) -> DayLine:
    return DayLine(kind, mode, status, voided, count, amount)


DAY = [
    line("card", ON, TxnStatus.APPROVED, 3, 3000),
    line("card", ON, TxnStatus.REVERSED, 1, 700, voided=True),  # voided: reversal reason 17
    line("card", ON, TxnStatus.REVERSED, 1, 900),  # its answer was lost (68): nowhere
    line("card", ON, TxnStatus.DECLINED, 2, 400),
    line("card", OFF, TxnStatus.FORWARDED, 2, 1500),
    line("card", OFF, TxnStatus.DECLINED_AFTER, 1, 800),
    line("cash", ON, TxnStatus.COMPLETED, 4, 2000),
    line("cash", ON, TxnStatus.VOIDED, 1, 300, voided=True),
    line("card", ON, TxnStatus.VOID, 1, 700),
    line("cash", ON, TxnStatus.VOID, 1, 300),
    line("refund", ON, TxnStatus.APPROVED, 1, 250),  # a kind this module never imports
    line("refund", OFF, TxnStatus.COMPLETED, 1, 200),  # a cash sale's: out of the drawer
    line("refund", OFF, TxnStatus.FORWARDED, 1, 300),  # offline, the host credited it
    line("refund", OFF, TxnStatus.DECLINED_AFTER, 1, 400),  # offline, the host refused it
    line("topup", ON, TxnStatus.APPROVED, 2, 1000),  # cash onto a card: a credit at the host
    line("balance", ON, TxnStatus.APPROVED, 3, 0),  # inquiries: no money, field 80
    line("some_later_kind", ON, TxnStatus.COMPLETED, 1, 50),
]


def test_z_totals_by_kind_are_generic() -> None:
    z = z_totals(DAY)
    assert z.by_kind[CARD_ONLINE] == Tally(3, 3000)
    assert z.by_kind[CARD_OFFLINE] == Tally(3, 2300)  # the refused one was handed over too
    assert z.by_kind[CASH] == Tally(4, 2000)
    # Refunds to the card (online, offline, refused or not) and in cash: two lines, last.
    assert z.by_kind[REFUND_CARD] == Tally(3, 250 + 300 + 400)
    assert z.by_kind[REFUND_CASH] == Tally(1, 200) and z.refunds == Tally(4, 1150)
    assert list(z.by_kind)[-2:] == [REFUND_CARD, REFUND_CASH]
    assert z.by_kind["topup"] == Tally(2, 1000)
    assert z.by_kind["some_later_kind"] == Tally(1, 50)
    assert "balance" not in z.by_kind and z.inquiries == Tally(3, 0)
    assert z.voids == Tally(2, 1000)
    assert z.declined == Tally(2, 400) and z.declined_after == Tally(1, 800)
    # The refund the host refused is no loss of the shop's: its own line, the customer owed it.
    assert z.refunds_refused == Tally(1, 400)
    assert z.net_minor == 3000 + 2300 + 2000 + 1000 + 50 - 1150


def test_the_host_holds_approved_and_accepted_sales_and_void_reversals() -> None:
    assert reconciliation(DAY) == Reconciliation(
        debits=3 + 1 + 2,
        debits_minor=3000 + 700 + 1500,
        debit_reversals=1,
        debit_reversals_minor=700,
        # the refunds the host credited (not the cash one, not the refused one) and the top-ups
        credits=2 + 2,
        credits_minor=250 + 300 + 1000,
        inquiries=3,
    )
    assert owed_count(DAY) == 0


def test_rows_still_owed_to_the_host_hold_the_check_back() -> None:
    owed = [
        line("card", OFF, TxnStatus.PENDING, 2, 1000),
        line("card", ON, TxnStatus.REVERSAL_PENDING, 1, 500),
        line("cash", ON, TxnStatus.COMPLETED, 1, 100),
    ]
    assert owed_count(owed) == 3
    assert z_totals(owed).awaiting_host == Tally(2, 1000)


def test_differences_name_the_field_with_ours_then_theirs() -> None:
    ours = Reconciliation(debits=2, debits_minor=2000)
    theirs = Reconciliation(debits=3, debits_minor=2600)
    assert ours.differences(theirs) == ["debits 2/3", "debits minor 2000/2600"]
    assert ours.differences(ours) == []


# Any day's rows, as the journal's aggregate groups them (the kinds the terminal journals).
DAY_LINES = st.lists(
    st.builds(
        DayLine,
        kind=st.sampled_from([k.value for k in TxnKind]),
        mode=st.sampled_from(TxnMode),
        status=st.sampled_from(TxnStatus),
        voided=st.booleans(),
        count=st.integers(1, 5),
        amount_minor=st.integers(0, 10_000),
    ),
    max_size=12,
)


def total(lines: list[DayLine]) -> Tally:
    return Tally(sum(x.count for x in lines), sum(x.amount_minor for x in lines))


@given(DAY_LINES)
def test_a_refused_refund_is_its_own_line_never_a_loss_and_never_at_the_host(
    lines: list[DayLine],
) -> None:
    z = z_totals(lines)
    refused = [x for x in lines if x.status is TxnStatus.DECLINED_AFTER]
    refunds = [x for x in refused if x.kind == TxnKind.REFUND]
    sales = [x for x in refused if x.kind not in (TxnKind.REFUND, TxnKind.BALANCE)]
    assert z.refunds_refused == total(refunds)
    assert z.declined_after == total(sales)  # the shop's loss: offline sales only
    # What the host must hold (74-89) is the same with or without them: it holds none.
    assert reconciliation(lines) == reconciliation([x for x in lines if x not in refused])


@given(DAY_LINES)
def test_refunds_split_by_card_and_cash_add_up_to_every_refund_given(
    lines: list[DayLine],
) -> None:
    z = z_totals(lines)
    given_back = [x for x in lines if x.kind == TxnKind.REFUND and x.status in STANDING]
    cash = [x for x in given_back if x.status is TxnStatus.COMPLETED]
    card = [x for x in given_back if x.status is not TxnStatus.COMPLETED]
    assert z.by_kind.get(REFUND_CASH, Tally()) == total(cash)
    assert z.by_kind.get(REFUND_CARD, Tally()) == total(card)
    assert z.refunds == total(given_back)
    taken = [
        x for x in lines if x.status in STANDING and x.kind not in (TxnKind.REFUND, TxnKind.BALANCE)
    ]
    assert z.net_minor == total(taken).amount_minor - total(given_back).amount_minor

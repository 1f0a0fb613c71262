"""Void the last sale (FN 3): what the core decides for each kind, and what it refuses."""

from __future__ import annotations

import dataclasses

import pytest
from till import Till

from pitill.core.effects import Beep, FindLastSale, OpenDrawer, VoidSale
from pitill.core.events import Booted, LastSaleFound, VoidDone
from pitill.core.state import Phase
from pitill.core.txn import SaleOnRecord
from pitill.core.types import BeepPattern, TxnKind, TxnMode, TxnStatus


def sale(
    kind: TxnKind = TxnKind.CARD,
    mode: TxnMode = TxnMode.ONLINE,
    status: TxnStatus = TxnStatus.APPROVED,
    age_s: float = 60.0,
    sent: bool = False,
) -> SaleOnRecord:
    pan = "411111******1111" if kind is TxnKind.CARD else ""
    return SaleOnRecord(7, kind, mode, status, 1250, "EUR", pan, age_s, sent)


def at_void(found: SaleOnRecord | None) -> Till:
    till = Till(booted=Booted(0.0, next_seq=8, pin_set=True))
    till.open_menu()
    till.keys("3")
    assert till.state.phase is Phase.VOID_LOOKUP and FindLastSale() in till.effects
    till.feed(LastSaleFound(till.now_s, found))
    return till


@pytest.mark.parametrize(
    ("kind", "mode", "status", "to_status"),
    [
        (TxnKind.CARD, TxnMode.ONLINE, TxnStatus.APPROVED, TxnStatus.REVERSAL_PENDING),
        (TxnKind.CARD, TxnMode.OFFLINE, TxnStatus.PENDING, TxnStatus.VOIDED),
        # already advised: an 0420 naming the 0220 (upstream/messages.py)
        (TxnKind.CARD, TxnMode.OFFLINE, TxnStatus.FORWARDED, TxnStatus.REVERSAL_PENDING),
        (TxnKind.CASH, TxnMode.ONLINE, TxnStatus.COMPLETED, TxnStatus.VOIDED),
    ],
)
def test_each_kind_is_voided_its_own_way_and_linked(
    kind: TxnKind, mode: TxnMode, status: TxnStatus, to_status: TxnStatus
) -> None:
    till = at_void(sale(kind, mode, status))
    assert till.state.phase is Phase.VOID_CONFIRM
    assert "VOID?" in till.screen_text and "EUR 12.50 #7" in till.screen_text
    effects = till.feed_key("OK")
    void_sale = next(e for e in effects if isinstance(e, VoidSale))
    assert (void_sale.seq, void_sale.from_status, void_sale.to_status) == (7, status, to_status)
    void = void_sale.void
    assert (void.seq, void.status, void.reverses_seq, void.amount_minor) == (
        8,
        TxnStatus.VOID,
        7,
        1250,
    )
    assert till.state.next_seq == 9
    assert not any(isinstance(e, OpenDrawer) for e in effects)  # not before it is journaled
    done = till.feed(VoidDone(till.now_s, ok=True))
    assert till.state.phase is Phase.VOIDED and "VOID" in till.screen_text
    assert (OpenDrawer() in done) is (kind is TxnKind.CASH)
    if kind is TxnKind.CASH:
        assert done.index(OpenDrawer()) < done.index(Beep(BeepPattern.APPROVE))
        assert "Give the cash back" in till.screen_text


@pytest.mark.parametrize(
    ("found", "notice"),
    [
        (None, "No sale to void"),
        (sale(age_s=601.0), "Too late: over 10 min"),
        (sale(status=TxnStatus.REVERSAL_PENDING), "Last sale is voided"),
        (sale(status=TxnStatus.VOIDED), "Last sale is voided"),
        (sale(mode=TxnMode.OFFLINE, status=TxnStatus.PENDING, sent=True), "Being sent"),
        (dataclasses.replace(sale(), refunded_minor=100), "Refunded: no void"),
        (sale(status=TxnStatus.AUTHORIZING), "Cannot void: AUTHORIZING"),
    ],
)
def test_what_cannot_be_voided_says_why(found: SaleOnRecord | None, notice: str) -> None:
    till = at_void(found)
    assert till.state.phase is Phase.IDLE and notice in till.screen_text
    assert not any(isinstance(e, VoidSale) for e in till.effects)


def test_the_window_is_a_setting_and_exactly_its_length_still_voids() -> None:
    till = at_void(sale(age_s=600.0))
    assert till.state.phase is Phase.VOID_CONFIRM


def test_cancel_keeps_the_sale_and_a_refused_void_says_so() -> None:
    till = at_void(sale())
    till.keys("CANCEL")
    assert till.state.phase is Phase.IDLE and not any(isinstance(e, VoidSale) for e in till.effects)
    till = at_void(sale())
    till.keys("OK")
    till.feed(VoidDone(till.now_s, ok=False, reason="Sale changed: no void"))
    assert till.state.phase is Phase.IDLE and "Sale changed: no void" in till.screen_text


def test_void_is_behind_the_pin() -> None:
    till = Till(booted=Booted(0.0, next_seq=8, pin_set=True))
    till.keys("FN", "3")
    assert till.state.phase is Phase.PIN_ENTRY and till.state.pin_entry == "3"

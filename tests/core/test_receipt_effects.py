"""The core asks for a receipt after the Record of every outcome, and shrugs off a dead printer."""

from __future__ import annotations

from dataclasses import replace

from till import GOOD, Till

from pitill.core.effects import PrintReceipt, Record
from pitill.core.events import (
    AuthOutcome,
    AuthResult,
    Booted,
    LastSaleFound,
    ReceiptPrinted,
    VoidDone,
)
from pitill.core.state import Phase, Settings
from pitill.core.txn import SaleOnRecord
from pitill.core.types import LinkStatus, TxnKind, TxnMode, TxnStatus

PRINTING = replace(Settings(), print_receipts=True)


def receipt_after_record(effects: tuple[object, ...], seq: int) -> bool:
    records = [i for i, e in enumerate(effects) if isinstance(e, Record) and e.txn.seq == seq]
    prints = [i for i, e in enumerate(effects) if e == PrintReceipt(seq)]
    return bool(prints) and (not records or records[-1] < prints[0])


def test_online_approved_and_declined_sales_get_a_receipt_after_their_record() -> None:
    till = Till(PRINTING)
    till.link(LinkStatus.ONLINE)
    till.keys("1", "2", "0", "0", "OK")
    till.swipe()
    effects = till.feed(AuthResult(0.0, 1, AuthOutcome.APPROVED, "00", "A1"))
    assert till.state.phase is Phase.APPROVED and receipt_after_record(effects, 1)
    till.keys("OK", "5", "0", "OK")
    till.swipe()
    effects = till.feed(AuthResult(0.0, 2, AuthOutcome.DECLINED, "51"))
    assert till.state.phase is Phase.DECLINED and receipt_after_record(effects, 2)


def test_offline_and_cash_get_one_too_and_nothing_prints_without_a_printer() -> None:
    till = Till(PRINTING)
    till.link(LinkStatus.OFFLINE)
    till.keys("8", "0", "0", "OK")
    effects = till.swipe()
    assert till.state.phase is Phase.OFFLINE_APPROVED and receipt_after_record(effects, 1)
    till.keys("OK", "5", "0", "0", "FN")
    effects = till.feed_key("OK")
    assert till.state.phase is Phase.CHANGE and receipt_after_record(effects, 2)
    plain = Till()
    plain.link(LinkStatus.OFFLINE)
    plain.keys("8", "0", "0", "OK")
    plain.swipe()
    assert not any(isinstance(e, PrintReceipt) for e in plain.effects)


def test_a_card_refused_by_the_local_checks_has_no_row_and_no_receipt() -> None:
    till = Till(PRINTING)
    till.link(LinkStatus.ONLINE)
    till.keys("1", "0", "0", "OK")
    till.swipe(replace(GOOD, expiry_yymm="2001"))
    assert till.state.phase is Phase.DECLINED
    assert not any(isinstance(e, PrintReceipt) for e in till.effects)


def test_a_void_prints_the_void_row() -> None:
    till = Till(PRINTING, booted=Booted(0.0, next_seq=8, pin_set=True))
    till.open_menu()
    till.keys("3")
    sale = SaleOnRecord(
        7, TxnKind.CASH, TxnMode.ONLINE, TxnStatus.COMPLETED, 500, "EUR", "", 5.0, False
    )
    till.feed(LastSaleFound(0.0, sale))
    till.keys("OK")
    effects = till.feed(VoidDone(0.0, ok=True))
    assert till.state.phase is Phase.VOIDED and PrintReceipt(8) in effects


def test_a_printer_that_fails_is_a_notice_never_a_lost_sale() -> None:
    till = Till(PRINTING)
    till.link(LinkStatus.OFFLINE)
    till.keys("8", "0", "0", "OK")
    till.swipe()
    till.feed(ReceiptPrinted(0.0, 1, ok=False, reason="SerialException: unplugged"))
    assert till.state.phase is Phase.OFFLINE_APPROVED and "Receipt NOT printed" in till.screen_text
    assert till.records()[-1].txn.status is TxnStatus.PENDING
    till.keys("OK")
    till.feed(ReceiptPrinted(0.0, 1, ok=True))  # late news in idle changes nothing
    assert till.state.phase is Phase.IDLE and "Receipt" not in till.screen_text

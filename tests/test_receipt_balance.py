"""The balance a closed-loop host answered with is journaled and printed on the receipt; top-ups
and balance inquiries in the journal (never a sale to void) and on the receipt."""

from __future__ import annotations

from pathlib import Path

from pitill.card.model import Card
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import Journal
from pitill.receipt import ReceiptHeader, receipt_text

CARD = Card("4111111111111111", "3012")


def test_the_receipt_prints_the_balance_the_journal_kept(tmp_path: Path) -> None:
    with Journal.open(tmp_path, Sealer.load_or_create(tmp_path / KEY_FILE_NAME)) as journal:
        sale = Txn(1, TxnKind.CARD, TxnMode.ONLINE, 1250, "EUR", TxnStatus.AUTHORIZING, card=CARD)
        journal.record(sale)
        journal.record(sale.with_status(TxnStatus.APPROVED, auth_code="A1", balance_minor=-250))
        plain = Txn(2, TxnKind.CASH, TxnMode.ONLINE, 100, "EUR", TxnStatus.COMPLETED)
        journal.record(plain)
        rows = {row.seq: row for row in journal.rows()}
    assert rows[1].balance_minor == -250 and rows[2].balance_minor is None
    assert "Balance" + "EUR -2.50".rjust(32 - 7) in receipt_text(rows[1], "T1", ReceiptHeader())
    assert "Balance" not in receipt_text(rows[2], "T1", ReceiptHeader())


def test_a_top_up_or_a_balance_inquiry_is_never_the_sale_fn3_voids(tmp_path: Path) -> None:
    with Journal.open(tmp_path, Sealer.load_or_create(tmp_path / KEY_FILE_NAME)) as journal:
        journal.record(Txn(1, TxnKind.CASH, TxnMode.ONLINE, 100, "EUR", TxnStatus.COMPLETED))
        for seq, kind in ((2, TxnKind.TOPUP), (3, TxnKind.BALANCE)):
            txn = Txn(seq, kind, TxnMode.ONLINE, 2000, "EUR", TxnStatus.AUTHORIZING, card=CARD)
            journal.record(txn)
            journal.record(txn.with_status(TxnStatus.APPROVED, balance_minor=2000))
        last = journal.last_sale()
        rows = {row.seq: row for row in journal.rows()}
    assert last is not None and last.seq == 1
    topup = receipt_text(rows[2], "T1", ReceiptHeader())
    assert "TOP-UP" in topup and "Cash received" in topup and "411111******1111" in topup

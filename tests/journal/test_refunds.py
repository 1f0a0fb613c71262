"""Refunds in the journal: linked to their sale, summed against it, listed for FN 4, kept apart
from the offline exposure of sales, forwarded like an offline sale."""

from __future__ import annotations

from dataclasses import replace

from journal_helpers import card, cash_sale, offline_sale, online_sale

from pitill.core.settlement import REFUND_CARD, REFUND_CASH, REFUSED_REFUND_LINE, Tally
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.journal.report import CARD_OFFLINE, CARD_ONLINE, CASH, report_from_totals
from pitill.journal.store import Journal
from pitill.receipt import ReceiptHeader, receipt_text
from pitill.records import ForwardKind


def refund(seq: int, of: int, amount_minor: int, status: TxnStatus, index: int = 0) -> Txn:
    mode = TxnMode.OFFLINE if status in (TxnStatus.PENDING, TxnStatus.COMPLETED) else TxnMode.ONLINE
    return Txn(
        seq=seq,
        kind=TxnKind.REFUND,
        mode=mode,
        amount_minor=amount_minor,
        currency="EUR",
        status=status,
        card=card(index or of) if status is not TxnStatus.COMPLETED else None,
        refunds_seq=of,
        response_code="Y3" if status is TxnStatus.PENDING else "",
    )


def test_a_refund_names_its_sale_and_counts_against_it(journal: Journal) -> None:
    journal.record(online_sale(1, TxnStatus.APPROVED))  # 42.00
    journal.record(refund(2, of=1, amount_minor=1000, status=TxnStatus.APPROVED))
    journal.record(refund(3, of=1, amount_minor=500, status=TxnStatus.DECLINED))  # gave nothing
    journal.record(refund(4, of=1, amount_minor=700, status=TxnStatus.PENDING))
    row = journal.get(2)
    assert row is not None and (row.kind, row.refunds_seq) == (TxnKind.REFUND, 1)
    (sale,) = journal.recent_sales(10)
    assert (sale.seq, sale.amount_minor, sale.refunded_minor) == (1, 4200, 1700)
    last = journal.last_sale()  # refunds are not sales: FN 3 sees the sale and its refunds
    assert last is not None and (last.seq, last.refunded_minor) == (1, 1700)


def test_the_list_holds_refundable_sales_not_refunded_in_full_newest_first(
    journal: Journal,
) -> None:
    journal.record(online_sale(1, TxnStatus.APPROVED))
    journal.record(online_sale(2, TxnStatus.DECLINED))
    journal.record(cash_sale(3))
    journal.record(offline_sale(4))
    journal.record(refund(5, of=3, amount_minor=800, status=TxnStatus.COMPLETED))  # all of it
    journal.record(online_sale(6, TxnStatus.APPROVED))
    assert [s.seq for s in journal.recent_sales(10)] == [6, 4, 1]
    assert [s.seq for s in journal.recent_sales(2)] == [6, 4]


def test_a_card_finds_its_own_sales_only(journal: Journal) -> None:
    journal.record(online_sale(1, TxnStatus.APPROVED))  # card(1)
    journal.record(offline_sale(2))  # card(2)
    journal.record(replace(online_sale(3, TxnStatus.APPROVED), card=card(1)))
    journal.record(refund(4, of=1, amount_minor=100, status=TxnStatus.APPROVED, index=1))
    assert [s.seq for s in journal.recent_sales(10, card(1).identity)] == [3, 1]
    assert [s.seq for s in journal.recent_sales(10, card(2).identity)] == [2]
    assert journal.recent_sales(10, card(9).identity) == []


def test_offline_refunds_are_forwarded_but_are_not_offline_sales(journal: Journal) -> None:
    journal.record(online_sale(1, TxnStatus.APPROVED))
    journal.record(offline_sale(2, amount_minor=300))
    journal.record(refund(3, of=1, amount_minor=900, status=TxnStatus.PENDING))
    exposure = journal.offline_exposure()
    assert (exposure.count, exposure.amount_minor) == (1, 300)
    assert journal.offline_refunds_minor() == 900
    assert journal.offline_sales_of_card(card(1).identity, window_s=3600) == 0
    assert journal.pending_count() == 2
    items = journal.next_forward_items(10)
    assert [(i.kind, i.row.seq, i.row.kind) for i in items] == [
        (ForwardKind.ADVICE, 2, TxnKind.CARD),
        (ForwardKind.ADVICE, 3, TxnKind.REFUND),
    ]
    sealed = items[1].card  # sealed until the host has it, like a sale's
    assert sealed is not None and sealed.pan == card(1).pan
    journal.mark_attempts([3])
    journal.mark_forwarded(3, "00")
    assert journal.offline_refunds_minor() == 0
    row = journal.get(3)
    assert row is not None and row.status is TxnStatus.FORWARDED


def test_report_counts_refunds_by_how_they_were_given_and_not_as_sales(journal: Journal) -> None:
    journal.record(online_sale(1, TxnStatus.APPROVED))  # 42.00
    journal.record(cash_sale(2))  # 8.00
    journal.record(refund(3, of=1, amount_minor=1000, status=TxnStatus.APPROVED))
    journal.record(refund(4, of=1, amount_minor=700, status=TxnStatus.PENDING))
    journal.record(refund(5, of=2, amount_minor=300, status=TxnStatus.COMPLETED))
    journal.record(refund(6, of=1, amount_minor=50, status=TxnStatus.DECLINED))
    report = report_from_totals(journal.report_totals())
    assert report.sold[CARD_ONLINE].amount_minor == 4200 and report.sold[CASH].amount_minor == 800
    given = {kind: (t.count, t.amount_minor) for kind, t in report.refunds.items()}
    assert given == {CARD_ONLINE: (1, 1000), CARD_OFFLINE: (1, 700), CASH: (1, 300)}
    assert report.refunds_awaiting_host.amount_minor == 700
    assert "refunds" in report.text() and "Refund cash 1 3.00" in report.screen_lines()


def test_an_offline_refund_the_host_refused_is_its_own_line_not_the_shops_loss(
    journal: Journal,
) -> None:
    """The host refuses an offline refund's advice: the row is DECLINED_AFTER like a refused
    offline sale, but the Z report (screen, print, --day) and `pitill report` show it apart
    from "declined after" (the shop's loss): the customer is still owed it. The 0500 holds
    neither; card and cash refunds are two lines of the Z report."""
    journal.record(online_sale(1, TxnStatus.APPROVED))  # 42.00
    journal.record(cash_sale(2))  # 8.00
    journal.record(offline_sale(3, amount_minor=900))
    journal.record(refund(4, of=1, amount_minor=700, status=TxnStatus.PENDING))
    journal.record(refund(5, of=1, amount_minor=600, status=TxnStatus.PENDING))
    journal.record(refund(6, of=2, amount_minor=300, status=TxnStatus.COMPLETED))
    for seq in (3, 4, 5):
        journal.mark_attempts([seq])
    journal.mark_forwarded(3, "51")  # the offline sale: the shop's loss
    journal.mark_forwarded(4, "62")  # the offline refund: refused, the customer owed it
    journal.mark_forwarded(5, "00")  # credited
    assert [journal.get(seq).status for seq in (3, 4, 5)] == [  # type: ignore[union-attr]
        TxnStatus.DECLINED_AFTER,
        TxnStatus.DECLINED_AFTER,
        TxnStatus.FORWARDED,
    ]
    journal.close_day()
    z = journal.z_report(1)
    assert z.totals.declined_after == Tally(1, 900)
    assert z.totals.refunds_refused == Tally(1, 700)
    assert z.totals.by_kind[REFUND_CARD] == Tally(2, 1300)  # the customer was told refunded
    assert z.totals.by_kind[REFUND_CASH] == Tally(1, 300)
    assert z.totals.refunds == Tally(3, 1600)
    assert (z.host_totals.credits, z.host_totals.credits_minor) == (1, 600)  # the credited one
    assert (z.host_totals.debits, z.host_totals.debits_minor) == (1, 4200)
    screen = z.screen_lines()
    assert f"{REFUSED_REFUND_LINE} 1 7.00" in screen
    assert "Refund Card 2 13.00" in screen and "Refund Cash 1 3.00" in screen
    for width in (32, 42):  # the printer's, `pitill report --day`'s
        printed = z.text(width).splitlines()
        figures = f"{1:>4} {'7.00':>10}"
        assert "refunds refused".ljust(width - len(figures)) + figures in printed
        assert "declined after".ljust(width - len(figures)) + f"{1:>4} {'9.00':>10}" in printed
        assert "  by the host: the card was NOT" in printed
        assert "refund cash".ljust(width - len(figures)) + f"{1:>4} {'3.00':>10}" in printed
    report = report_from_totals(journal.report_totals())  # `pitill report`
    assert (report.declined_after.count, report.declined_after.amount_minor) == (1, 900)
    assert (report.refunds_refused.count, report.refunds_refused.amount_minor) == (1, 700)
    assert f"{REFUSED_REFUND_LINE} 1 7.00" in report.screen_lines()
    assert "the customer is still owed it" in report.text()


def test_receipts_say_refund_and_how_the_money_comes_back(journal: Journal) -> None:
    journal.record(online_sale(1, TxnStatus.APPROVED))
    journal.record(cash_sale(2))
    approved = refund(3, of=1, amount_minor=1000, status=TxnStatus.APPROVED)
    journal.record(replace(approved, auth_code="R00042"))
    journal.record(refund(4, of=1, amount_minor=700, status=TxnStatus.PENDING))
    journal.record(refund(5, of=2, amount_minor=300, status=TxnStatus.COMPLETED))

    def text(seq: int) -> str:
        row = journal.get(seq)
        assert row is not None
        return receipt_text(row, "PITILL01", ReceiptHeader())

    assert "REFUND" in text(3) and "For sale #1" in text(3) and "Auth code R00042" in text(3)
    assert "EUR -10.00" in text(3) and card(1).pan not in text(3) and "400000" in text(3)
    assert "REFUND OFFLINE" in text(4) and "when the line is back." in text(4)
    assert "Cash given back" in text(5) and "EUR -3.00" in text(5) and "STAN" not in text(5)


def test_an_offline_sale_the_host_took_is_voided_by_a_reversal_sent_first(
    journal: Journal,
) -> None:
    """FN 3 on a FORWARDED offline sale: REVERSAL_PENDING, its first 0420 not a repeat."""
    journal.record(offline_sale(1))
    journal.mark_attempts([1])
    journal.mark_attempts([1])  # its advice went twice (0220, then 0221)
    journal.mark_forwarded(1, "00")
    last = journal.last_sale()
    assert last is not None and (last.status, last.sent) == (TxnStatus.FORWARDED, True)
    void = Txn(2, TxnKind.CARD, TxnMode.OFFLINE, 1250, "EUR", TxnStatus.VOID, reverses_seq=1)
    assert journal.record_void(1, TxnStatus.FORWARDED, TxnStatus.REVERSAL_PENDING, void)
    (item,) = journal.next_forward_items(10)
    assert (item.kind, item.row.seq, item.repeat, item.row.voided_by_seq) == (
        ForwardKind.REVERSAL,
        1,
        False,
        2,
    )
    journal.mark_attempts([1])
    journal.mark_forwarded(1, "00")
    row = journal.get(1)
    assert row is not None and row.status is TxnStatus.REVERSED
    assert not journal.record_void(1, TxnStatus.FORWARDED, TxnStatus.REVERSAL_PENDING, void)

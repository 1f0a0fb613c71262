"""The reconciliation report by card tier: what each kind of card sold, and lost after the fact."""

from __future__ import annotations

from dataclasses import replace

from journal_helpers import offline_sale, online_sale

from pitill.card.model import Card, SunMessage
from pitill.core.types import TxnStatus
from pitill.journal.report import read_report
from pitill.journal.store import Journal

SUN = SunMessage(bytes(16), bytes(8))


def test_report_counts_card_sales_by_tier(journal: Journal) -> None:
    journal.record(online_sale(1, TxnStatus.APPROVED))  # stripe, 42.00
    uid = Card.from_uid("04A1B2C3D4E5F6")
    journal.record(replace(online_sale(2, TxnStatus.APPROVED), card=uid))
    for seq, counter in ((3, 1), (4, 2)):
        sun = Card.from_sun("04DE5F1EACC040", counter, SUN)
        journal.record(replace(offline_sale(seq), card=sun))
    journal.mark_forwarded(3, "00")
    journal.mark_forwarded(4, "63")  # the host found the SUN message replayed
    report = read_report(journal.path.parent)
    assert {t: (v.count, v.amount_minor) for t, v in report.by_tier.items()} == {
        "stripe": (1, 4200),
        "uid_only": (1, 4200),
        "sun": (2, 2500),
    }
    assert {t: v.count for t, v in report.declined_after_by_tier.items()} == {"sun": 1}
    text = report.text()
    assert "cards by tier" in text and "sun" in text and "uid_only" in text

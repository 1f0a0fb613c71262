"""`pitill report` counts as the Z report does: its figures are core/settlement's, over any rows
(generated StatusTotals) and over a hand-mixed real journal read by two real `pitill` runs."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from journal_helpers import card, cash_sale, offline_sale, online_sale

from pitill.core.settlement import REFUND_CARD, REFUND_CASH, DayLine, z_totals
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.journal.model import StatusTotal
from pitill.journal.report import CARD_OFFLINE, CARD_ONLINE, CASH, report_from_totals
from pitill.journal.store import Journal
from pitill_cli import PITILL

STATUS_TOTALS = st.lists(
    st.builds(
        StatusTotal,
        kind=st.sampled_from(TxnKind),
        mode=st.sampled_from(TxnMode),
        status=st.sampled_from(TxnStatus),
        currency=st.just("EUR"),
        count=st.integers(1, 5),
        amount_minor=st.integers(0, 100_000),
        card_tier=st.sampled_from(["", "chip", "magstripe"]),
    ),
    max_size=40,
)


def pair(tally: Any) -> tuple[int, int]:
    """(count, amount) of a Tally or of its JSON."""
    if isinstance(tally, dict):
        return tally["count"], tally["amount_minor"]
    return tally.count, tally.amount_minor


def both(a: Any, b: Any) -> tuple[int, int]:
    (count_a, amount_a), (count_b, amount_b) = pair(a), pair(b)
    return count_a + count_b, amount_a + amount_b


def assert_report_is_settlements(report: dict[str, Any], z: dict[str, Any]) -> None:
    """Each of `pitill report`'s figures (as JSON) equals the Z report's (ZTotals as JSON)."""
    by_kind, none = z["by_kind"], {"count": 0, "amount_minor": 0}
    for label in (CARD_ONLINE, CARD_OFFLINE, CASH):
        assert pair(report["sold"][label]) == pair(by_kind.get(label, none)), label
    assert pair(report["topups"]) == pair(by_kind.get(TxnKind.TOPUP.value, none))
    refunds = report["refunds"]
    card_refunds = both(refunds[CARD_ONLINE], refunds[CARD_OFFLINE])
    assert card_refunds == pair(by_kind.get(REFUND_CARD, none))
    assert pair(refunds[CASH]) == pair(by_kind.get(REFUND_CASH, none))
    assert pair(report["declined_online"]) == pair(z["declined"])
    assert pair(report["declined_after"]) == pair(z["declined_after"])
    assert pair(report["refunds_refused"]) == pair(z["refunds_refused"])
    waiting = both(report["awaiting_host"], report["refunds_awaiting_host"])
    assert waiting == pair(z["awaiting_host"])
    assert pair(report["voids"]) == pair(z["voids"])
    assert report["reversals_pending"] == z["reversals_due"]
    assert pair(report["reversals_refused"]) == pair(z["reversals_refused"])


@given(STATUS_TOTALS)
def test_every_figure_of_pitill_report_is_the_z_reports(totals: list[StatusTotal]) -> None:
    z = z_totals(
        DayLine(t.kind.value, t.mode, t.status, False, t.count, t.amount_minor) for t in totals
    )
    assert_report_is_settlements(asdict(report_from_totals(totals)), asdict(z))


def refund(seq: int, of: int, amount_minor: int, status: TxnStatus) -> Txn:
    offline = status in (TxnStatus.PENDING, TxnStatus.FORWARDED, TxnStatus.DECLINED_AFTER)
    cash = status is TxnStatus.COMPLETED
    return Txn(
        seq=seq,
        kind=TxnKind.REFUND,
        mode=TxnMode.OFFLINE if offline or cash else TxnMode.ONLINE,
        amount_minor=amount_minor,
        currency="EUR",
        status=status,
        card=None if cash else card(of),
        refunds_seq=of,
        response_code="Y3" if offline else "",
    )


def run_report(data_dir: Path, *args: str) -> Any:
    return json.loads(
        subprocess.run(
            [*PITILL, "report", "--json", "--data-dir", str(data_dir), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )


def test_pitill_report_and_the_z_report_agree_on_a_mixed_day(
    journal: Journal, tmp_path: Path
) -> None:
    """Every kind of row: sales online, offline (waiting, forwarded, declined after), declined,
    cash, refunds to the card (online, offline, refused by host) and in cash, a void, reversals
    due and refused. Two real `pitill report` runs: the report and the closed day's Z report."""
    rows = [
        online_sale(1, TxnStatus.APPROVED),
        online_sale(2, TxnStatus.DECLINED),
        offline_sale(3, 1000),
        replace(offline_sale(4, 2000), status=TxnStatus.FORWARDED),
        replace(offline_sale(5, 3000), status=TxnStatus.DECLINED_AFTER),
        cash_sale(6),
        refund(7, of=1, amount_minor=500, status=TxnStatus.APPROVED),
        refund(8, of=4, amount_minor=600, status=TxnStatus.PENDING),
        refund(9, of=4, amount_minor=700, status=TxnStatus.FORWARDED),
        refund(10, of=1, amount_minor=900, status=TxnStatus.DECLINED_AFTER),
        refund(11, of=6, amount_minor=300, status=TxnStatus.COMPLETED),
        online_sale(12, TxnStatus.REVERSAL_PENDING),
        online_sale(13, TxnStatus.REVERSAL_REFUSED),
        online_sale(14, TxnStatus.REVERSED),
    ]
    for row in rows:
        journal.record(row)
    journal.close_day()
    data_dir = tmp_path / "data"
    report = run_report(data_dir)
    (day,) = run_report(data_dir, "--day", "1")
    z = day["totals"]
    assert_report_is_settlements(report, z)
    # the refused refund is the customer's, not the shop's loss: in neither report's declined after
    assert pair(report["declined_after"]) == pair(z["declined_after"]) == (1, 3000)
    assert pair(report["refunds_refused"]) == pair(z["refunds_refused"]) == (1, 900)
    assert pair(report["declined_online"]) == (1, 4200)

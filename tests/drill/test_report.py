"""The ledger-vs-journal check catches a lost sale, a double charge and a stray charge."""

from __future__ import annotations

from typing import Any

from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.drill.report import reconcile
from pitill.drill.shop import Customer, Outcome, Sale
from pitill.journal.model import JournalRow

TID = "PITILL01"


def row(
    seq: int, status: TxnStatus, amount: int = 1000, kind: TxnKind = TxnKind.CARD
) -> JournalRow:
    return JournalRow(
        seq=seq,
        kind=kind,
        mode=TxnMode.OFFLINE if status is not TxnStatus.APPROVED else TxnMode.ONLINE,
        amount_minor=amount,
        currency="EUR",
        status=status,
        masked_pan="411111******1111" if kind is TxnKind.CARD else "",
        stan=seq,
        local_datetime=f"2510200930{seq:02d}",
        response_code="00",
        auth_code="",
        tendered_minor=0,
        change_minor=0,
        reverses_seq=0,
        attempts=0,
    )


def entry(
    seq: int, mti: str, code: str = "00", amount: int = 1000, duplicate: bool = False, **extra: Any
) -> dict[str, Any]:
    return {
        "mti": mti,
        "stan": seq,
        "terminal_id": TID,
        "local_datetime": f"10200930{seq:02d}",
        "amount_minor": amount,
        "currency": "978",
        "duplicate": duplicate,
        "response_code": code,
        **extra,
    }


def test_a_clean_day_has_nothing_lost_or_duplicated() -> None:
    rows = [
        row(1, TxnStatus.APPROVED),
        row(2, TxnStatus.FORWARDED, 700),
        row(3, TxnStatus.DECLINED_AFTER, 551),
        row(4, TxnStatus.REVERSED),
        row(5, TxnStatus.COMPLETED, kind=TxnKind.CASH),
        row(6, TxnStatus.DECLINED),
    ]
    ledger = [
        entry(1, "0200"),
        entry(2, "0220", amount=700),
        entry(2, "0221", amount=700, duplicate=True),  # a repeat the host recognised
        entry(3, "0220", "51", amount=551),
        entry(4, "0200"),  # approved, its answer lost: reversed below
        entry(4, "0420", reversed=True),
        entry(6, "0200", "91"),
    ]
    check = reconcile(rows, ledger, TID)
    assert check.lost == [] and check.duplicated == []
    assert check.host_net_minor == check.journal_charged_minor == 1700


def test_an_acknowledged_sale_the_host_never_charged_is_lost() -> None:
    check = reconcile(
        [row(1, TxnStatus.FORWARDED), row(2, TxnStatus.PENDING)], [entry(1, "0220")], TID
    )
    assert len(check.lost) == 1 and "seq 2 PENDING" in check.lost[0]


def test_a_charge_without_an_acknowledged_sale_is_lost() -> None:
    rows = [row(1, TxnStatus.REVERSED)]
    ledger = [entry(1, "0200"), entry(1, "0420", reversed=False), entry(9, "0220")]
    check = reconcile(rows, ledger, TID)
    assert len(check.lost) == 2  # 1 stands unreversed, 9 has no row: both named
    assert sum("STAN 1 " in line for line in check.lost) == 1
    assert sum("STAN 9 " in line for line in check.lost) == 1


def test_a_key_charged_twice_is_duplicated() -> None:
    rows = [row(1, TxnStatus.FORWARDED)]
    check = reconcile(rows, [entry(1, "0220"), entry(1, "0221")], TID)
    assert len(check.duplicated) == 1 and "charged 2 times" in check.duplicated[0]


def test_a_customer_told_approved_must_find_the_sale_in_the_journal() -> None:
    customer = Customer(1, 0.0, 1000, None, True, 1000)
    told = Sale(customer, Outcome.CASH, seqs=[5])
    assert reconcile([], [], TID, [told]) != reconcile([], [], TID, [])
    assert "customer 1 was told cash for seq 5" in reconcile([], [], TID, [told]).lost[0]
    ok = reconcile([row(5, TxnStatus.COMPLETED, kind=TxnKind.CASH)], [], TID, [told])
    assert ok.lost == []

"""The ledger-vs-journal check catches a lost sale, a double charge and a stray charge."""

from __future__ import annotations

from typing import Any

from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.drill.report import after_the_fact, journal_counts, told_of
from pitill.drill.shop import Customer, Outcome, Sale
from pitill.records import JournalRow
from pitill.sim.reconcile import reconcile

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
    check = reconcile(rows, ledger, TID, settled=True)
    assert check.problems() == []
    assert check.host_net_minor == check.journal_charged_minor == 1700


def test_ledger_answers_are_read_with_the_response_table() -> None:
    """An 08 sale and a 94 advice charged the card; a 68 sale did not (it stood in offline)."""
    rows = [
        row(1, TxnStatus.APPROVED),
        row(2, TxnStatus.FORWARDED, 700),
        row(3, TxnStatus.DECLINED),
    ]
    ledger = [entry(1, "0200", "08"), entry(2, "0220", "94", amount=700), entry(3, "0200", "68")]
    check = reconcile(rows, ledger, TID, settled=True)
    assert check.problems() == []
    assert check.host_net_minor == check.journal_charged_minor == 1700


def test_an_acknowledged_sale_the_host_never_charged_is_lost_or_unsettled() -> None:
    rows = [row(1, TxnStatus.FORWARDED), row(2, TxnStatus.APPROVED), row(3, TxnStatus.PENDING)]
    check = reconcile(rows, [entry(1, "0220")], TID, settled=True)
    assert len(check.lost) == 1 and "seq 2 card 1000 APPROVED" in check.lost[0]
    assert len(check.unsettled) == 1 and "seq 3 card 1000 PENDING" in check.unsettled[0]
    # before the heal, a pending sale the host has not seen yet is no problem
    assert reconcile(rows[2:], [], TID, settled=False).problems() == []


def test_a_charge_without_an_acknowledged_sale_is_a_phantom() -> None:
    rows = [row(1, TxnStatus.REVERSED)]
    ledger = [entry(1, "0200"), entry(1, "0420", reversed=False), entry(9, "0220")]
    check = reconcile(rows, ledger, TID, settled=True)
    assert len(check.phantom) == 2  # 1 stands unreversed, 9 has no row: both named
    assert sum("seq 1 " in line for line in check.phantom) == 1
    assert sum("STAN 9 " in line for line in check.phantom) == 1


def test_a_cash_sale_at_the_host_is_a_phantom() -> None:
    rows = [row(1, TxnStatus.COMPLETED, kind=TxnKind.CASH)]
    check = reconcile(rows, [entry(1, "0220")], TID, settled=True)
    assert len(check.phantom) == 1 and "cash sale reached the host" in check.phantom[0]


def test_a_key_charged_twice_is_duplicated() -> None:
    rows = [row(1, TxnStatus.FORWARDED)]
    check = reconcile(rows, [entry(1, "0220"), entry(1, "0221")], TID, settled=True)
    assert len(check.duplicated) == 1 and "charged twice: seq 1" in check.duplicated[0]


def test_a_customer_told_approved_must_find_the_sale_in_the_journal() -> None:
    customer = Customer(1, 0.0, 1000, None, True, 1000)
    told = told_of([Sale(customer, Outcome.CASH, seqs=[5])])
    assert reconcile([], [], TID, settled=True, told=told).lost == [
        "customer 1 was told cash paid for seq 5; the journal has no row"
    ]
    ok = reconcile(
        [row(5, TxnStatus.COMPLETED, kind=TxnKind.CASH)], [], TID, settled=True, told=told
    )
    assert ok.problems() == []


def test_a_pass_needs_consistency_no_failed_customer_and_a_finished_shop() -> None:
    from pitill.drill.report import passed, problems

    clean: dict[str, Any] = {
        "check": {"lost": 0, "duplicated": 0, "phantom": 0, "unsettled": 0},
        "backlog": {"drained": True},
        "consistent": True,
        "sales": {"failed": 0},
        "run": {"shop_finished": True},
    }
    assert passed(clean) and problems(clean) == []
    for path, value, reason in (
        (("consistent",), False, "shop and journal disagree"),
        (("sales", "failed"), 2, "2 failed customers"),
        (("run", "shop_finished"), False, "the shop did not finish"),
        (("check", "lost"), 1, "1 lost"),
        (("backlog", "drained"), False, "backlog not drained"),
    ):
        report = {k: dict(v) if isinstance(v, dict) else v for k, v in clean.items()}
        if len(path) == 1:
            report[path[0]] = value
        else:
            report[path[0]][path[1]] = value
        assert not passed(report) and problems(report) == [reason], path


def test_a_refund_the_host_refused_is_not_the_merchants_loss() -> None:
    """core/settlement's rule: an offline sale refused after the fact is the merchant's loss,
    an offline refund refused after the fact is the customer's (still owed), never both."""
    rows = [
        row(1, TxnStatus.FORWARDED),
        row(2, TxnStatus.DECLINED_AFTER, 551),
        row(3, TxnStatus.DECLINED_AFTER, 900, kind=TxnKind.REFUND),
        row(4, TxnStatus.PENDING, 300, kind=TxnKind.REFUND),
    ]
    assert after_the_fact(rows) == {
        "declined_after": 1,
        "declined_after_minor": 551,
        "refunds_refused": 1,
        "refunds_refused_minor": 900,
    }
    assert journal_counts(rows)["declined_after"] == 1

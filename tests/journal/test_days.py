"""Days in the journal: end of day closes the seqs so far, the next sale opens the next day, a
day's Z report holds its own rows only, and the host check waits for every row of the day."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from journal_helpers import cash_sale, offline_sale, online_sale

from pitill.core.settlement import Reconciliation, Tally
from pitill.core.types import TxnStatus
from pitill.dayend import check_with_host
from pitill.errors import StorageError
from pitill.journal.days import HostCheck
from pitill.journal.report import read_z_report
from pitill.journal.store import Journal
from pitill.upstream.messages import Batch


@dataclass
class FakeHost:
    """The client's reconcile: records what it was asked, answers `code` with its totals."""

    code: str = "00"
    theirs: Reconciliation | None = None
    asked: list[tuple[Batch, Reconciliation]] = field(default_factory=list)

    async def reconcile(
        self, batch: Batch, totals: Reconciliation, currency: str, timeout_s: float | None = None
    ) -> tuple[str, Reconciliation | None]:
        self.asked.append((batch, totals))
        return self.code, self.theirs if self.theirs is not None else totals


def test_days_are_seq_ranges_and_the_next_sale_opens_the_next(journal: Journal) -> None:
    journal.record(cash_sale(1))
    journal.record(online_sale(2, TxnStatus.APPROVED))
    first = journal.close_day()
    assert (first.day, first.first_seq, first.last_seq) == (1, 1, 2)
    assert first.host_status is HostCheck.OWED
    journal.record(cash_sale(3))
    journal.record(cash_sale(4))
    closed = journal.close_day()
    assert (closed.day, closed.first_seq, closed.last_seq) == (2, 3, 4)
    second = read_z_report(journal.path.parent, 2)  # as the app reads it, read-only
    assert second.totals.by_kind["cash"] == Tally(2, 1600)
    assert second.totals.by_kind["card online"] == Tally(0, 0)  # day 1's sale stays in day 1
    assert journal.z_report(1).totals.by_kind["card online"] == Tally(1, 4200)
    empty = journal.close_day()  # a day without a sale can be closed too
    assert (empty.first_seq, empty.last_seq) == (5, 4)
    journal.record(cash_sale(5))
    assert journal.z_report(4).totals.by_kind["cash"] == Tally(1, 800)  # the open day so far
    assert journal.last_sale() is not None and not journal.last_sale().day_closed  # type: ignore[union-attr]
    journal.close_day()
    assert journal.last_sale().day_closed  # type: ignore[union-attr]
    with pytest.raises(StorageError, match="no such day"):
        journal.z_report(9)


def test_the_host_check_waits_for_the_days_rows(journal: Journal) -> None:
    journal.record(online_sale(1, TxnStatus.APPROVED))
    journal.record(offline_sale(2, 700))
    journal.close_day()
    host = FakeHost()
    assert asyncio.run(check_with_host(journal, host, 1, "EUR")) is False
    assert host.asked == [] and journal.days_owed_to_host() == [1]  # the advice is not sent
    journal.mark_forwarded(2, "00")
    assert asyncio.run(check_with_host(journal, host, 1, "EUR")) is True
    assert host.asked == [(Batch(1, 1, 2), Reconciliation(debits=2, debits_minor=4200 + 700))]
    assert journal.days_owed_to_host() == []
    assert journal.z_report(1).day.host_status is HostCheck.AGREED


def test_a_disagreement_is_kept_with_what_differs(journal: Journal) -> None:
    journal.record(online_sale(1, TxnStatus.APPROVED))
    journal.close_day()
    host = FakeHost("95", Reconciliation(debits=2, debits_minor=8400))
    assert asyncio.run(check_with_host(journal, host, 1, "EUR")) is True
    day = journal.z_report(1).day
    assert (day.host_status, day.host_code) == (HostCheck.DISAGREED, "95")
    assert day.host_note == "debits 1/2; debits minor 4200/8400"


def test_a_retry_answer_leaves_the_check_owed(journal: Journal) -> None:
    journal.close_day()
    assert asyncio.run(check_with_host(journal, FakeHost("91"), 1, "EUR")) is False
    assert journal.days_owed_to_host() == [1]

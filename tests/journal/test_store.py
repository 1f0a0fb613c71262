"""The journal API on a real SQLite file: recording, order, forwarding state, restart, recovery."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from journal_helpers import (
    OpenJournal,
    StepClock,
    cash_sale,
    offline_sale,
    online_sale,
    pan_for,
    row_of,
)

from pitill.card.model import Card
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.errors import SealError, StorageError
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import JOURNAL_FILE_NAME, Journal
from pitill.records import ForwardKind


def sealed_column(journal: Journal, seq: int) -> bytes | None:
    """sealed_card as stored, read through a second connection."""
    with sqlite3.connect(journal.path) as raw:
        found = raw.execute("SELECT sealed_card FROM txns WHERE seq = ?", (seq,)).fetchone()
    raw.close()
    assert found is not None
    return found[0]  # type: ignore[no-any-return]


def test_empty_journal(journal: Journal) -> None:
    assert journal.next_seq() == 1
    assert journal.pending_count() == 0 and journal.forwarded_count() == 0
    assert journal.rows() == [] and journal.get(1) is None
    assert journal.next_forward_item() is None
    assert journal.moved_aside is None and journal.notice is None
    assert journal.integrity_ok()


def test_record_inserts_a_row_stamped_by_the_clock(open_journal: OpenJournal) -> None:
    journal = open_journal(clock=StepClock(datetime(2025, 10, 20, 9, 30, 5)))
    row = journal.record(offline_sale(1_000_000, amount_minor=1999))
    assert row.seq == 1_000_000 and row.stan == 1  # STAN cycles through 1..999999
    assert row.kind is TxnKind.CARD and row.mode is TxnMode.OFFLINE
    assert row.status is TxnStatus.PENDING and row.amount_minor == 1999
    assert row.masked_pan == "400000******" + pan_for(1_000_000)[-4:]
    assert row.local_datetime == "251020093005"
    assert row.attempts == 0 and row.response_code == "Y3"
    assert journal.get(1_000_000) == row


def test_record_updates_a_row_and_keeps_its_first_stamp(journal: Journal) -> None:
    first = journal.record(online_sale(1))
    later = journal.record(
        online_sale(1).with_status(TxnStatus.APPROVED, response_code="00", auth_code="A1B2C3")
    )
    assert later.status is TxnStatus.APPROVED and later.auth_code == "A1B2C3"
    assert later.local_datetime == first.local_datetime  # the host dedups on it: never changes
    assert [(h.status, h.at) for h in journal.history(1)] == [
        (TxnStatus.AUTHORIZING, "2025-10-20T09:30:00"),
        (TxnStatus.APPROVED, "2025-10-20T09:30:01"),
    ]
    assert len(journal.rows()) == 1


def test_an_acknowledged_row_is_never_reopened(journal: Journal) -> None:
    journal.record(offline_sale(1))
    journal.mark_forwarded(1, "00")
    with pytest.raises(StorageError, match="already acknowledged"):
        journal.record(offline_sale(1))  # a stale copy of the sale: must not be sent again
    assert journal.pending_count() == 0 and sealed_column(journal, 1) is None


def test_an_update_without_the_card_keeps_masked_pan_and_sealed_card(journal: Journal) -> None:
    journal.record(offline_sale(1))
    blob = sealed_column(journal, 1)
    row = journal.record(offline_sale(1).with_status(TxnStatus.PENDING, card=None))
    assert row.masked_pan.endswith(pan_for(1)[-4:]) and sealed_column(journal, 1) == blob


def test_cash_sale_keeps_tender_and_change(journal: Journal) -> None:
    row = journal.record(cash_sale(1), note="drawer opened")
    assert (row.tendered_minor, row.change_minor, row.masked_pan) == (1000, 200, "")
    assert journal.history(1)[0].note == "drawer opened"
    assert journal.pending_count() == 0  # cash never goes upstream


def test_offline_sale_is_sealed_and_online_ones_are_not(journal: Journal) -> None:
    journal.record(offline_sale(1))
    journal.record(online_sale(2))
    blob = sealed_column(journal, 1)
    assert blob is not None and pan_for(1).encode() not in blob
    assert sealed_column(journal, 2) is None


def test_pending_without_card_is_refused_and_nothing_stored(journal: Journal) -> None:
    with pytest.raises(StorageError, match="PENDING without card data"):
        journal.record(offline_sale(1).with_status(TxnStatus.PENDING, card=None))
    assert journal.get(1) is None and journal.history(1) == []


def test_seq_must_be_positive(journal: Journal) -> None:
    with pytest.raises(StorageError, match="seq 0"):
        journal.record(cash_sale(0))


def test_next_seq_and_pending_survive_a_restart(open_journal: OpenJournal) -> None:
    journal = open_journal()
    for seq in (1, 2, 3):
        journal.record(offline_sale(seq))
    journal.record(cash_sale(4))
    journal.mark_attempt(2)
    journal.close()

    reopened = open_journal()
    assert reopened.next_seq() == 5
    assert reopened.pending_count() == 3
    item = reopened.next_forward_item()
    assert item is not None and item.row.seq == 1 and item.card is not None
    assert item.card.pan == pan_for(1)
    assert row_of(reopened, 2).attempts == 1


def test_forward_order_reversals_first_then_by_seq_never_by_clock(
    open_journal: OpenJournal,
) -> None:
    clock = StepClock(datetime(2025, 10, 20, 12, 0), step_s=-3600)  # RTC-less Pi: time runs back
    journal = open_journal(clock=clock)
    for seq in (1, 2, 3):
        journal.record(offline_sale(seq))
    journal.record(online_sale(4).with_status(TxnStatus.REVERSAL_PENDING))
    seen = []
    while (item := journal.next_forward_item()) is not None:
        seen.append((item.kind, item.row.seq))
        if item.row.seq == 2:  # a reversal queued mid-drain jumps ahead of the advices
            journal.record(online_sale(5).with_status(TxnStatus.REVERSAL_PENDING))
        journal.mark_attempt(item.row.seq)
        journal.mark_forwarded(item.row.seq, "00")
    assert seen == [
        (ForwardKind.REVERSAL, 4),
        (ForwardKind.ADVICE, 1),
        (ForwardKind.ADVICE, 2),
        (ForwardKind.REVERSAL, 5),
        (ForwardKind.ADVICE, 3),
    ]
    assert [r.seq for r in journal.rows()] == [1, 2, 3, 4, 5]


def reversal_column(journal: Journal, seq: int) -> bytes | None:
    with sqlite3.connect(journal.path) as raw:
        found = raw.execute("SELECT reversal_card FROM txns WHERE seq = ?", (seq,)).fetchone()
    raw.close()
    assert found is not None
    return found[0]  # type: ignore[no-any-return]


def test_a_reversal_carries_the_sealed_card_of_its_sale_until_the_0430(
    open_journal: OpenJournal,
) -> None:
    journal = open_journal()
    journal.record(online_sale(1))  # AUTHORIZING: the 0200 is about to go
    blob = reversal_column(journal, 1)
    assert blob is not None and pan_for(1).encode() not in blob
    # The 0200 timed out: the reversal is recorded without the card, the sealed one stays.
    journal.record(online_sale(1).with_status(TxnStatus.REVERSAL_PENDING, card=None))
    assert reversal_column(journal, 1) == blob
    journal.close()

    restarted = open_journal()
    item = restarted.next_forward_item()
    assert item is not None and item.kind is ForwardKind.REVERSAL
    assert item.card == Card(pan=pan_for(1), expiry_yymm="2812")
    restarted.mark_attempt(1)
    assert reversal_column(restarted, 1) == blob  # sent, not acknowledged: kept for the 0421
    restarted.mark_forwarded(1, "00")  # the 0430
    assert reversal_column(restarted, 1) is None


@pytest.mark.parametrize("answer", [TxnStatus.APPROVED, TxnStatus.DECLINED])
def test_an_answered_online_sale_keeps_no_card(journal: Journal, answer: TxnStatus) -> None:
    journal.record(online_sale(1))
    assert reversal_column(journal, 1) is not None
    journal.record(online_sale(1).with_status(answer, response_code="00"))
    assert reversal_column(journal, 1) is None and sealed_column(journal, 1) is None


def test_a_void_or_a_stan_only_reversal_carries_no_card(journal: Journal) -> None:
    journal.record(online_sale(1))
    journal.record(online_sale(1).with_status(TxnStatus.APPROVED, response_code="00"))
    void = Txn(2, TxnKind.CARD, TxnMode.ONLINE, 4200, "EUR", TxnStatus.VOID, reverses_seq=1)
    assert journal.record_void(1, TxnStatus.APPROVED, TxnStatus.REVERSAL_PENDING, void)
    item = journal.next_forward_item()
    assert item is not None and item.kind is ForwardKind.REVERSAL and item.card is None


def test_advice_item_unseals_pan_and_expiry(journal: Journal) -> None:
    journal.record(offline_sale(1))
    item = journal.next_forward_item()
    assert item is not None and item.kind is ForwardKind.ADVICE
    assert item.card == Card(pan=pan_for(1), expiry_yymm="2812")
    assert not item.repeat


def test_mark_attempt_is_durable_and_makes_the_next_send_a_repeat(
    open_journal: OpenJournal,
) -> None:
    journal = open_journal()
    journal.record(offline_sale(1))
    assert journal.mark_attempt(1) == 1
    journal.close()  # a crash right after the attempt was counted
    item = open_journal().next_forward_item()
    assert item is not None and item.row.attempts == 1 and item.repeat


@pytest.mark.parametrize(
    ("start", "code", "final"),
    [
        (TxnStatus.PENDING, "00", TxnStatus.FORWARDED),
        (TxnStatus.PENDING, "05", TxnStatus.DECLINED_AFTER),
        (TxnStatus.PENDING, "08", TxnStatus.FORWARDED),
        (TxnStatus.PENDING, "11", TxnStatus.FORWARDED),
        (TxnStatus.PENDING, "94", TxnStatus.FORWARDED),
        (TxnStatus.PENDING, "51", TxnStatus.DECLINED_AFTER),  # the issuer judged the card
        # the host did not process the advice (an unknown code: pitill cannot tell it did):
        # held for a person, its card kept apart (held_card), never the shop's loss by itself
        (TxnStatus.PENDING, "30", TxnStatus.ADVICE_REFUSED),
        (TxnStatus.PENDING, "Q7", TxnStatus.ADVICE_REFUSED),
        (TxnStatus.REVERSAL_PENDING, "30", TxnStatus.REVERSAL_REFUSED),  # to a reversal: refused
        (TxnStatus.REVERSAL_PENDING, "00", TxnStatus.REVERSED),
        (TxnStatus.REVERSAL_PENDING, "94", TxnStatus.REVERSED),
        # 25, original not found: the host may hold it under another key (field 90 built
        # otherwise than the 0200 was sent): a person looks, it is never counted as reversed
        (TxnStatus.REVERSAL_PENDING, "25", TxnStatus.REVERSAL_REFUSED),
    ],
)
def test_mark_forwarded_records_the_answer_and_wipes_the_card(
    journal: Journal, start: TxnStatus, code: str, final: TxnStatus
) -> None:
    txn = offline_sale(1) if start is TxnStatus.PENDING else online_sale(1).with_status(start)
    journal.record(txn)
    journal.mark_attempt(1)
    row = journal.mark_forwarded(1, code)
    assert row.status is final and row.response_code == code
    assert sealed_column(journal, 1) is None
    assert journal.history(1)[-1].note.startswith(f"host answered {code}")
    assert journal.pending_count() == 0 and journal.forwarded_count() == 1
    assert journal.next_forward_item() is None


def test_only_waiting_items_can_be_attempted_or_forwarded(journal: Journal) -> None:
    journal.record(cash_sale(1))
    journal.record(offline_sale(2))
    journal.mark_forwarded(2, "00")
    for seq in (1, 2, 99):
        with pytest.raises(StorageError, match=f"seq {seq} is not waiting"):
            journal.mark_attempt(seq)
        with pytest.raises(StorageError, match=f"seq {seq} is not waiting"):
            journal.mark_forwarded(seq, "00")
    with pytest.raises(StorageError, match="not 2 characters"):
        journal.mark_forwarded(2, "000")


def test_recover_at_boot_queues_reversals_for_interrupted_authorizations(
    open_journal: OpenJournal,
) -> None:
    journal = open_journal()
    journal.record(online_sale(1))  # AUTHORIZING when the power went
    journal.record(online_sale(2).with_status(TxnStatus.APPROVED, response_code="00"))
    journal.record(online_sale(3))
    journal.record(offline_sale(4))
    journal.close()

    rebooted = open_journal()
    assert rebooted.recover_at_boot() == [1, 3]
    assert rebooted.recover_at_boot() == []
    assert reversal_column(rebooted, 2) is None  # answered: nothing kept
    assert reversal_column(rebooted, 1) is not None  # its 0420 carries fields 2, 14, 22
    assert row_of(rebooted, 1).status is TxnStatus.REVERSAL_PENDING
    assert row_of(rebooted, 2).status is TxnStatus.APPROVED
    assert rebooted.history(3)[-1].note == "crash during authorization"
    assert rebooted.pending_count() == 3
    order = []
    while (item := rebooted.next_forward_item()) is not None:
        order.append(item.row.seq)
        assert item.card == Card(pan=pan_for(item.row.seq), expiry_yymm="2812")
        rebooted.mark_forwarded(item.row.seq, "00")
    assert order == [1, 3, 4]


def test_reopening_with_the_key_file_missing_fails_closed(open_journal: OpenJournal) -> None:
    journal = open_journal()
    journal.record(offline_sale(1))
    key = journal.path.parent / KEY_FILE_NAME
    journal.close()
    key.unlink()
    with pytest.raises(SealError, match=r"seal key file .* is missing.*Restore"):
        open_journal()
    assert not key.exists()  # no new key was made over the lost one


def test_reopening_with_another_key_fails_closed(open_journal: OpenJournal) -> None:
    journal = open_journal()
    journal.record(offline_sale(1))
    key = journal.path.parent / KEY_FILE_NAME
    journal.close()
    key.write_bytes(bytes(range(32)))
    with pytest.raises(SealError, match="wrong seal key"):
        open_journal()


def test_a_new_key_is_fine_when_nothing_sealed_is_left(open_journal: OpenJournal) -> None:
    journal = open_journal()
    journal.record(offline_sale(1))
    journal.mark_forwarded(1, "00")
    key = journal.path.parent / KEY_FILE_NAME
    journal.close()
    key.unlink()
    reopened = open_journal()
    reopened.record(offline_sale(2))
    item = reopened.next_forward_item()
    assert key.exists() and item is not None and item.card == Card(pan_for(2), "2812")


def test_journal_in_a_path_that_cannot_be_a_file_is_a_storage_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / JOURNAL_FILE_NAME).mkdir(parents=True)
    with pytest.raises(StorageError, match="cannot create the journal"):
        Journal.open(data, Sealer.load_or_create(data / KEY_FILE_NAME))
    assert (data / JOURNAL_FILE_NAME).is_dir()  # not mistaken for corruption, not moved
    assert sorted(p.name for p in data.iterdir()) == [JOURNAL_FILE_NAME]


def test_a_void_is_one_commit_and_never_touches_a_sale_already_sent(journal: Journal) -> None:
    """The forwarder counts an attempt before it sends (under the journal's lock): a void that
    comes after it must change nothing, or the host would hold a sale the journal calls void."""
    journal.record(offline_sale(1))
    journal.record(offline_sale(2))
    last = journal.last_sale()
    assert last is not None and (last.seq, last.status, last.sent) == (2, TxnStatus.PENDING, False)
    void = Txn(3, TxnKind.CARD, TxnMode.OFFLINE, 1250, "EUR", TxnStatus.VOID, reverses_seq=2)
    journal.mark_attempt(1)
    refused = Txn(4, TxnKind.CARD, TxnMode.OFFLINE, 1250, "EUR", TxnStatus.VOID, reverses_seq=1)
    assert not journal.record_void(1, TxnStatus.PENDING, TxnStatus.VOIDED, refused)
    assert journal.get(1).status is TxnStatus.PENDING and journal.get(4) is None
    assert journal.record_void(2, TxnStatus.PENDING, TxnStatus.VOIDED, void)
    voided, record = journal.get(2), journal.get(3)
    assert voided.status is TxnStatus.VOIDED and voided.voided_by_seq == 3
    assert record.status is TxnStatus.VOID and record.reverses_seq == 2
    assert record.masked_pan == voided.masked_pan != ""  # the void names the card, masked
    assert [item.row.seq for item in journal.next_forward_items(10)] == [1]  # 2 never goes
    last = journal.last_sale()
    assert last is not None and (last.seq, last.status) == (2, TxnStatus.VOIDED)


def test_the_backlog_count_follows_every_change_here_and_through_another_connection(
    journal: Journal,
) -> None:
    # pending_count is kept between changes (it walks the index): it must never go stale.
    for seq in (1, 2, 3):
        journal.record(offline_sale(seq))
    assert journal.pending_count() == 3
    journal.mark_attempts([1, 2])
    journal.mark_forwarded_many([(1, "00")], unsent=[2])
    assert journal.pending_count() == 2 and journal.forwarded_count() == 1
    other = sqlite3.connect(journal.path)  # another process (pitill journal settle, a tool)
    with other:
        other.execute("UPDATE txns SET status = 'DECLINED_AFTER', sealed_card = NULL WHERE seq = 3")
    other.close()
    assert journal.pending_count() == 1 and journal.forwarded_count() == 2

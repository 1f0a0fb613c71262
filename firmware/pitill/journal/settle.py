"""`pitill journal settle`, `requeue` and `decline`: rows the host answered that wait for a person.

A REVERSAL_REFUSED row waits for a person (DECISIONS.md, "A refused reversal is never counted as
reversed"); once the acquirer has reversed the sale by hand, or confirmed it never held the
charge, this records it: the row becomes REVERSED with the note in its history, and `pitill
doctor`, the reports and the Z report stop flagging it. An advice the host refused unprocessed
(ADVICE_REFUSED, held with its card) is re-queued after a fix (PENDING: the forwarder sends it)
or recorded declined (DECLINED_AFTER, its card wiped). Run with the terminal stopped, as the
service's user (`sudo -u pitill`): as root, SQLite leaves root-owned -wal/-shm files that stop
the service. The note is the only record of who cleared the row and why: never blank, one line.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from pathlib import Path

from pitill.core.types import format_amount
from pitill.errors import StorageError, UsageError
from pitill.journal.datadir import DataDirLock
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import JOURNAL_FILE_NAME, Journal
from pitill.records import JournalRow

NOTE_MAX_CHARS = 200


def checked_note(note: str) -> str:
    """`note` with control characters taken out and spaces trimmed; refused blank or too long."""
    cleaned = "".join(" " if char in "\t\n\r" else char for char in note)
    cleaned = "".join(char for char in cleaned if unicodedata.category(char) != "Cc").strip()
    if not cleaned:
        raise UsageError(
            "--note is blank: say who decided it and their reference "
            '(e.g. --note "acquirer ticket 4711: reversed by hand")'
        )
    if len(cleaned) > NOTE_MAX_CHARS:
        raise UsageError(
            f"--note is {len(cleaned)} characters, at most {NOTE_MAX_CHARS}: "
            "give who confirmed it and a reference, not the whole story"
        )
    return cleaned


def settle_by_hand(data_dir: Path, seq: int, note: str) -> str:
    """Settle refused reversal `seq` with `note` (who confirmed it, a reference); one line."""
    note = checked_note(note)
    row = _by_hand(data_dir, lambda journal: journal.settle_refused_reversal(seq, note))
    return f"seq {seq} ({_named(row)}) is REVERSED, settled by hand: {note}"


def requeue_by_hand(data_dir: Path, seq: int, note: str) -> str:
    """Send held advice `seq` again (the cause was fixed: `note` says what); one line."""
    note = checked_note(note)
    row = _by_hand(data_dir, lambda journal: journal.requeue_refused_advice(seq, note))
    return f"seq {seq} ({_named(row)}) is PENDING again: the terminal sends it when online"


def decline_by_hand(data_dir: Path, seq: int, note: str) -> str:
    """Record held advice `seq` as declined (`note`: who decided, why); one line."""
    note = checked_note(note)
    row = _by_hand(data_dir, lambda journal: journal.decline_refused_advice(seq, note))
    return f"seq {seq} ({_named(row)}) is DECLINED_AFTER, its card wiped: {note}"


def _by_hand(data_dir: Path, change: Callable[[Journal], JournalRow]) -> JournalRow:
    if not (data_dir / JOURNAL_FILE_NAME).exists():
        raise StorageError(
            f"no journal in {data_dir}: is --data-dir the terminal's data directory?"
        )
    with DataDirLock.acquire(data_dir):
        sealer = Sealer.load_or_create(data_dir / KEY_FILE_NAME)
        with Journal.open(data_dir, sealer) as journal:
            return change(journal)


def _named(row: JournalRow) -> str:
    return f"STAN {row.stan:06d}, {format_amount(row.amount_minor)} {row.currency}"

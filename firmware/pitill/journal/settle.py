"""`pitill journal settle`: a reversal the host refused, settled by a person with the acquirer.

A REVERSAL_REFUSED row waits for a person (DECISIONS.md, "A refused reversal is never counted as
reversed"); once the acquirer has reversed the sale by hand, or confirmed it never held the
charge, this records it: the row becomes REVERSED with the note in its history, and `pitill
doctor`, the reports and the Z report stop flagging it. Run with the terminal stopped.
"""

from __future__ import annotations

from pathlib import Path

from pitill.core.types import format_amount
from pitill.errors import StorageError
from pitill.journal.datadir import DataDirLock
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import JOURNAL_FILE_NAME, Journal


def settle_by_hand(data_dir: Path, seq: int, note: str) -> str:
    """Settle refused reversal `seq` with `note` (who confirmed it, a reference); one line."""
    if not (data_dir / JOURNAL_FILE_NAME).exists():
        raise StorageError(
            f"no journal in {data_dir}: is --data-dir the terminal's data directory?"
        )
    with DataDirLock.acquire(data_dir):
        sealer = Sealer.load_or_create(data_dir / KEY_FILE_NAME)
        with Journal.open(data_dir, sealer) as journal:
            row = journal.settle_refused_reversal(seq, note)
    amount = f"{format_amount(row.amount_minor)} {row.currency}"
    return f"seq {seq} (STAN {row.stan:06d}, {amount}) is REVERSED, settled by hand: {note}"

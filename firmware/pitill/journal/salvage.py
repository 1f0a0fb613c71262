"""`pitill journal salvage` and `pitill journal init`: the operator's ways out of a lost journal.

A journal that fails its integrity check at open is moved aside (dbfile.py), never deleted; the
offline sales and reversals in it are still owed to the host, and the rows answered but waiting
for a person (a refused reversal, a held advice with its kept card) must stay flagged. salvage
reads them from a copy of the moved file (with its WAL, so nothing committed is missed; the
evidence itself is never written to) and adopts them into the live journal (Journal.adopt):
exactly once, keyed by the host's own key (STAN and local date/time). It holds the data dir
lock, so the terminal must be stopped: the seqs it hands out would otherwise collide with the
running terminal's.

init starts an empty journal where none is; where sales were evidently written before, only
with --force (datadir.check_journal_present is what refuses to do it silently at start).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.errors import SealError, StorageError
from pitill.journal.datadir import (
    DataDirLock,
    check_journal_present,
    earlier_sales_evidence,
    moved_aside_files,
)
from pitill.journal.model import OwedRow
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import JOURNAL_FILE_NAME, Journal

OWED = (TxnStatus.PENDING, TxnStatus.REVERSAL_PENDING, TxnStatus.AUTHORIZING)
# Carried over too, status kept: a new journal without them would stop flagging them.
NEEDS_ATTENTION = (TxnStatus.REVERSAL_REFUSED, TxnStatus.ADVICE_REFUSED)
CARRIED = (*OWED, *NEEDS_ATTENTION)
_COLUMNS = (
    "seq, kind, mode, amount_minor, currency, status, masked_pan, stan, local_datetime, "
    "response_code, attempts, created_at, "
)
_SUFFIXES = ("", "-wal")


@dataclass
class Salvage:
    """What one salvage of one file did."""

    source: Path
    taken: list[tuple[int, int]] = field(default_factory=list)  # (seq in the file, new seq)
    found: int = 0  # rows owed to the host read from the file
    problems: list[str] = field(default_factory=list)  # what could not be read or unsealed

    def line(self) -> str:
        already = self.found - len(self.taken)
        if self.taken:
            moves = ", ".join(f"{old}->{new}" for old, new in self.taken)
            said = f"recovered {len(self.taken)} transaction(s) owed to the host (seq {moves})"
        else:
            said = "nothing new to recover"
        said += f"; {already} already in the journal" if already else ""
        said += f"; NOT recovered: {'; '.join(self.problems)}" if self.problems else ""
        return f"{self.source}: {said}"


def read_owed(source: Path, sealer: Sealer) -> tuple[list[OwedRow], list[str]]:
    """The rows of `source` still owed to the host, and what could not be read or unsealed."""
    if not source.is_file():
        raise StorageError(f"no journal file at {source}: name a moved-aside journal to salvage")
    with tempfile.TemporaryDirectory(prefix="pitill-salvage-") as scratch:
        copy = Path(scratch) / "salvage.sqlite3"
        try:
            for suffix in _SUFFIXES:
                if source.with_name(source.name + suffix).exists():
                    shutil.copyfile(source.with_name(source.name + suffix), f"{copy}{suffix}")
            conn = sqlite3.connect(copy)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot read {source}: {exc}") from exc
        try:
            records, problems = _read_records(conn, source)
        finally:
            conn.close()
    owed = []
    for record in records:
        row, problem = _owed_row(record, sealer)
        if row is not None:
            owed.append(row)
        else:
            problems.append(problem)
    return owed, problems


def _read_records(
    conn: sqlite3.Connection, source: Path
) -> tuple[list[tuple[object, ...]], list[str]]:
    marks = ", ".join("?" for _ in CARRIED)
    statuses = tuple(s.value for s in CARRIED)
    columns = _COLUMNS + _card_column(conn)
    try:
        # NOT INDEXED: the damage is often in the (status, seq) index; the table may be sound.
        return conn.execute(
            f"SELECT {columns} FROM txns NOT INDEXED WHERE status IN ({marks}) ORDER BY seq",
            statuses,
        ).fetchall(), []
    except sqlite3.DatabaseError:
        pass
    try:  # the table itself is damaged: read what can be read, row by row
        (top,) = conn.execute("SELECT max(seq) FROM txns").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot read the transactions of {source} at all: {exc}") from exc
    records, unreadable = [], []
    for seq in range(1, int(top or 0) + 1):
        try:
            found = conn.execute(
                f"SELECT {columns} FROM txns WHERE seq = ? AND status IN ({marks})",
                (seq, *statuses),
            ).fetchone()
        except sqlite3.DatabaseError:
            unreadable.append(seq)
            continue
        if found is not None:
            records.append(found)
    problems = [f"seq {_ranges(unreadable)} unreadable"] if unreadable else []
    return records, problems


def _card_column(conn: sqlite3.Connection) -> str:
    """The sealed card of a row: an advice's, (schema 7 on) the one its reversal carries, or
    (schema 12 on) a held advice's (held_card)."""
    try:
        names = {str(row[1]) for row in conn.execute("PRAGMA table_info(txns)")}
        held = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'held_card'").fetchone()
    except sqlite3.DatabaseError:
        names, held = set(), None
    cards = ["sealed_card"]
    if "reversal_card" in names:
        cards.append("reversal_card")
    if held is not None:
        cards.append("(SELECT h.sealed_card FROM held_card h WHERE h.seq = txns.seq)")
    return f"coalesce({', '.join(cards)})" if len(cards) > 1 else "sealed_card"


def _owed_row(record: tuple[object, ...], sealer: Sealer) -> tuple[OwedRow | None, str]:
    seq, kind, mode, amount, currency, status, pan, stan, local, code, attempts, at, blob = record
    try:
        card = None
        if status == TxnStatus.PENDING.value:
            if not isinstance(blob, bytes):
                return None, f"seq {seq} has no sealed card"
            card = sealer.open(int(str(seq)), blob)
        elif isinstance(blob, bytes):  # a reversal's (fields 2, 14, 22) or a held advice's
            card = sealer.open(int(str(seq)), blob)
        row = OwedRow(
            seq=int(str(seq)),
            kind=TxnKind(str(kind)),
            mode=TxnMode(str(mode)),
            amount_minor=_integer(amount),
            currency=str(currency),
            status=TxnStatus(str(status)),
            masked_pan=str(pan or ""),
            stan=_integer(stan),
            local_datetime=str(local),
            response_code=str(code or ""),
            attempts=_integer(attempts),
            created_at=str(at),
            card=card,
        )
    except SealError as exc:
        return None, f"seq {seq}: {exc}"
    except ValueError as exc:
        return None, f"seq {seq}: {exc}"
    return row, ""


def _integer(value: object) -> int:
    if not isinstance(value, int):
        raise ValueError(f"{value!r} is not a whole number")
    return value


def _ranges(numbers: list[int]) -> str:
    return (
        f"{numbers[0]}..{numbers[-1]} ({len(numbers)} rows)"
        if len(numbers) > 1
        else str(numbers[0])
    )


def salvage(data_dir: Path, sources: list[Path]) -> list[Salvage]:
    """Salvage each of `sources` (default: every moved-aside journal) into data_dir's journal."""
    with DataDirLock.acquire(data_dir):
        live = (data_dir / JOURNAL_FILE_NAME).resolve()
        files = sources or moved_aside_files(data_dir)
        if not files:
            raise StorageError(
                f"no moved-aside journal ({JOURNAL_FILE_NAME}.corrupt-N) in {data_dir}: name "
                "the file to salvage"
            )
        sealer = Sealer.load_or_create(data_dir / KEY_FILE_NAME)
        done = []
        with Journal.open(data_dir, sealer) as journal:
            for source in files:
                if source.resolve() == live:
                    raise StorageError(f"{source} is the live journal: name a moved-aside file")
                owed, problems = read_owed(source, sealer)
                result = Salvage(source, found=len(owed), problems=problems)
                result.taken = journal.adopt(owed, source.name)
                done.append(result)
        return done


def print_salvage(data_dir: Path, sources: list[Path]) -> int:
    results = salvage(data_dir, sources)
    for result in results:
        print(result.line())
    return 1 if any(result.problems for result in results) else 0


def init_journal(data_dir: Path, force: bool) -> str:
    """Start an empty journal in `data_dir`; what was done, in one line."""
    with DataDirLock.acquire(data_dir):
        path = data_dir / JOURNAL_FILE_NAME
        if path.exists():
            return f"{path} already exists: nothing done"
        evidence = earlier_sales_evidence(data_dir)
        if not force:
            check_journal_present(data_dir)  # raises when sales were evidently written here
        Journal.open(data_dir, Sealer.load_or_create(data_dir / KEY_FILE_NAME)).close()
        kept = f" (kept beside it: {', '.join(p.name for p in evidence)})" if evidence else ""
        return f"started a new, empty journal at {path}{kept}"

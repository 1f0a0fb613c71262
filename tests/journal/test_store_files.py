"""The journal on disk: PRAGMAs, one commit (one fsync) per record, no PAN in any file byte,
schema migration, a full disk, and a corrupt file moved aside."""

from __future__ import annotations

import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from journal_helpers import OpenJournal, offline_sale, online_sale, pan_for, wal_commits

from pitill.core.types import TxnStatus
from pitill.errors import StorageError
from pitill.journal import dbfile
from pitill.journal.dbfile import JournalMovedAside
from pitill.journal.store import JOURNAL_FILE_NAME, Journal


def file_bytes(journal_path: Path) -> bytes:
    """Everything SQLite keeps on disk for this journal: database, WAL and shared memory."""
    parts = [journal_path.with_name(journal_path.name + s) for s in ("", "-wal", "-shm")]
    return b"".join(p.read_bytes() for p in parts if p.exists())


def test_pragmas_are_set_on_the_journal_connection(journal: Journal) -> None:
    conn = journal._conn  # the settings that matter are per connection: look at the real one
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert conn.execute("PRAGMA secure_delete").fetchone() == (1,)
    assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert conn.execute("PRAGMA user_version").fetchone() == (len(dbfile.MIGRATIONS),)
    with sqlite3.connect(journal.path) as other:  # WAL is a property of the file itself
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    other.close()


def test_files_are_owner_only(journal: Journal) -> None:
    journal.record(offline_sale(1))
    for suffix in ("", "-wal", "-shm"):
        mode = stat.S_IMODE(journal.path.with_name(JOURNAL_FILE_NAME + suffix).stat().st_mode)
        assert mode == 0o600, suffix
    assert stat.S_IMODE(journal.path.parent.stat().st_mode) == 0o700


def test_each_write_is_exactly_one_commit(journal: Journal) -> None:
    wal = journal.path.with_name(JOURNAL_FILE_NAME + "-wal")
    steps: list[Callable[[], object]] = [
        lambda: journal.record(offline_sale(1)),  # insert + history (+ key file)
        lambda: journal.record(online_sale(2)),
        lambda: journal.record(online_sale(2).with_status(TxnStatus.APPROVED)),  # update + history
        lambda: journal.record(online_sale(3)),
        lambda: journal.recover_at_boot(),  # seq 3 was AUTHORIZING
        lambda: journal.mark_attempt(1),
        lambda: journal.mark_forwarded(3, "00"),
    ]
    for step in steps:
        before = wal_commits(wal)
        step()
        assert wal_commits(wal) == before + 1
    with sqlite3.connect(journal.path) as other:  # a second reader sees row and history together
        assert other.execute("SELECT count(*) FROM txn_history WHERE seq = 2").fetchone() == (2,)
    other.close()


CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from pitill.card.model import Card
    from pitill.core.txn import Txn
    from pitill.core.types import TxnKind, TxnMode, TxnStatus
    from pitill.journal.seal import KEY_FILE_NAME, Sealer
    from pitill.journal.store import Journal

    data = Path(sys.argv[2])
    journal = Journal.open(data, Sealer.load_or_create(data / KEY_FILE_NAME))
    journal.record(Txn(1, TxnKind.CASH, TxnMode.OFFLINE, 100, "EUR", TxnStatus.COMPLETED))
    for seq in range(2, int(sys.argv[1]) + 2):
        card = Card(pan="4000000000000002", expiry_yymm="2812")
        journal.record(Txn(seq, TxnKind.CARD, TxnMode.OFFLINE, 100, "EUR", TxnStatus.PENDING, card))
    os._exit(0)  # no close: a close checkpoints, which is not what is measured here
    """
)


def _syncs_by_file(tmp_path: Path, records: int) -> Counter[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    trace = tmp_path / f"trace-{records}"
    subprocess.run(
        [
            *("strace", "-f", "-y", "-e", "trace=fsync,fdatasync", "-o", str(trace)),
            *(sys.executable, str(script), str(records), str(tmp_path / f"data-{records}")),
        ],
        check=True,
        timeout=60,
    )
    counts: Counter[str] = Counter()
    for line in trace.read_text().splitlines():
        if "sync(" in line and "<" in line:
            counts[line.split("<", 1)[1].split(">", 1)[0].rsplit("/", 1)[-1]] += 1
    return counts


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_one_fsync_per_record_measured_with_strace(tmp_path: Path) -> None:
    try:
        baseline = _syncs_by_file(tmp_path, 0)
        measured = _syncs_by_file(tmp_path, 30)
    except subprocess.CalledProcessError:  # pragma: no cover - ptrace not permitted here
        pytest.skip("strace cannot trace in this environment")
    extra = measured - baseline
    # 30 records: exactly 30 syncs of the WAL, none of the database file (no checkpoint yet);
    # the key file and its directory are synced once, at the first seal.
    assert extra[JOURNAL_FILE_NAME + "-wal"] == 30
    assert extra[JOURNAL_FILE_NAME] == 0


def test_no_full_pan_in_any_file_and_sealed_data_wiped_after_forwarding(
    open_journal: OpenJournal,
) -> None:
    journal = open_journal()
    pans = [pan_for(seq).encode() for seq in range(1, 101)]
    for seq in range(1, 101):
        journal.record(offline_sale(seq))
    on_disk = file_bytes(journal.path)
    assert pans[0][:6] in on_disk and pans[0][-4:] in on_disk  # the masked PAN is there...
    assert not [pan for pan in pans if pan in on_disk]  # ...never a full one
    with sqlite3.connect(journal.path) as raw:
        blobs = [
            b for (b,) in raw.execute("SELECT sealed_card FROM txns WHERE sealed_card NOTNULL")
        ]
    raw.close()
    assert len(blobs) == 100

    while (item := journal.next_forward_item()) is not None:
        journal.mark_attempt(item.row.seq)
        journal.mark_forwarded(item.row.seq, "00")
    on_disk = file_bytes(journal.path)
    assert not [pan for pan in pans if pan in on_disk]
    assert not [blob for blob in blobs if blob[-16:] in on_disk]  # wiped, and overwritten
    journal.close()
    on_disk = file_bytes(journal.path)
    assert not [blob for blob in blobs if blob[-16:] in on_disk]
    with sqlite3.connect(journal.path) as raw:
        assert raw.execute("SELECT count(*) FROM txns WHERE sealed_card NOTNULL").fetchone() == (0,)
    raw.close()


def test_a_reversal_card_is_sealed_on_disk_and_wiped_after_the_0430(
    open_journal: OpenJournal,
) -> None:
    journal = open_journal()
    pans = [pan_for(seq).encode() for seq in range(1, 41)]
    for seq in range(1, 41):
        journal.record(online_sale(seq))  # AUTHORIZING: sealed in reversal_card
        if seq % 2:
            journal.record(online_sale(seq).with_status(TxnStatus.REVERSAL_PENDING))
        else:
            journal.record(online_sale(seq).with_status(TxnStatus.APPROVED, response_code="00"))
    on_disk = file_bytes(journal.path)
    assert not [pan for pan in pans if pan in on_disk]
    with sqlite3.connect(journal.path) as raw:
        blobs = [
            b for (b,) in raw.execute("SELECT reversal_card FROM txns WHERE reversal_card NOTNULL")
        ]
    raw.close()
    assert len(blobs) == 20  # the reversals' only: an answered sale keeps none
    while (item := journal.next_forward_item()) is not None:
        assert item.card is not None and item.card.pan.encode() in pans
        journal.mark_attempt(item.row.seq)
        journal.mark_forwarded(item.row.seq, "00")
    on_disk = file_bytes(journal.path)
    assert not [pan for pan in pans if pan in on_disk]
    assert not [blob for blob in blobs if blob[-16:] in on_disk]  # wiped, and overwritten
    journal.close()
    with sqlite3.connect(journal.path) as raw:
        left = raw.execute("SELECT count(*) FROM txns WHERE reversal_card NOTNULL").fetchone()
    raw.close()
    assert left == (0,)


def test_full_disk_is_a_storage_error_and_leaves_nothing_half_written(journal: Journal) -> None:
    conn = journal._conn  # max_page_count is per connection: cap the journal's own one
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    failed = None
    for seq in range(1, 500):
        try:
            journal.record(offline_sale(seq))
        except StorageError as exc:
            failed = seq
            assert "NOT durable" in str(exc) and "free space" in str(exc)
            assert isinstance(exc, OSError)
            break
    assert failed is not None and failed > 1
    assert journal.get(failed) is None and journal.history(failed) == []
    assert journal.pending_count() == failed - 1
    conn.execute("PRAGMA max_page_count = 1073741823")  # space freed: it works again
    assert journal.record(offline_sale(failed)).seq == failed


def test_migration_path_applies_only_new_steps(
    open_journal: OpenJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = open_journal()
    journal.record(offline_sale(1))
    journal.close()
    step = ("ALTER TABLE txns ADD COLUMN till TEXT NOT NULL DEFAULT 'front'",)
    monkeypatch.setattr(dbfile, "MIGRATIONS", (*dbfile.MIGRATIONS, step))
    migrated = open_journal()
    assert migrated._conn.execute("PRAGMA user_version").fetchone() == (len(dbfile.MIGRATIONS),)
    assert migrated._conn.execute("SELECT seq, till FROM txns").fetchall() == [(1, "front")]
    assert migrated.pending_count() == 1


def test_a_journal_from_a_newer_pitill_is_refused(open_journal: OpenJournal) -> None:
    journal = open_journal()
    journal._conn.execute("PRAGMA user_version = 99")
    journal.close()
    with pytest.raises(StorageError, match="schema version 99, newer"):
        open_journal()


def test_garbage_file_is_moved_aside_and_a_new_journal_started(
    open_journal: OpenJournal, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    garbage = b"this is not a database, it is an SD card that lost power" * 100
    (data / JOURNAL_FILE_NAME).write_bytes(garbage)
    journal = open_journal()
    assert isinstance(journal.notice, JournalMovedAside) and isinstance(
        journal.notice, StorageError
    )
    assert journal.moved_aside == data / f"{JOURNAL_FILE_NAME}.corrupt-1"
    assert journal.moved_aside.read_bytes() == garbage  # kept, byte for byte
    assert "NOT forwarded" in str(journal.notice) and str(journal.moved_aside) in str(
        journal.notice
    )
    assert journal.integrity_ok() and journal.next_seq() == 1
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600  # the new file is owner-only too
    journal.record(offline_sale(1))
    journal.close()

    (data / JOURNAL_FILE_NAME).write_bytes(garbage)  # it happens again: a new number
    again = open_journal()
    assert again.moved_aside == data / f"{JOURNAL_FILE_NAME}.corrupt-2"
    assert (data / f"{JOURNAL_FILE_NAME}.corrupt-1").read_bytes() == garbage


def test_damaged_pages_are_moved_aside(open_journal: OpenJournal, tmp_path: Path) -> None:
    good = open_journal(data_dir=tmp_path / "good")
    for seq in range(1, 201):
        good.record(offline_sale(seq))
    good.close()
    data = tmp_path / "data"
    shutil.copytree(tmp_path / "good", data)
    path = data / JOURNAL_FILE_NAME
    content = bytearray(path.read_bytes())
    page_size = int.from_bytes(content[16:18], "big")
    pages = len(content) // page_size
    assert pages > 8
    # Scribble over the last pages (index b-tree pages, typically) and keep page 1 sound, so
    # SQLite opens the file and integrity_check finds the damage.
    for page in range(pages - 3, pages):
        content[page * page_size + 8 : (page + 1) * page_size] = b"\xa5" * (page_size - 8)
    path.write_bytes(bytes(content))

    journal = open_journal(data_dir=data)
    assert journal.moved_aside == data / f"{JOURNAL_FILE_NAME}.corrupt-1"
    assert journal.moved_aside.read_bytes() == bytes(content)
    assert journal.notice is not None and "integrity check" in str(journal.notice)
    assert len(str(journal.notice)) < 1000  # a screen and a log line, not a page dump
    assert journal.integrity_ok() and journal.rows() == [] and journal.next_seq() == 1
    journal.record(offline_sale(1))
    assert journal.pending_count() == 1

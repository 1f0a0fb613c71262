"""`pitill journal salvage`: a damaged journal moved aside gives back what it owed the host,
exactly once; `journal list` and `report` say a moved-aside file is there."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from journal_helpers import card, cash_sale, damage_the_status_index, offline_sale, online_sale

import pitill_cli
from pitill.core.types import TxnStatus
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import JOURNAL_FILE_NAME, Journal

REPO = Path(__file__).resolve().parents[2]
MOVED = f"{JOURNAL_FILE_NAME}.corrupt-1"


def run_pitill(*args: str) -> subprocess.CompletedProcess[str]:
    return pitill_cli.run_pitill(*args, cwd=REPO)


def open_journal(data: Path) -> Journal:
    return Journal.open(data, Sealer.load_or_create(data / KEY_FILE_NAME))


def owed_by_host_key(path: Path) -> dict[tuple[int, str], tuple[str, int]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT stan, local_datetime, status, amount_minor FROM txns NOT INDEXED"
            " WHERE status IN ('PENDING', 'REVERSAL_PENDING', 'AUTHORIZING')"
        ).fetchall()
    conn.close()
    return {(stan, local): (status, amount) for stan, local, status, amount in rows}


def a_terminal_whose_journal_was_moved_aside(data: Path) -> dict[tuple[int, str], tuple[str, int]]:
    """Sales of every kind, the journal damaged, then opened again: it is moved aside and a new
    one started, which sells one offline sale of its own. What the old file owed the host."""
    journal = open_journal(data)
    for seq in range(1, 5):
        journal.record(offline_sale(seq, amount_minor=100 * seq))  # PENDING: advices owed
    journal.record(online_sale(5))
    journal.recover_at_boot()  # seq 5: REVERSAL_PENDING
    journal.record(online_sale(6, TxnStatus.APPROVED))
    journal.record(cash_sale(7))
    journal.record(online_sale(8))  # AUTHORIZING when the card died: a reversal is owed
    journal.mark_forwarded(1, "00")  # the host has seq 1 already: nothing owed
    journal.close()
    owed = owed_by_host_key(data / JOURNAL_FILE_NAME)
    damage_the_status_index(data / JOURNAL_FILE_NAME)
    fresh = open_journal(data)
    assert fresh.moved_aside == data / MOVED
    fresh.record(offline_sale(1, amount_minor=999))  # the new journal's own seq 1
    fresh.close()
    return owed


def test_salvage_recovers_what_was_owed_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    owed = a_terminal_whose_journal_was_moved_aside(data)
    assert len(owed) == 5  # seqs 2, 3, 4 (advices), 5 and 8 (reversals)
    evidence = (data / MOVED).read_bytes()

    listing = run_pitill("journal", "list", "--data-dir", str(data))
    assert listing.returncode == 0, listing.stderr
    assert f"moved aside: {data / MOVED}" in listing.stdout
    assert "pitill journal salvage" in listing.stdout
    as_json = run_pitill("report", "--json", "--data-dir", str(data))
    assert json.loads(as_json.stdout)["moved_aside"] == [str(data / MOVED)]
    assert f"moved aside: {data / MOVED}" in run_pitill("report", "--data-dir", str(data)).stdout

    done = run_pitill("journal", "salvage", "--data-dir", str(data))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout.strip() == (
        f"{data / MOVED}: recovered 5 transaction(s) owed to the host "
        "(seq 2->2, 3->3, 4->4, 5->5, 8->6)"
    )
    live = data / JOURNAL_FILE_NAME
    assert owed_by_host_key(live) == {
        key: ("REVERSAL_PENDING" if status == "AUTHORIZING" else status, amount)
        for key, (status, amount) in owed.items()
    } | {k: v for k, v in owed_by_host_key(live).items() if v == ("PENDING", 999)}
    with open_journal(data) as journal:  # the cards were sealed again under their new seqs
        items = journal.next_forward_items(10)
        cards = {i.row.seq: i.card.pan for i in items if i.card is not None}
        # the reversals too: they carry the sale's card (fields 2, 14, 22)
        assert cards == {n: card(n).pan for n in (1, 2, 3, 4, 5)} | {6: card(8).pan}
        assert [item.row.seq for item in items if item.card is None] == []
        assert [item.row.seq for item in items[:2]] == [5, 6]
        assert journal.history(6)[-1].note.startswith(f"salvaged from {MOVED} (seq 8 there")

    again = run_pitill("journal", "salvage", "--data-dir", str(data), str(data / MOVED))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == (
        f"{data / MOVED}: nothing new to recover; 5 already in the journal"
    )
    assert len(owed_by_host_key(live)) == 6  # nothing doubled
    assert (data / MOVED).read_bytes() == evidence  # the evidence is never written to


def test_salvage_waits_for_the_terminal_to_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    a_terminal_whose_journal_was_moved_aside(data)
    hold = (
        "import sys, time; from pathlib import Path\n"
        "from pitill.journal.datadir import DataDirLock\n"
        "lock = DataDirLock.acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(data)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        done = run_pitill("journal", "salvage", "--data-dir", str(data))
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert done.returncode != 0
    (line,) = done.stderr.splitlines()
    assert f"in use by another pitill (PID {holder.pid})" in line


def test_salvage_of_a_file_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    done = run_pitill("journal", "salvage", "--data-dir", str(tmp_path), str(tmp_path / "nope"))
    assert done.returncode != 0
    (line,) = done.stderr.splitlines()
    assert f"no journal file at {tmp_path / 'nope'}" in line
    none = run_pitill("journal", "salvage", "--data-dir", str(tmp_path / "empty"))
    (line,) = none.stderr.splitlines()
    assert "no moved-aside journal" in line

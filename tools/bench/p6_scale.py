"""P6: a journal of 100,000 sales: a commit, the FN report and opening it, each against its floor.

The big journal is built through Journal.record (online card sales, APPROVED: what most of a
year's journal is), on /dev/shm when it exists so that building it costs CPU rather than 100,000
fsyncs, then copied to the work directory and closed. The measurement is on the work directory's
disk: rounds of offline sales recorded alternately into the big journal and into an empty one
(alternating spreads the machine's noise over both); the figure is the median round.

The same big journal then answers the FN report the way the terminal builds it (read_report, in
the app's reader thread), against its own aggregate query alone on a plain read-only sqlite3
connection (the least any report of the totals needs); and is opened the way the terminal opens
it at boot (Journal.open: checks, migrations, the seal key check, then close) against a bare
sqlite3 open of the same file that reads one row. Medians of alternating rounds.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import Figure, Options

from pitill.card.model import Card
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.journal.report import read_report
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import JOURNAL_FILE_NAME, REPORT_TOTALS_SQL, Journal

GOAL_RATIO = 1.2
CARD = Card(pan="4111111111111111", expiry_yymm="3012")
SHM = Path("/dev/shm")


def _open(data_dir: Path) -> Journal:
    return Journal.open(data_dir, Sealer.load_or_create(data_dir / KEY_FILE_NAME))


def _build(data_dir: Path, sales: int) -> None:
    journal = _open(data_dir)
    try:
        for seq in range(1, sales + 1):
            journal.record(
                Txn(seq, TxnKind.CARD, TxnMode.ONLINE, 1250, "EUR", TxnStatus.APPROVED, CARD)
            )
    finally:
        journal.close()


def terminal_report(data_dir: Path) -> tuple[str, ...]:
    """The FN report's screen lines, built as the terminal builds them (app.py: read_report)."""
    return read_report(data_dir).screen_lines()


def _bare_report(path: Path) -> list[tuple[object, ...]]:
    """The same aggregate query on a plain read-only connection, with nothing around it."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(REPORT_TOTALS_SQL).fetchall()
    finally:
        conn.close()


def _timed(action: object, rounds: int) -> float:
    """Median seconds of `rounds` calls of `action`."""
    assert callable(action)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _report_and_open(data_dir: Path, rounds: int) -> tuple[float, float, float, float]:
    """(report s, bare aggregate s, Journal.open s, bare open s): medians, alternating."""
    path = data_dir / JOURNAL_FILE_NAME
    terminal_report(data_dir), _bare_report(path)  # warm the page cache for both
    report_s, bare_report_s = [], []
    for _ in range(rounds):
        report_s.append(_timed(lambda: terminal_report(data_dir), 1))
        bare_report_s.append(_timed(lambda: _bare_report(path), 1))

    def bare_open() -> None:
        conn = sqlite3.connect(path)
        conn.execute("SELECT seq FROM txns ORDER BY seq DESC LIMIT 1").fetchone()
        conn.close()

    open_s, bare_open_s = [], []
    for _ in range(rounds):
        open_s.append(_timed(lambda: _open(data_dir).close(), 1))
        bare_open_s.append(_timed(bare_open, 1))
    return (
        statistics.median(report_s),
        statistics.median(bare_report_s),
        statistics.median(open_s),
        statistics.median(bare_open_s),
    )


def _round(journal: Journal, sales: int) -> float:
    """Seconds per commit of `sales` new offline sales."""
    first = journal.next_seq()
    start = time.perf_counter()
    for seq in range(first, first + sales):
        journal.record(
            Txn(seq, TxnKind.CARD, TxnMode.OFFLINE, 1250, "EUR", TxnStatus.PENDING, CARD)
        )
    return (time.perf_counter() - start) / sales


def measure(options: Options) -> list[Figure]:
    size = 10_000 if options.quick else 100_000
    rounds, per_round = (4, 100) if options.quick else (10, 200)
    work = Path(tempfile.mkdtemp(prefix="bench-p6-", dir=options.work_dir))
    try:
        scratch = Path(tempfile.mkdtemp(prefix="bench-p6-", dir=SHM if SHM.is_dir() else work))
        try:
            started = time.perf_counter()
            _build(scratch, size)
            build_s = time.perf_counter() - started
            shutil.copytree(scratch, work / "big")
            os.sync()  # the copy's writeback must not land in the measured fsyncs
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        (work / "empty").mkdir()
        big, empty = _open(work / "big"), _open(work / "empty")
        try:
            _round(big, 100), _round(empty, 100)  # warm both files' pages and WALs
            big_s, empty_s = [], []
            for _ in range(rounds):
                big_s.append(_round(big, per_round))
                empty_s.append(_round(empty, per_round))
        finally:
            big.close()
            empty.close()
        report_s, bare_report_s, open_s, bare_open_s = _report_and_open(work / "big", rounds)
    finally:
        shutil.rmtree(work)
    big_ms, empty_ms = statistics.median(big_s) * 1000, statistics.median(empty_s) * 1000
    alternating = f"median of {rounds} alternating rounds"
    return [
        Figure(
            "P6",
            f"commit with {size:,} sales in the journal",
            big_ms,
            "ms",
            baseline=empty_ms,
            baseline_name="empty journal",
            goal=f"<= {GOAL_RATIO:g}x",
            meets=big_ms <= GOAL_RATIO * empty_ms,
            note=(
                f"{size:,} sales built in {build_s:.0f} s; median of {rounds} alternating "
                f"rounds of {per_round} commits"
            ),
        ),
        Figure(
            "P6",
            f"FN report over {size:,} sales",
            report_s * 1000,
            "ms",
            baseline=bare_report_s * 1000,
            baseline_name="the bare aggregate query",
            note=(
                "read_report (what app.py runs in a thread for FN) to the screen lines, against "
                f"its REPORT_TOTALS_SQL alone on a plain read-only connection; {alternating}; "
                "warm page cache"
            ),
        ),
        Figure(
            "P6",
            f"open the journal with {size:,} sales",
            open_s * 1000,
            "ms",
            baseline=bare_open_s * 1000,
            baseline_name="bare sqlite3 open + 1 row",
            note=f"Journal.open (checks, migrations, seal key check) and close; {alternating}",
        ),
    ]

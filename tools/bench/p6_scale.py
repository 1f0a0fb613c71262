"""P6: the commit time of a sale with 100,000 sales in the journal, against an empty journal.

The big journal is built through Journal.record (online card sales, APPROVED: what most of a
year's journal is), on /dev/shm when it exists so that building it costs CPU rather than 100,000
fsyncs, then copied to the work directory and closed. The measurement is on the work directory's
disk: rounds of offline sales recorded alternately into the big journal and into an empty one
(alternating spreads the machine's noise over both); the figure is the median round.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import Figure, Options

from pitill.card.model import Card
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import Journal

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
    finally:
        shutil.rmtree(work)
    big_ms, empty_ms = statistics.median(big_s) * 1000, statistics.median(empty_s) * 1000
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
        )
    ]

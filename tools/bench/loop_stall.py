"""How long the terminal's event loop stalls while the FN report runs and while a journal opens.

The loop runs a ticker (every TICK_S, as keys, probes and the watchdog would) and records how late
each tick fires. The FN report is measured the way the app runs it: `read_report` (one aggregate
query on a read-only connection) in the loop's default executor; its baseline is the same query
run on the loop itself. The journal open is what `build_terminal` does at start (integrity check,
row check, seal check): its duration is a stall of the boot, before the watchdog's first ping.

    python tools/bench/loop_stall.py --sales 100000      # builds a journal in a temp dir

For `make bench` (cibench): build_journal(dir, 100_000) once, then measure_report(dir) and
measure_open(dir); each returns plain floats in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pitill.core.txn import stan_for
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.journal.report import read_report
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import Journal, report_totals_of

TICK_S = 0.005


@dataclass(frozen=True)
class ReportStall:
    report_s: float  # from the FN key's RequestReport to the answer, in the executor
    max_tick_late_s: float  # the loop's worst lateness meanwhile (keys, probes, watchdog)
    on_loop_report_s: float  # the same query run on the loop (the baseline)
    on_loop_max_tick_late_s: float  # ... and the lateness that causes
    idle_max_tick_late_s: float  # the ticker's lateness with nothing else running


@dataclass(frozen=True)
class OpenStall:
    open_s: float  # Journal.open of the big journal: the boot waits this long
    close_s: float


def build_journal(data_dir: Path, sales: int) -> None:
    """A journal of `sales` settled sales (online card, approved; some cash), written in one
    transaction on the journal's own schema: seconds, not the hours of one fsync a sale."""
    data_dir.mkdir(parents=True, exist_ok=True)
    Journal.open(data_dir, Sealer.load_or_create(data_dir / KEY_FILE_NAME)).close()
    conn = sqlite3.connect(data_dir / "journal.sqlite3")
    try:
        with conn:
            conn.executemany(
                "INSERT INTO txns (seq, kind, mode, amount_minor, currency, status, masked_pan,"
                " stan, local_datetime, response_code, created_at) VALUES"
                " (?, ?, ?, ?, 'EUR', ?, ?, ?, '261130120000', ?, '2026-11-30T12:00:00')",
                (
                    (
                        seq,
                        (TxnKind.CASH if seq % 5 == 0 else TxnKind.CARD).value,
                        TxnMode.ONLINE.value,
                        100 + seq % 9000,
                        (TxnStatus.COMPLETED if seq % 5 == 0 else TxnStatus.APPROVED).value,
                        "" if seq % 5 == 0 else "411111******1111",
                        stan_for(seq),
                        "" if seq % 5 == 0 else "00",
                    )
                    for seq in range(1, sales + 1)
                ),
            )
    finally:
        conn.close()


async def _ticked(work: Callable[[], object], idle_s: float = 0.0) -> tuple[float, float]:
    """(seconds the awaited work took, the ticker's worst lateness meanwhile)."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            worst = max(worst, loop.time() - due)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(TICK_S * 2)
    started = time.perf_counter()
    result = work()
    if asyncio.isfuture(result) or asyncio.iscoroutine(result):
        await result
    if idle_s:
        await asyncio.sleep(idle_s)
    took = time.perf_counter() - started
    done.set()
    await task
    return took, worst


async def _measure_report(data_dir: Path) -> ReportStall:
    loop = asyncio.get_running_loop()
    _, idle_late = await _ticked(lambda: None, idle_s=0.5)
    await loop.run_in_executor(None, read_report, data_dir)  # warm the pages and the executor
    report_s, late = await _ticked(lambda: loop.run_in_executor(None, read_report, data_dir))

    def on_loop() -> None:
        conn = sqlite3.connect(f"file:{data_dir / 'journal.sqlite3'}?mode=ro", uri=True)
        try:
            report_totals_of(conn)
        finally:
            conn.close()

    on_loop_s, on_loop_late = await _ticked(on_loop)
    return ReportStall(report_s, late, on_loop_s, on_loop_late, idle_late)


def measure_report(data_dir: Path) -> ReportStall:
    """The FN report over the journal in `data_dir`, as the app runs it, and its baseline."""
    return asyncio.run(_measure_report(data_dir))


def measure_open(data_dir: Path) -> OpenStall:
    """Journal.open (and close) of the journal in `data_dir`, the boot's share of a big journal."""
    sealer = Sealer.load_or_create(data_dir / KEY_FILE_NAME)
    started = time.perf_counter()
    journal = Journal.open(data_dir, sealer)
    opened = time.perf_counter()
    journal.close()
    return OpenStall(opened - started, time.perf_counter() - opened)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sales", type=int, default=100_000, help="journal size (100000)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-stall-"))
    try:
        build_journal(work, args.sales)
        opened = measure_open(work)
        report = measure_report(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"journal of {args.sales} sales")
    print(f"  open {opened.open_s * 1000:.0f} ms (close {opened.close_s * 1000:.0f} ms)")
    print(
        f"  FN report {report.report_s * 1000:.0f} ms in the executor, loop late at most "
        f"{report.max_tick_late_s * 1000:.1f} ms (idle: {report.idle_max_tick_late_s * 1000:.1f})"
    )
    print(
        f"  the same query on the loop: {report.on_loop_report_s * 1000:.0f} ms, loop late "
        f"{report.on_loop_max_tick_late_s * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

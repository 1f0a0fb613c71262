"""P3: what a durable sale costs the journal, against what SQLite does at best.

The commit time and bytes are tools/bench_journal.py's record_sales: offline card sales recorded
one commit each into a fresh journal, bytes from /proc/self/io (write(2) bytes, open and close
included). The floor is the least a durable commit of those bytes can cost on this disk, which is
what SQLite's WAL does at best once the file exists: overwrite space already written (no block
allocation, no size change) and fdatasync it. The baseline does exactly that in the same
directory: a file written and synced first, then per sale one pwrite of the same bytes over old
data and one fdatasync.

Then whole sales through the simulated terminal (bench_journal.sale_costs, under strace): the
journal's commits and fsync/fdatasync calls on its files per online, offline, cash and timed-out
sale, from the first key to the cashier's OK.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from benchlib import Figure, Options, load_tool

ONE_FSYNC_KINDS = ("online", "offline", "cash")  # one wait per sale on the customer's path


def _overwrite_fdatasync(parent: Path, sales: int, bytes_per_sale: int) -> float:
    """Seconds per overwrite of preallocated, already written space + fdatasync."""
    block = b"\x5a" * bytes_per_sale
    fd, name = tempfile.mkstemp(prefix="bench-floor-", dir=parent)
    try:
        os.write(fd, b"\0" * (bytes_per_sale * sales))
        os.fsync(fd)  # allocated and on disk: what follows changes no metadata
        start = time.perf_counter()
        for index in range(sales):
            os.pwrite(fd, block, index * bytes_per_sale)
            os.fdatasync(fd)
        return (time.perf_counter() - start) / sales
    finally:
        os.close(fd)
        os.unlink(name)


def measure(options: Options) -> list[Figure]:
    bench_journal = load_tool("bench_journal")
    sales = 300 if options.quick else 2000
    parent = options.work_dir
    data_dir = Path(tempfile.mkdtemp(prefix="bench-p3-", dir=parent))
    try:
        before = bench_journal.written_bytes()
        commit_s = bench_journal.record_sales(data_dir, sales) / sales
        after = bench_journal.written_bytes()
    finally:
        shutil.rmtree(data_dir)
    bytes_per_sale = (after - before) // sales if before is not None and after is not None else 0
    floor_s = _overwrite_fdatasync(parent, sales, max(bytes_per_sale, 1))
    figures = [
        Figure(
            "P3",
            "durable offline sale commit (Journal.record)",
            commit_s * 1000,
            "ms",
            baseline=floor_s * 1000,
            baseline_name=f"overwrite {bytes_per_sale:,} B + fdatasync",
            goal="<= 2x floor",
            meets=commit_s <= 2 * floor_s,
            note=(
                f"{sales} offline sales, one commit each (tools/bench_journal.py); the floor "
                "overwrites already written space and fdatasyncs it, what SQLite's WAL does at "
                "best"
            ),
        ),
        Figure("P3", "bytes written per sale", float(bytes_per_sale), "B", note=_bytes_note()),
    ]
    kinds_sales = 2 if options.quick else 20
    for cost in bench_journal.sale_costs(parent, kinds_sales):
        one = cost.kind in ONE_FSYNC_KINDS
        figures.append(
            Figure(
                "P3",
                f"{cost.kind} sale: journal commits, fsyncs",
                cost.syncs,
                "fsync",
                shown=f"{cost.commits:.2f} commits, {cost.syncs:.2f} fsyncs",
                goal="1 fsync" if one else "",
                meets=round(cost.syncs, 2) <= 1.0 if one else None,
                note=_kind_note(cost.kind, kinds_sales),
            )
        )
    return figures


def _kind_note(kind: str, sales: int) -> str:
    what = {
        "online": "approved by the sandbox host",
        "offline": "host down, 12.50 approved offline",
        "cash": "host down, 42.10 over the floor limit: CASH ONLY, tendered, change",
        "timeout": "host blackholed while the link counts as up: the 0200 times out (0.25 s), "
        "a reversal is queued, the sale is approved offline",
    }[kind]
    return (
        f"{sales} sales through the simulated terminal, {what}; COMMIT statements on the "
        "journal's connection and fsync/fdatasync on its files (strace -f), first key to OK "
        "(tools/bench_journal.py --kinds)"
    )


def _bytes_note() -> str:
    return (
        "write(2) bytes per sale, open and close included: each commit appends the changed "
        "4 KiB pages (row, index, history) to the WAL, and close checkpoints them into the file"
    )

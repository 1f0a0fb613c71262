"""P3: fsyncs and bytes written per durable sale, and the commit time against a bare write + fsync.

The sales and the counting are tools/bench_journal.py's: offline card sales recorded one commit
each into a fresh journal (record_sales), bytes from /proc/self/io, fsync and fdatasync calls
counted under strace (strace_syncs, less an open + close with no sale). The baseline writes the
same number of bytes per sale to a plain file in the same directory and fsyncs it after each.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from benchlib import Figure, Options, load_tool


def _bare_write_fsync(parent: Path, sales: int, bytes_per_sale: int) -> float:
    """Seconds per write + fsync of bytes_per_sale, the floor a durable commit can reach."""
    block = b"\x5a" * bytes_per_sale
    fd, name = tempfile.mkstemp(prefix="bench-bare-", dir=parent)
    try:
        start = time.perf_counter()
        for _ in range(sales):
            os.write(fd, block)
            os.fsync(fd)
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
    bare_s = _bare_write_fsync(parent, sales, max(bytes_per_sale, 1))
    figures = [
        Figure(
            "P3",
            "durable sale commit",
            commit_s * 1000,
            "ms",
            baseline=bare_s * 1000,
            baseline_name=f"write {bytes_per_sale:,} B + fsync",
            goal="<= 2x bare",
            meets=commit_s <= 2 * bare_s,
            note=f"{sales} offline sales, one commit each (tools/bench_journal.py)",
        ),
        Figure("P3", "bytes written per sale", float(bytes_per_sale), "B", note=_bytes_note()),
    ]
    strace_sales = min(sales, 1000)
    if shutil.which("strace") is None:
        figures.append(
            Figure("P3", "fsyncs per sale", float("nan"), "", note="strace is not installed")
        )
        return figures
    base_calls, _ = bench_journal.strace_syncs(parent, 0)
    calls, _ = bench_journal.strace_syncs(parent, strace_sales)
    per_sale = sum((calls - base_calls).values()) / strace_sales
    figures.append(
        Figure(
            "P3",
            "fsync + fdatasync per sale",
            per_sale,
            "",
            goal="1 per sale",
            meets=round(per_sale, 2) <= 1.01,
            note=f"strace -f over {strace_sales} sales, less an open and close with none",
        )
    )
    return figures


def _bytes_note() -> str:
    return (
        "write(2) bytes per sale, open and close included: each commit appends the changed "
        "4 KiB pages (row, index, history) to the WAL, and close checkpoints them into the file"
    )

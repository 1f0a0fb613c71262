#!/usr/bin/env python3
"""bench_journal: what one durable offline sale costs the journal (commits/s, bytes, fsyncs).

Records N offline card sales (default 1000) into a fresh journal in a temporary directory and
prints commits per second, bytes written per sale (write(2) bytes and file growth) and, when
strace is installed, the fsync/fdatasync calls per sale, per file, measured with
`strace -f -C -y -e trace=fsync,fdatasync` (the -c summary plus one line per call).

Run it where the terminal keeps its journal to measure that medium (an SD card on a Pi):
    tools/bench_journal.py --dir /var/lib/pitill -n 1000
It needs pitill's dependencies (use pitill's .venv/bin/python); it loads pitill from this
repository's firmware/ directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "firmware"))

from pitill.card.model import Card
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import JOURNAL_FILE_NAME, Journal

SYNC_CALLS = ("fsync", "fdatasync")


def record_sales(data_dir: Path, sales: int) -> float:
    """Open a journal in data_dir, record `sales` offline card sales; seconds spent recording."""
    journal = Journal.open(data_dir, Sealer.load_or_create(data_dir / KEY_FILE_NAME))
    card = Card(pan="4000000000000002", expiry_yymm="2812")
    start_s = time.perf_counter()
    for seq in range(1, sales + 1):
        sale = Txn(
            seq=seq,
            kind=TxnKind.CARD,
            mode=TxnMode.OFFLINE,
            amount_minor=1250,
            currency="EUR",
            status=TxnStatus.PENDING,
            card=card,
            response_code="Y3",
        )
        journal.record(sale)
    elapsed_s = time.perf_counter() - start_s
    journal.close()
    return elapsed_s


def written_bytes() -> int | None:
    """Bytes this process has passed to write(2) so far (Linux /proc), or None."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def file_sizes(data_dir: Path) -> dict[str, int]:
    names = [JOURNAL_FILE_NAME + s for s in ("", "-wal", "-shm")]
    return {n: (data_dir / n).stat().st_size for n in names if (data_dir / n).exists()}


def measure_in_process(parent: Path, sales: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=parent))
    try:
        before = written_bytes()
        elapsed_s = record_sales(data_dir, sales)
        after = written_bytes()
        sizes = file_sizes(data_dir)
    finally:
        shutil.rmtree(data_dir)
    print(f"{sales} offline sales recorded in {elapsed_s:.3f} s (one commit each)")
    print(f"  commits/s:            {sales / elapsed_s:,.0f}")
    print(f"  ms per durable sale:  {1000 * elapsed_s / sales:.3f}")
    if before is not None and after is not None:
        # open + close included; close checkpoints the WAL into the database file.
        print(f"  bytes written/sale:   {(after - before) / sales:,.0f} (write(2) bytes, /proc)")
    db_size = sizes.get(JOURNAL_FILE_NAME, 0)
    print(f"  journal after close:  {db_size:,} bytes = {db_size / sales:,.0f} bytes/sale")


def strace_syncs(parent: Path, sales: int) -> tuple[Counter[str], Counter[str]]:
    """(calls per syscall from strace's -c summary, calls per file) for a child run."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=parent))
    trace = data_dir.with_suffix(".strace")
    try:
        subprocess.run(
            [
                *("strace", "-f", "-C", "-y", "-e", f"trace={','.join(SYNC_CALLS)}"),
                *("-o", str(trace), sys.executable, __file__),
                *("--child", str(sales), "--dir", str(data_dir)),
            ],
            check=True,
        )
        lines = trace.read_text().splitlines()
    finally:
        shutil.rmtree(data_dir)
        trace.unlink(missing_ok=True)
    by_call: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    for line in lines:
        fields = line.split()
        if fields and fields[-1] in SYNC_CALLS and fields[0][0].isdigit() and "." in fields[0]:
            by_call[fields[-1]] = int(fields[3])  # the summary: % time, seconds, usecs, calls
        elif "sync(" in line and "<" in line:
            by_file[_label(Path(line.split("<", 1)[1].split(">", 1)[0]), data_dir)] += 1
    return by_call, by_file


def _label(path: Path, data_dir: Path) -> str:
    if path == data_dir:
        return "(the data directory)"
    if path.name.startswith(f".{KEY_FILE_NAME}."):
        return f"{KEY_FILE_NAME} (while created)"
    return path.name


def measure_fsyncs(parent: Path, sales: int) -> None:
    if shutil.which("strace") is None:
        print("fsync count: strace is not installed (apt-get install strace); not measured")
        return
    try:
        base_calls, base_files = strace_syncs(parent, 0)
        calls, files = strace_syncs(parent, sales)
    except subprocess.CalledProcessError as exc:
        print(f"fsync count: strace failed ({exc}); ptrace may be forbidden here: not measured")
        return
    extra = calls - base_calls
    total = sum(extra.values())
    print(f"fsync/fdatasync for {sales} sales (strace -c, minus an open+close with no sales):")
    print(f"  total: {total} = {total / sales:.3f} per sale ({dict(extra)})")
    print("  by file (open + close included):")
    for name, count in sorted((files - base_files).items(), key=lambda kv: -kv[1]):
        print(f"    {name:24} {count:6}  {count / sales:.3f} per sale")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-n", "--sales", type=int, default=1000, help="sales to record (1000)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the temporary journal goes (default: TMPDIR)"
    )
    parser.add_argument("--no-strace", action="store_true", help="skip the fsync count")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:  # run under strace by measure_fsyncs
        record_sales(args.dir, args.child)
        return 0
    if args.sales < 1:
        parser.error(f"--sales must be at least 1, got {args.sales}")
    parent = args.dir or Path(tempfile.gettempdir())
    if not parent.is_dir():
        parser.error(f"--dir {parent} is not a directory")
    print(f"journal bench in {parent} (python {sys.version.split()[0]}, pid {os.getpid()})")
    measure_in_process(parent, args.sales)
    if not args.no_strace:
        measure_fsyncs(parent, args.sales)
    return 0


if __name__ == "__main__":
    sys.exit(main())

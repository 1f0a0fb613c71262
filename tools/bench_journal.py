#!/usr/bin/env python3
"""bench_journal: what one durable offline sale costs the journal (commits/s, bytes, fsyncs).

Records N offline card sales (default 1000) into a fresh journal in a temporary directory and
prints commits per second, bytes written per sale (write(2) bytes and file growth) and, when
strace is installed, the fsync/fdatasync calls per sale, per file, measured with
`strace -f -C -y -e trace=fsync,fdatasync` (the -c summary plus one line per call).

`--kinds` also runs whole sales through the simulated terminal (SimWorld: the real Terminal and
core, the sandbox host on loopback), 20 of each kind: online, offline, cash and timed-out (the
0200 unanswered: reversal queued, approved offline), and prints the journal's commits (COMMIT
statements on its connection) and fsync/fdatasync calls on its files, per sale, counted between
markers around each sale, from the first key to the cashier's OK (the forwarder's sends, which
happen between sales, are not counted).

Run it where the terminal keeps its journal to measure that medium (an SD card on a Pi):
    tools/bench_journal.py --dir /var/lib/pitill -n 1000 --kinds
It needs pitill's dependencies (use pitill's .venv/bin/python); it loads pitill from this
repository's firmware/ directory.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
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
from pitill.config import Config
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import JOURNAL_FILE_NAME, Journal

SYNC_CALLS = ("fsync", "fdatasync")
SALE_KINDS = ("online", "offline", "cash", "timeout")
MARKER_NAME = "bench-sale-marker"  # fdatasync'd before and after each sale: the trace's brackets


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


@dataclasses.dataclass(frozen=True)
class SaleCost:
    """What one sale of a kind cost the journal, averaged over `sales` sales."""

    kind: str
    sales: int
    commits: float
    syncs: float  # fsync + fdatasync on the journal's files
    syncs_by_file: dict[str, float]


def _kind_config(kind: str) -> Config:
    config = Config()
    # No offline limit may stop the run; the forwarder waits (its traffic is not a sale's).
    offline = dataclasses.replace(
        config.offline, max_count=10**6, max_total_minor=10**12, max_per_card=10**6
    )
    upstream = dataclasses.replace(config.upstream, forward_retry_s=3600.0)
    if kind == "timeout":  # a blackholed 0200 times out while the link still counts as up
        upstream = dataclasses.replace(
            upstream, request_timeout_s=0.25, fail_threshold=10**6, request_fail_threshold=10**6
        )
    return dataclasses.replace(config, offline=offline, upstream=upstream)


async def _sell_kind(kind: str, data_dir: Path, sales: int) -> int:
    """The child's work under strace: `sales` sales of `kind`, each between two markers."""
    from pitill.core.types import LinkStatus
    from pitill.sim.driver import Driver
    from pitill.sim.world import SimWorld

    world = SimWorld(_kind_config(kind), data_dir / "data")
    terminal = await world.start()
    driver = Driver(world)
    commits = 0
    counting = False

    def on_sql(statement: str) -> None:
        nonlocal commits
        if counting and statement.strip().upper() == "COMMIT":
            commits += 1

    # The journal's one connection: its COMMIT statements are its commits.
    terminal.journal._conn.set_trace_callback(on_sql)
    marker = os.open(data_dir / MARKER_NAME, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if not await driver.until_link(LinkStatus.ONLINE, 10.0):
            raise SystemExit("bench_journal: the simulated terminal never went ONLINE")
        mode = {"online": "up", "offline": "down", "cash": "down", "timeout": "blackhole"}[kind]
        driver.host(mode)
        if mode == "down" and not await driver.until_link(LinkStatus.OFFLINE, 10.0):
            raise SystemExit("bench_journal: the terminal never went OFFLINE")
        amount = 4210 if kind == "cash" else 1250  # over / under the 25.00 floor limit
        for _ in range(sales):
            os.fdatasync(marker)
            counting = True
            await driver.sell(amount, "4111111111111111", "3012", 10.0, tender_extra=790)
            await driver.until(lambda: driver.phase.value == "IDLE", 10.0)
            counting = False
            os.fdatasync(marker)
            if kind == "timeout":  # the queued reversal's first (blackholed) send: not a sale's
                await asyncio.sleep(2 * world.config.upstream.request_timeout_s)
    finally:
        os.close(marker)
        driver.host("up")  # a blackholed connection would hold the host's close
        await world.stop()
    return commits


def sale_costs(parent: Path, sales: int, kinds: tuple[str, ...] = SALE_KINDS) -> list[SaleCost]:
    """Commits and journal fsyncs per sale of each kind, each kind in its own traced child."""
    costs = []
    for kind in kinds:
        work = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-", dir=parent))
        trace, result = work / "strace", work / "result.json"
        try:
            subprocess.run(
                [
                    *("strace", "-f", "-y", "-e", f"trace={','.join(SYNC_CALLS)}"),
                    *("-o", str(trace), sys.executable, __file__, "--sale-child", kind),
                    *("--sales", str(sales), "--dir", str(work), "--result", str(result)),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            commits = json.loads(result.read_text())["commits"]
            by_file = _syncs_between_markers(trace.read_text().splitlines(), work / "data")
        finally:
            shutil.rmtree(work)
        costs.append(
            SaleCost(
                kind=kind,
                sales=sales,
                commits=commits / sales,
                syncs=sum(by_file.values()) / sales,
                syncs_by_file={name: n / sales for name, n in by_file.items()},
            )
        )
    return costs


def _syncs_between_markers(lines: list[str], data_dir: Path) -> Counter[str]:
    """fsync/fdatasync calls on the journal's files inside the marker brackets, by file."""
    inside = False
    counted: Counter[str] = Counter()
    for line in lines:
        if "sync(" not in line or "<" not in line or "unfinished" in line:
            continue
        path = Path(line.split("<", 1)[1].split(">", 1)[0])
        if path.name == MARKER_NAME:
            inside = not inside
        elif inside and path.name.startswith(JOURNAL_FILE_NAME):
            counted[_label(path, data_dir)] += 1
    return counted


def print_sale_costs(parent: Path, sales: int) -> None:
    if shutil.which("strace") is None:
        print("sale kinds: strace is not installed (apt-get install strace); not measured")
        return
    print(f"journal commits and fsyncs per sale, {sales} sales of each kind (whole terminal):")
    for cost in sale_costs(parent, sales):
        files = ", ".join(f"{name} {n:.2f}" for name, n in sorted(cost.syncs_by_file.items()))
        print(
            f"  {cost.kind:8} commits {cost.commits:.2f}  fsync+fdatasync {cost.syncs:.2f}"
            f"  ({files or 'none'})"
        )


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
    parser.add_argument(
        "--kinds", action="store_true", help="also: commits and fsyncs per sale of each kind"
    )
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sale-child", choices=SALE_KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:  # run under strace by measure_fsyncs
        record_sales(args.dir, args.child)
        return 0
    if args.sale_child is not None:  # run under strace by sale_costs
        commits = asyncio.run(_sell_kind(args.sale_child, args.dir, args.sales))
        args.result.write_text(json.dumps({"commits": commits}))
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
    if args.kinds:
        print_sale_costs(parent, 20)
    return 0


if __name__ == "__main__":
    sys.exit(main())

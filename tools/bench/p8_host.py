"""P8: the program's host under a festival's load, on SQLite and on PostgreSQL.

`pitill host load` (firmware/pitill/host/load.py) drives TERMINALS terminals from this process
against a `pitill host serve` process: online sales (one in flight per terminal), then every
terminal forwarding an outage's backlog of ADVICES at once (a stampede), and again with the starts
spread over a few seconds (jitter). The host's own tables are checked after each run: 0 lost,
0 charged twice. PostgreSQL is Debian's, started here as the `postgres` user with fsync on.

The baseline of sales per second is what the same engine does at best for one sale's worth of
durable work: one-row write transactions committed back to back by one client (SQLite WAL with
synchronous=FULL; PostgreSQL with fsync on), measured in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchlib import Figure, Options

from pitill.host.load import AMOUNT_MINOR, LoadResult, check_books, prepare_accounts, run_load
from pitill.host.store import HostStore

ROOT = Path(__file__).resolve().parents[2]
PITILL = (sys.executable, "-m", "pitill.cli")


@contextlib.contextmanager
def _host(data: Path, database: str | None) -> Iterator[int]:
    command = [*PITILL, "host", "serve", "--data-dir", str(data), "--listen", "127.0.0.1:0"]
    if database:
        command += ["--database", database]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"P8: the host did not start: {line!r}")
    try:
        yield int(line.rsplit(":", 1)[1])
    finally:
        process.terminate()
        process.wait(timeout=30)


def _floor_commits_per_s(store: HostStore, count: int) -> float:
    """One-row durable write transactions back to back, on this store's engine."""
    store.execute("CREATE TABLE IF NOT EXISTS bench_floor (n BIGINT)")
    for n in range(20):  # warm up: the WAL (or the buffers) exist before the clock starts
        with store.transaction():
            store.execute("INSERT INTO bench_floor (n) VALUES (?)", (n,))
    started = time.perf_counter()
    for n in range(count):
        with store.transaction():
            store.execute("INSERT INTO bench_floor (n) VALUES (?)", (n,))
    return count / (time.perf_counter() - started)


def _run(data: Path, database: str | None, sizes: dict[str, int], jitter_s: float) -> LoadResult:
    store = HostStore.open(data, database)
    try:
        prepare_accounts(store, sizes["terminals"], 10 * (sizes["sales"] + sizes["advices"])
                         * AMOUNT_MINOR)  # fmt: skip
    finally:
        store.close()
    with _host(data, database) as port:
        result = asyncio.run(
            run_load(
                "127.0.0.1",
                port,
                terminals=sizes["terminals"],
                sales=sizes["sales"],
                advices=sizes["advices"],
                jitter_s=jitter_s,
                cards=sizes["terminals"],
            )
        )
    store = HostStore.open(data, database)
    try:
        result.problems = check_books(store, result)
    finally:
        store.close()
    return result


def _engine(
    name: str, stores: list[tuple[Path, str | None]], sizes: dict[str, int], jitter_s: float
) -> list[Figure]:
    """Three fresh stores of one engine: the floor, the stampede, the spread heal."""
    (floor_dir, floor_db), (data, database), (data2, database2) = stores
    store = HostStore.open(floor_dir, floor_db)
    try:
        floor = _floor_commits_per_s(store, 500)
    finally:
        store.close()
    stampede = _run(data, database, sizes, 0.0)
    spread = _run(data2, database2, sizes, jitter_s)
    settle = sizes["terminals"] * sizes["advices"]
    ok = not stampede.problems and not spread.problems
    problems = stampede.problems + spread.problems
    checked = "0 lost, 0 charged twice" if ok else f"PROBLEMS: {problems[:3]}"
    summary: dict[str, Any] = stampede.summary()
    return [
        Figure(
            "P8",
            f"{name}: online sales/s, {sizes['terminals']} terminals",
            stampede.sales_per_s,
            "/s",
            baseline=floor,
            baseline_name=f"{name} one-row durable commits/s",
            note=f"p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms per sale; answers "
            f"{stampede.answered}; {checked}",
        ),
        Figure(
            "P8",
            f"{name}: {sizes['terminals']} x {sizes['advices']} advices settled after a heal",
            stampede.heal_s,
            "s",
            baseline=spread.heal_s,
            baseline_name=f"the same, starts spread over {jitter_s:g} s",
            note=f"{settle / stampede.heal_s:.0f} advices/s in the stampede, "
            f"{settle / spread.heal_s:.0f}/s spread; 5% sent twice as 0221; {checked}",
        ),
    ]


def measure(options: Options) -> list[Figure]:
    sizes = (
        {"terminals": 20, "sales": 5, "advices": 10}
        if options.quick
        else {"terminals": 200, "sales": 20, "advices": 50}
    )
    jitter_s = 1.0 if options.quick else 5.0
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-p8-", dir=options.work_dir) as work:
        base_dir = Path(work)
        sqlite_stores: list[tuple[Path, str | None]] = [
            (base_dir / f"sqlite{n}", None) for n in range(3)
        ]
        figures += _engine("SQLite", sqlite_stores, sizes, jitter_s)
        sys.path.insert(0, str(ROOT / "tests"))
        from pg_server import fresh_database, pg_cluster

        with pg_cluster(fsync=True) as base:
            pg_stores: list[tuple[Path, str | None]] = [
                (base_dir / f"pg{n}", fresh_database(base)) for n in range(3)
            ]
            figures += _engine("PostgreSQL", pg_stores, sizes, jitter_s)
    return figures

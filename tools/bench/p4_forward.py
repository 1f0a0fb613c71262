"""P4: forwarding rate of an outage's backlog, on loopback and over a 30 ms round trip, against
the host's own maximum rate from one terminal with the same window.

Each backlog is built straight into a journal with tools/bench_journal.py's record_sales (offline
card sales, PENDING, card sealed: exactly what an outage leaves), then the terminal's Forwarder
drains it through the UpstreamClient, with the default window (upstream.forward_window) in
flight, until the journal counts nothing pending. The host is the sandbox one in its own process
(`pitill acquirer` on 127.0.0.1: the host is another machine), its ledger fsynced per message on
/dev/shm (another medium than the terminal's journal, which is on --dir). The 30 ms run starts it
with `--latency-ms 30`: each answer leaves 30 ms after its request came, the next requests being
answered meanwhile, as over a WAN.

The baseline sends the same advices with the same client and the same window to a fresh host
(with the same latency) with no journal in the way: the most the host takes from one terminal.
Beside each figure, a note gives the window of one (one advice in flight, as before the window)
against the same host.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchlib import Figure, Options, load_tool

from pitill.config import Config
from pitill.journal.forwarder import Forwarder
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import Journal
from pitill.records import ForwardItem, ForwardKind
from pitill.sim.acquirer import read_ledger
from pitill.sim.acquirer.ledger import LEDGER_NAME
from pitill.sim.resolver import SimResolver
from pitill.upstream.client import UpstreamClient

GOAL_LOOPBACK = 1000.0
GOAL_WAN = 300.0
WAN_RTT_S = 0.030
DRAIN_LIMIT_S = 600.0
SHM = Path("/dev/shm")


@contextlib.contextmanager
def _host(data_dir: Path, rtt_s: float) -> Iterator[int]:
    """`pitill acquirer` in its own process, ledger in data_dir; yields its port."""
    command = [sys.executable, "-m", "pitill.sim.acquirer", "--data-dir", str(data_dir)]
    command += ["--port", "0", "--latency-ms", f"{rtt_s * 1000:g}"]
    data_dir.mkdir(parents=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"P4: the acquirer did not start: {line!r}")
    try:
        yield int(line.split()[3].rsplit(":", 1)[1])
    finally:
        process.terminate()
        process.wait(timeout=30)


def _client(config: Config, port: int) -> UpstreamClient:
    upstream = dataclasses.replace(config.upstream, port=port)
    resolver = SimResolver({upstream.host: "127.0.0.1"})
    return UpstreamClient.from_config(upstream, config.terminal, resolver)


def _config(window: int) -> Config:
    base = Config()
    return dataclasses.replace(
        base, upstream=dataclasses.replace(base.upstream, forward_window=window)
    )


async def _host_rate(
    config: Config, items: list[ForwardItem], host_dir: Path, rtt_s: float
) -> float:
    """The advices sent by the client alone, `forward_window` in flight, in order."""
    with _host(host_dir, rtt_s) as port:
        client = _client(config, port)
        slots = asyncio.Semaphore(config.upstream.forward_window)

        async def send(item: ForwardItem) -> None:
            async with slots:
                await client.send_advice(item)

        start = time.perf_counter()
        await asyncio.gather(*(send(item) for item in items))
        elapsed = time.perf_counter() - start
        await client.close()
    return len(items) / elapsed


async def _forward_rate(
    config: Config, journal: Journal, host_dir: Path, sales: int, rtt_s: float
) -> float:
    with _host(host_dir, rtt_s) as port:
        client = _client(config, port)
        upstream = dataclasses.replace(config.upstream, port=port)
        forwarder = Forwarder(journal, client, upstream)
        forwarder.set_online(True)  # the first link: no heal jitter
        start = time.perf_counter()
        task = forwarder.start()
        while journal.pending_count() > 0:
            if time.perf_counter() - start > DRAIN_LIMIT_S or task.done():
                raise SystemExit(f"P4: the forwarder did not drain {sales} sales")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - start
        await forwarder.stop()
        await client.close()
    acknowledged = sum(1 for e in read_ledger(host_dir / LEDGER_NAME) if not e["duplicate"])
    if acknowledged != sales:
        raise SystemExit(f"P4: the host holds {acknowledged} advices for {sales} sales")
    return sales / elapsed


@dataclasses.dataclass(frozen=True)
class _Run:
    sales: int
    rate: float
    host_rate: float
    build_s: float


def _measure(
    work: Path, hosts: Path, name: str, sales: int, window: int, rtt_s: float, host: bool
) -> _Run:
    """Build a backlog of `sales`, then (when `host`) the baseline, then the forwarder's drain."""
    bench_journal = load_tool("bench_journal")
    config = _config(window)
    data_dir = work / name
    data_dir.mkdir()
    build_s = bench_journal.record_sales(data_dir, sales)
    journal = Journal.open(data_dir, Sealer.load_or_create(data_dir / KEY_FILE_NAME))
    try:
        host_rate = 0.0
        if host:
            # record_sales swipes one card for every sale: unseal it once, through the journal.
            first = journal.next_forward_item()
            assert first is not None and first.card is not None
            items = [ForwardItem(ForwardKind.ADVICE, row, first.card) for row in journal.rows()]
            host_rate = asyncio.run(_host_rate(config, items, hosts / f"{name}-alone", rtt_s))
        rate = asyncio.run(_forward_rate(config, journal, hosts / f"{name}-host", sales, rtt_s))
    finally:
        journal.close()
    return _Run(sales, rate, host_rate, build_s)


def measure(options: Options) -> list[Figure]:
    window = Config().upstream.forward_window
    loop_sales, wan_sales, one_sales = (200, 100, 20) if options.quick else (10_000, 3_000, 300)
    work = Path(tempfile.mkdtemp(prefix="bench-p4-", dir=options.work_dir))
    hosts = Path(tempfile.mkdtemp(prefix="bench-p4-host-", dir=SHM if SHM.is_dir() else work))
    try:
        loop = _measure(work, hosts, "loopback", loop_sales, window, 0.0, host=True)
        loop_one = _measure(work, hosts, "loopback-1", one_sales * 10, 1, 0.0, host=False)
        wan = _measure(work, hosts, "wan", wan_sales, window, WAN_RTT_S, host=True)
        wan_one = _measure(work, hosts, "wan-1", one_sales, 1, WAN_RTT_S, host=False)
    finally:
        shutil.rmtree(work)
        shutil.rmtree(hosts, ignore_errors=True)
    rtt_ms = f"{WAN_RTT_S * 1000:g} ms"
    return [
        Figure(
            "P4",
            f"forwarding a {loop.sales:,}-sale backlog, loopback, window {window}",
            loop.rate,
            "sales/s",
            baseline=loop.host_rate,
            baseline_name=f"host alone, same client, window {window}",
            goal=f">= {GOAL_LOOPBACK:g}/s and >= 50%",
            meets=loop.rate >= GOAL_LOOPBACK and loop.rate >= loop.host_rate / 2,
            note=f"window 1 (one in flight, as before): {loop_one.rate:,.0f} sales/s over "
            f"{loop_one.sales:,}; backlog built in {loop.build_s:.1f} s through Journal.record "
            "(one commit each)",
        ),
        Figure(
            "P4",
            f"forwarding a {wan.sales:,}-sale backlog, {rtt_ms} round trip, window {window}",
            wan.rate,
            "sales/s",
            baseline=wan.host_rate,
            baseline_name=f"host alone ({rtt_ms}), same client, window {window}",
            goal=f">= {GOAL_WAN:g}/s and >= 50%",
            meets=wan.rate >= GOAL_WAN and wan.rate >= wan.host_rate / 2,
            note=f"window 1 (one in flight, as before): {wan_one.rate:,.0f} sales/s over "
            f"{wan_one.sales:,} ({1 / WAN_RTT_S:.0f}/s at most)",
        ),
    ]

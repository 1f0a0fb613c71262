"""P4: forwarding rate of a 10,000-sale backlog on loopback, against the host's own maximum rate.

The backlog is built straight into a journal with tools/bench_journal.py's record_sales (offline
card sales, PENDING, card sealed: exactly what an outage leaves), then the terminal's Forwarder
drains it through the UpstreamClient to the sandbox host on 127.0.0.1 until the journal counts
nothing pending. The baseline sends the same advices with the same client, one at a time as the
forwarder does, to a fresh host with no journal in the way: the most the host takes from one
terminal. Both hosts fsync their ledger per message, as the real one must.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from benchlib import Figure, Options, load_tool

from pitill.config import Config
from pitill.journal.forwarder import Forwarder
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import Journal
from pitill.records import ForwardItem, ForwardKind
from pitill.sim.acquirer import AcquirerHost
from pitill.sim.resolver import SimResolver
from pitill.upstream.client import UpstreamClient

GOAL_RATE = 1000.0
DRAIN_LIMIT_S = 600.0


def _client(config: Config, host: AcquirerHost) -> UpstreamClient:
    upstream = dataclasses.replace(config.upstream, port=host.port)
    resolver = SimResolver({upstream.host: "127.0.0.1"})
    return UpstreamClient.from_config(upstream, config.terminal, resolver)


async def _host_rate(config: Config, items: list[ForwardItem], host_dir: Path) -> float:
    async with AcquirerHost(host_dir) as host:
        client = _client(config, host)
        start = time.perf_counter()
        for item in items:
            await client.send_advice(item)
        elapsed = time.perf_counter() - start
        await client.close()
    return len(items) / elapsed


async def _forward_rate(config: Config, journal: Journal, host_dir: Path, sales: int) -> float:
    async with AcquirerHost(host_dir) as host:
        client = _client(config, host)
        upstream = dataclasses.replace(config.upstream, port=host.port)
        forwarder = Forwarder(journal, client, upstream)
        forwarder.set_online(True)
        start = time.perf_counter()
        task = forwarder.start()
        while journal.pending_count() > 0:
            if time.perf_counter() - start > DRAIN_LIMIT_S or task.done():
                raise SystemExit(f"P4: the forwarder did not drain {sales} sales")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - start
        await forwarder.stop()
        await client.close()
        acknowledged = sum(1 for e in host.ledger() if not e["duplicate"])
    if acknowledged != sales:
        raise SystemExit(f"P4: the host holds {acknowledged} advices for {sales} sales")
    return sales / elapsed


def measure(options: Options) -> list[Figure]:
    bench_journal = load_tool("bench_journal")
    sales = 300 if options.quick else 10_000
    config = Config()
    work = Path(tempfile.mkdtemp(prefix="bench-p4-", dir=options.work_dir))
    try:
        data_dir = work / "terminal"
        data_dir.mkdir()
        build_s = bench_journal.record_sales(data_dir, sales)
        journal = Journal.open(data_dir, Sealer.load_or_create(data_dir / KEY_FILE_NAME))
        try:
            # record_sales swipes one card for every sale: unseal it once, through the journal.
            first = journal.next_forward_item()
            assert first is not None and first.card is not None
            items = [ForwardItem(ForwardKind.ADVICE, row, first.card) for row in journal.rows()]
            host_rate = asyncio.run(_host_rate(config, items, work / "host-alone"))
            rate = asyncio.run(_forward_rate(config, journal, work / "host", sales))
        finally:
            journal.close()
    finally:
        shutil.rmtree(work)
    return [
        Figure(
            "P4",
            f"forwarding a {sales:,}-sale backlog",
            rate,
            "sales/s",
            baseline=host_rate,
            baseline_name="host alone, same client",
            goal=f">= {GOAL_RATE:g}/s and >= 50%",
            meets=rate >= GOAL_RATE and rate >= host_rate / 2,
            note=f"backlog built in {build_s:.1f} s through Journal.record (one commit each)",
        )
    ]

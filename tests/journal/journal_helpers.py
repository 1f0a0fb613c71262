"""Plain helpers for the journal tests: test cards, transactions, a stepping clock, WAL parsing,
a forwarder drained against a real host, and a journal damaged the way salvage must handle."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from pitill.card.model import Card, luhn_ok
from pitill.config import TerminalConfig
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.journal.forwarder import Forwarder
from pitill.journal.store import Journal
from pitill.records import JournalRow
from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream.client import UpstreamClient

OpenJournal = Callable[..., Journal]
"""The open_journal fixture: open_journal(data_dir=None, clock=None) -> Journal."""


def pan_for(index: int) -> str:
    """A distinct Luhn-valid 16-digit test PAN for each index."""
    body = f"4000{index:011d}"
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def card(index: int = 1) -> Card:
    return Card(pan=pan_for(index), expiry_yymm="2812", service_code="101", cardholder_name="A B")


def offline_sale(seq: int, amount_minor: int = 1250) -> Txn:
    return Txn(
        seq=seq,
        kind=TxnKind.CARD,
        mode=TxnMode.OFFLINE,
        amount_minor=amount_minor,
        currency="EUR",
        status=TxnStatus.PENDING,
        card=card(seq),
        response_code="Y3",
    )


def online_sale(seq: int, status: TxnStatus = TxnStatus.AUTHORIZING) -> Txn:
    return Txn(
        seq=seq,
        kind=TxnKind.CARD,
        mode=TxnMode.ONLINE,
        amount_minor=4200,
        currency="EUR",
        status=status,
        card=card(seq),
    )


def cash_sale(seq: int) -> Txn:
    return Txn(
        seq=seq,
        kind=TxnKind.CASH,
        mode=TxnMode.OFFLINE,
        amount_minor=800,
        currency="EUR",
        status=TxnStatus.COMPLETED,
        tendered_minor=1000,
        change_minor=200,
    )


class StepClock:
    """A wall clock that moves one second per reading (or backwards, to mimic a Pi's lost RTC)."""

    def __init__(self, start: datetime = datetime(2025, 10, 20, 9, 30), step_s: float = 1) -> None:
        self.now = start
        self.step = timedelta(seconds=step_s)

    def __call__(self) -> datetime:
        current = self.now
        self.now += self.step
        return current


def wal_commits(wal: Path) -> int:
    """Commit frames in the live part of a WAL file (frames whose salt matches the header)."""
    data = wal.read_bytes() if wal.exists() else b""
    if len(data) < 32:
        return 0
    page_size = int.from_bytes(data[8:12], "big")
    salt = data[16:24]
    commits, offset = 0, 32
    while offset + 24 + page_size <= len(data) and data[offset + 8 : offset + 16] == salt:
        commits += int.from_bytes(data[offset + 4 : offset + 8], "big") != 0  # db size on commit
        offset += 24 + page_size
    return commits


def row_of(journal: Journal, seq: int) -> JournalRow:
    """The stored row of `seq`, which must exist."""
    row = journal.get(seq)
    assert row is not None, f"seq {seq} is not in the journal"
    return row


def client_for(port: int, terminal: TerminalConfig | None = None) -> UpstreamClient:
    """An UpstreamClient dialling the sandbox host on 127.0.0.1:port by its simulated name."""
    return UpstreamClient(
        SIM_HOST,
        port,
        SimResolver(),
        terminal or TerminalConfig(),
        request_timeout_s=2.0,
        connect_timeout_s=1.0,
    )


async def drain(journal: Journal, forwarder: Forwarder) -> None:
    """Run the forwarder until nothing is owed; bounded in turns, not timed."""
    forwarder.set_online(True)
    forwarder.start()
    for _ in range(2000):
        if journal.pending_count() == 0:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("what the journal owes was never answered")


def damage_the_status_index(path: Path) -> None:
    """Scribble over the (status, seq) index's page: integrity_check fails, the table is sound."""
    with sqlite3.connect(path) as conn:
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'txns_by_status'"
        ).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    content = bytearray(path.read_bytes())
    start = (root - 1) * page_size
    content[start + 8 : start + page_size] = b"\xa5" * (page_size - 8)
    path.write_bytes(bytes(content))

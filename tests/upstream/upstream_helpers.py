"""Plain helpers of the upstream tests (imported by name; conftest.py puts this directory on
sys.path): sales and forward items to send, a host with a client, and a bounded wait.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from pitill.card.model import Card
from pitill.card.sealed_track import SealedTrack
from pitill.config import TerminalConfig
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.records import ForwardItem, ForwardKind, JournalRow
from pitill.sim.acquirer import AcquirerHost
from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream.client import UpstreamClient
from pitill.upstream.failures import LinkReason

GOOD_PAN = "4111111111111111"
HOST_TODAY = "2511"  # the host's YYMM in these tests
LOCAL_DATETIME = "251128101500"
TERMINAL = TerminalConfig()


def sale(amount_minor: int = 1250, seq: int = 1, pan: str = GOOD_PAN, expiry: str = "3012") -> Txn:
    """An online card sale about to be authorized, its card swiped (track 2 read)."""
    return Txn(
        seq=seq,
        kind=TxnKind.CARD,
        mode=TxnMode.ONLINE,
        amount_minor=amount_minor,
        currency="EUR",
        status=TxnStatus.AUTHORIZING,
        card=Card(pan, expiry, track=SealedTrack(2, f"{pan}={expiry}1011234567")),
    )


def forward_item(
    kind: ForwardKind = ForwardKind.ADVICE,
    seq: int = 7,
    amount_minor: int = 900,
    attempts: int = 0,
    local_datetime: str = LOCAL_DATETIME,
) -> ForwardItem:
    """An advice or a reversal of seq's 0200, with its card, as the journal hands them out."""
    advice = kind is ForwardKind.ADVICE
    row = JournalRow(
        seq=seq,
        kind=TxnKind.CARD,
        mode=TxnMode.OFFLINE if advice else TxnMode.ONLINE,
        amount_minor=amount_minor,
        currency="EUR",
        status=TxnStatus.PENDING if advice else TxnStatus.REVERSAL_PENDING,
        masked_pan="411111******1111",
        stan=seq,
        local_datetime=local_datetime,
        response_code="",
        auth_code="",
        tendered_minor=0,
        change_minor=0,
        reverses_seq=0,
        attempts=attempts,
    )
    return ForwardItem(kind=kind, row=row, card=Card(GOOD_PAN, "3012"))


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll `condition` until it holds or timeout_s passes; returns whether it held."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@dataclass
class Rig:
    """An acquirer host on loopback and a client dialling it by name through a SimResolver."""

    host: AcquirerHost
    client: UpstreamClient
    resolver: SimResolver
    signals: list[LinkReason]  # what the client reported to its on_signal hook


@asynccontextmanager
async def rig(data_dir: Path, request_timeout_s: float = 2.0) -> AsyncIterator[Rig]:
    host = AcquirerHost(data_dir, today_yymm=lambda: HOST_TODAY)
    resolver = SimResolver()
    signals: list[LinkReason] = []
    await host.start()
    client = UpstreamClient(
        SIM_HOST,
        host.port,
        resolver,
        TERMINAL,
        request_timeout_s=request_timeout_s,
        connect_timeout_s=1.0,
        on_signal=signals.append,
    )
    try:
        yield Rig(host, client, resolver, signals)
    finally:
        await client.close()
        await host.close()


class _JumpingSelector(selectors.DefaultSelector):
    """Polls the sockets without waiting; when nothing is ready, time jumps to the next timer."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events:
            return events
        if timeout is None:  # no timer at all: only I/O can wake us
            return super().select(None)
        self._clock[0] += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop with a fake clock: real sockets on loopback (whose bytes arrive within the
    send on Linux), timers fired at once with time jumping to them. An hour of an idle link
    runs in a second or two; nothing here waits for real time."""

    def __init__(self) -> None:
        self._clock = [0.0]
        super().__init__(_JumpingSelector(self._clock))

    def time(self) -> float:
        return self._clock[0]

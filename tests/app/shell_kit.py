"""A real Terminal (app.py) on fakes that a test drives step by step.

Real parts: the Terminal, its FIFO and effects, a SQLite journal in a tmp dir, the forwarder, the
luma dummy display and the simulator's indicators. Fakes: a clock whose timers fire when the test
says, an upstream client whose answers the test delivers (in any order), a link monitor that only
reports what the test tells it, and a journal whose writes fail while `full` is set (the storage
fault injected at the journal's write boundary).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pitill.app import Devices, HotlistSource, Terminal
from pitill.card.model import Card
from pitill.config import Config
from pitill.core.screens import Screen
from pitill.core.settlement import Reconciliation
from pitill.core.state import Phase
from pitill.core.txn import Txn
from pitill.core.types import Key, LinkStatus, TxnStatus
from pitill.drivers.oled import DummyDisplay
from pitill.errors import StorageError, UpstreamError, UpstreamTimeout
from pitill.journal.forwarder import Forwarder
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import Journal
from pitill.receipt import ReceiptSink
from pitill.records import ForwardItem
from pitill.sim.indicators import SimIndicators
from pitill.upstream.messages import AuthAnswer, Batch

GOOD = Card(pan="4111111111111111", expiry_yymm="3012")
OTHER = Card(pan="5555555555554444", expiry_yymm="3012")
TODAY = "2611"
ACKNOWLEDGED_TITLES = ("APPROVED", "CHANGE")  # a screen that tells the customer it is paid


class FakeTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Monotonic time that moves only when the test says; timers fire in order of their time."""

    def __init__(self) -> None:
        self.now_s = 1000.0
        self._due: list[tuple[float, int, Callable[[], None], FakeTimer]] = []
        self._count = 0

    def monotonic(self) -> float:
        return self.now_s

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> FakeTimer:
        handle = FakeTimer()
        self._count += 1
        heapq.heappush(self._due, (self.now_s + delay_s, self._count, callback, handle))
        return handle

    def fire_next(self) -> bool:
        """Jump to the next live timer and fire it; False when none is set."""
        while self._due:
            when, _, callback, handle = heapq.heappop(self._due)
            if handle.cancelled:
                continue
            self.now_s = max(self.now_s, when)
            callback()
            return True
        return False


class FullDiskJournal(Journal):
    """The real journal; while `full` is set every write fails as a full disk would."""

    full = False
    fail_on = ""  # fail only the writes whose description contains this (e.g. "seq 2")
    fail_in = 0  # > 0: the fail_in-th write from now fails, once (a transient fault)
    refused = 0

    @contextlib.contextmanager
    def _write(self, what: str, *, fsync: bool = True) -> Iterator[sqlite3.Connection]:
        once = False
        if self.fail_in > 0:
            self.fail_in -= 1
            once = self.fail_in == 0
        if once or self.full or (self.fail_on and self.fail_on in what):
            self.refused += 1
            raise StorageError(f"{what} is NOT durable: database or disk is full (injected)")
        with super()._write(what, fsync=fsync) as conn:
            yield conn


@dataclass
class FakeUpstream:
    """The client's small interface (authorize, send_advice, send_reversal, close).

    Each 0200 waits for the test to answer it; advices and reversals are answered at once
    ("00") while `reachable`, else they fail as an unreachable host does.
    """

    reachable: bool = True
    waiting: dict[int, asyncio.Future[AuthAnswer]] = field(default_factory=dict)
    approved: set[int] = field(default_factory=set)  # seqs the host approved (it charged them)
    reversed: dict[int, int] = field(default_factory=dict)  # seq -> reversals received
    advised: dict[int, int] = field(default_factory=dict)  # seq -> advices received
    reconciled: list[tuple[Batch, Reconciliation]] = field(default_factory=list)  # 0500s
    reversal_cards: dict[int, Card | None] = field(default_factory=dict)  # seq -> card in the 0420
    reversal_code: str = "00"  # what the host answers a reversal (30: it refuses it)

    async def authorize(
        self, txn: Txn, local_datetime: str, timeout_s: float | None = None
    ) -> AuthAnswer:
        future: asyncio.Future[AuthAnswer] = asyncio.get_running_loop().create_future()
        self.waiting[txn.seq] = future
        return await future

    def answer(self, seq: int, how: str) -> None:
        """approve, decline, retry (91), timeout (sent, no answer) or unreachable (never sent)."""
        future = self.waiting.pop(seq)
        if how == "approve":
            self.approved.add(seq)
            future.set_result(AuthAnswer("00", auth_code="A1B2C3"))
        elif how == "decline":
            future.set_result(AuthAnswer("05"))
        elif how == "retry":
            future.set_result(AuthAnswer("91"))
        elif how == "timeout":
            future.set_exception(UpstreamTimeout(f"no answer to seq {seq} (injected)"))
        else:
            future.set_exception(UpstreamError(f"seq {seq} not sent: host unreachable (injected)"))

    async def send_advice(self, item: ForwardItem, timeout_s: float | None = None) -> str:
        if not self.reachable:
            raise UpstreamError("advice not sent: host unreachable (injected)")
        self.advised[item.row.seq] = self.advised.get(item.row.seq, 0) + 1
        return "00"

    async def send_reversal(self, item: ForwardItem, timeout_s: float | None = None) -> str:
        if not self.reachable:
            raise UpstreamError("reversal not sent: host unreachable (injected)")
        self.reversed[item.row.seq] = self.reversed.get(item.row.seq, 0) + 1
        self.reversal_cards[item.row.seq] = item.card
        return self.reversal_code

    async def reconcile(
        self, batch: Batch, totals: Reconciliation, currency: str, timeout_s: float | None = None
    ) -> tuple[str, Reconciliation | None]:
        """End of day (0500): the host agrees with whatever it is told, and keeps it."""
        if not self.reachable:
            raise UpstreamError("0500 not sent: host unreachable (injected)")
        self.reconciled.append((batch, totals))
        return "00", totals

    async def close(self) -> None:
        for future in self.waiting.values():
            future.cancel()


class QuietMonitor:
    """The link monitor's place in the Terminal: the test reports link changes itself."""

    async def run(self) -> None:
        await asyncio.Event().wait()


@dataclass
class Shown:
    """A screen as it went to the display, with what the journal held at that moment."""

    screen: Screen
    seq: int
    status: TxnStatus | None


class ShellRig:
    """A Terminal on the fakes above, on its own event loop. Call close() at the end."""

    def __init__(
        self,
        data_dir: Path,
        config: Config | None = None,
        receipts: ReceiptSink | None = None,
        hotlist: HotlistSource | None = None,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.config = config or Config()
        self.upstream = FakeUpstream()
        journal = FullDiskJournal.open(data_dir, Sealer.load_or_create(data_dir / KEY_FILE_NAME))
        assert isinstance(journal, FullDiskJournal)
        self.journal = journal
        self.indicators = SimIndicators()
        self.display = DummyDisplay()
        terminal: Terminal
        self.forwarder = Forwarder(
            self.journal,
            self.upstream,
            # The rig runs on a fake clock: a heal's real-time jitter would only stall it.
            dataclasses.replace(self.config.upstream, forward_jitter_s=0.0),
            on_backlog=lambda pending: terminal.on_backlog(pending),
            on_report=lambda report: terminal.on_forward_report(report),  # as app.py wires it
        )
        terminal = Terminal(
            self.config,
            Devices(display=self.display, indicators=self.indicators),
            self.journal,
            self.upstream,
            QuietMonitor(),
            self.forwarder,
            calendar_yymm=lambda: TODAY,
            monotonic=self.clock.monotonic,
            call_later=self.clock.call_later,
            receipts=receipts,
            hotlist=hotlist,
        )
        self.terminal = terminal
        self.shown: list[Shown] = []
        terminal.screen_listeners.append(self._on_screen)
        self.loop.run_until_complete(terminal.start())
        self.settle()

    def _on_screen(self, screen: Screen, image: object) -> None:
        txn = self.terminal.state.txn
        seq = txn.seq if txn is not None else 0
        self.shown.append(Shown(screen, seq, self.status_of(seq) if seq else None))

    # --- driving ---------------------------------------------------------------------------

    def settle(self, rounds: int = 20) -> None:
        """Let the loop run its ready tasks (answers delivered, the forwarder's sends)."""
        for _ in range(rounds):
            self.loop.run_until_complete(asyncio.sleep(0))

    def settle_until(self, done: Callable[[], bool], limit: int = 500) -> bool:
        """Run the loop (10 ms at a time, `limit` times at most) until done() holds: for work
        that runs in a thread, such as the report."""
        for _ in range(limit):
            if done():
                return True
            self.loop.run_until_complete(asyncio.sleep(0.01))
        return done()

    def on_loop(self, action: Callable[[], None]) -> None:
        """Run `action` on the terminal's loop (where keys and monitors call it), then settle."""

        async def call() -> None:
            action()

        self.loop.run_until_complete(call())
        self.settle()

    def keys(self, *names: str) -> None:
        for name in names:
            key = Key.parse(name)
            self.on_loop(lambda: self.terminal.dispatch_key(key))  # noqa: B023 (run at once)

    def open_menu(self, pin: str = "2580") -> bool:
        """FN and the supervisor PIN (a new one keyed twice while none is set): the shell
        checks or saves it in a thread, so wait for the menu."""
        digits = list(pin)
        again = [] if self.terminal.state.pin_set else [*digits, "OK"]
        self.keys("FN", *digits, "OK", *again)
        return self.settle_until(lambda: self.phase is Phase.MENU)

    def swipe(self, card: Card = GOOD) -> None:
        self.terminal.card(card)  # through call_soon_threadsafe, as the reader thread does
        self.settle()

    def link(self, status: LinkStatus) -> None:
        self.on_loop(lambda: self.terminal.on_link_change(status, "injected"))

    def answer(self, seq: int, how: str) -> None:
        self.upstream.answer(seq, how)
        self.settle()

    def fire_timer(self) -> bool:
        fired = self.clock.fire_next()
        self.settle()
        return fired

    @property
    def phase(self) -> Phase:
        return self.terminal.state.phase

    @property
    def title(self) -> str:
        screen = self.terminal.screen
        return screen.title if screen is not None else ""

    def status_of(self, seq: int) -> TxnStatus | None:
        row = self.journal.get(seq)  # a read: the injected fault only refuses writes
        return row.status if row is not None else None

    def close(self) -> None:
        self.journal.full = False
        self.loop.run_until_complete(self.terminal.stop())
        self.loop.close()

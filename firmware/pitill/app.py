"""The imperative shell: one asyncio loop owns the terminal state and executes the core's effects.

Every producer of events (device threads through `post`, timers, the authorization tasks, the link
monitor, the forwarder, effects with something to report) puts them in one FIFO; `drain` takes
them one at a time, and all effects of one step run, in order, before the next event is taken. An
effect never steps the core itself (the guard in `drain` raises ReentryError). If a Record fails,
nothing after it runs (so nothing un-journaled is ever shown as approved) and RecordFailed is the
next event taken, ahead of anything already queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from PIL import Image

from pitill import dayend
from pitill.card.model import Card, CardTier
from pitill.config import Config
from pitill.core.effects import (
    Authorize,
    Beep,
    CloseDay,
    Effect,
    FindLastSale,
    FindReceipt,
    FindRecentSales,
    OpenDrawer,
    PrintReceipt,
    Record,
    ReprintReceipt,
    RequestReport,
    SaveMode,
    SetLeds,
    SetPin,
    Show,
    StartTimer,
    VerifyPin,
    VoidSale,
)
from pitill.core.events import (
    AuthOutcome,
    AuthResult,
    BacklogChanged,
    Booted,
    CardSwiped,
    CardUnreadable,
    ClockChecked,
    DayClosed,
    Event,
    KeyPressed,
    LastSaleFound,
    LinkChanged,
    PinChecked,
    PinSaved,
    ReaderChanged,
    ReceiptFound,
    ReceiptPrinted,
    RecentSalesFound,
    RecordFailed,
    ReportReady,
    SeqTaken,
    TimerFired,
    TimerName,
    VoidDone,
)
from pitill.core.machine import step
from pitill.core.responses import ResponseClass, advice_class, advice_held
from pitill.core.screens import Screen
from pitill.core.state import Settings, TerminalState
from pitill.core.txn import Txn, stan_for
from pitill.core.types import Key, LinkStatus, OfflineMode, TxnStatus
from pitill.drivers.protocols import CardReader, Display, Indicators, KeySource
from pitill.errors import ReentryError, StorageError, UpstreamError, UpstreamTimeout
from pitill.eventlog import EventLog
from pitill.journal.datadir import check_journal_present, note_journal_opened
from pitill.journal.forwarder import AdviceSender, Forwarder, ForwardFailure, ForwardReport
from pitill.journal.report import read_report
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import MODE_SETTING, Journal
from pitill.logs import log_event
from pitill.receipt import ReceiptSink
from pitill.records import ForwardItem, ForwardKind, HotlistPage, JournalRow
from pitill.sdnotify import Notifier, run_watchdog
from pitill.supervisor import PinGuard
from pitill.upstream.client import UpstreamClient
from pitill.upstream.messages import AuthAnswer
from pitill.upstream.monitor import LinkMonitor
from pitill.upstream.resolver import Resolver
from pitill.upstream.resolver_cache import RESOLVED_HOSTS_NAME, CachingResolver
from pitill.upstream.tls import client_context
from pitill.wallclock import FIX as CLOCK_FIX
from pitill.wallclock import expiry_yymm

log = logging.getLogger("pitill.app")

ScreenListener = Callable[[Screen, Image.Image], None]
RUNTIME_SAVE_S = 60.0
HOTLIST_REFRESH_S = 300.0  # besides each time the host comes back
HOTLIST_MAX_PAGES = 1000  # one sync's bound: 48,000 changes
DAY_CHECK_RETRY_S = 300.0  # an owed end-of-day check is tried again this often while online
REFUND_LIST_LENGTH = 10  # the recent sales FN 4 lists
CLOCK_CHECK_S = 5.0  # how soon a clock that NTP has just set right stops being flagged


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


# call_later(delay_s, callback) -> handle: the loop's by default, a fake clock's in tests.
CallLater = Callable[[float, Callable[[], None]], TimerHandle]


class AuthClient(AdviceSender, dayend.Reconciler, Protocol):
    """The upstream client as the Terminal uses it (UpstreamClient; a fake in tests)."""

    async def authorize(
        self, txn: Txn, local_datetime: str, timeout_s: float | None = None
    ) -> AuthAnswer: ...

    async def close(self) -> None: ...


class HotlistSource(Protocol):
    """Where the program's hotlist comes from (UpstreamClient.fetch_hotlist)."""

    async def fetch_hotlist(
        self, version: int, timeout_s: float | None = None
    ) -> HotlistPage | None: ...


class Monitor(Protocol):
    """The link monitor as the Terminal uses it: a task that reports through on_link_change."""

    async def run(self) -> None: ...


def settings_from_config(config: Config) -> Settings:
    """The core's view of the configuration."""
    return Settings(
        currency=config.terminal.currency,
        currency_exponent=config.terminal.currency_exponent,
        max_amount_minor=config.terminal.max_amount_minor,
        void_window_s=config.terminal.void_window_s,
        mode=config.offline.mode,
        limits=config.offline.limits(),
        timeouts=config.timeouts,
    )


@dataclass
class Devices:
    """The terminal's parts, already built from the config (real drivers or simulator fakes)."""

    display: Display
    indicators: Indicators
    key_sources: list[KeySource] = field(default_factory=list)
    reader: CardReader | None = None

    def close(self) -> None:
        for source in self.key_sources:
            source.close()
        if self.reader is not None:
            self.reader.close()
        self.indicators.close()
        self.display.close()


@dataclass
class OwedReversal:
    """A card the host may have charged whose outcome the journal could not record.

    Kept in memory until the reversal is recorded (REVERSAL_PENDING, then the forwarder's) or
    sent; a reversal sent first is recorded, with the host's answer, once the disk takes it.
    If the terminal stops meanwhile, the row is still AUTHORIZING and the next boot reverses it.
    """

    txn: Txn  # REVERSAL_PENDING, to record
    row: JournalRow  # as journaled at AUTHORIZING: STAN and local date/time, the host's key
    sends: int = 0
    answer: str = ""  # the host's response code to a reversal we sent, "" before


class Terminal:
    """Wires devices -> core -> effects on one event loop."""

    def __init__(
        self,
        config: Config,
        devices: Devices,
        journal: Journal,
        client: AuthClient,
        monitor: Monitor,
        forwarder: Forwarder,
        *,
        event_log: EventLog | None = None,
        notifier: Notifier | None = None,
        calendar_yymm: Callable[[], str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        call_later: CallLater | None = None,
        receipts: ReceiptSink | None = None,
        hotlist: HotlistSource | None = None,
    ) -> None:
        self.config = config
        self.hotlist = hotlist  # None: no hotlist is fetched (the fakes of the shell's tests)
        self._hotlist_wake = asyncio.Event()
        self._no_hotlist_at_host = False  # it said so: no 0800 at each reconnect, only the timer
        self.devices = devices
        self.journal = journal
        self.client = client
        self.monitor = monitor
        self.forwarder = forwarder
        self.event_log = event_log or EventLog(None)
        self.notifier = notifier or Notifier.from_env()
        # Expiry is checked against the date the journal trusts (wallclock.py), not the clock.
        self.calendar_yymm = calendar_yymm or (lambda: expiry_yymm(journal.trusted_now()))
        self.clock_problem: str | None = None
        self.pins = PinGuard(journal)
        self.receipts = receipts  # None: no printer, and the core asks for no receipt
        settings = replace(settings_from_config(config), print_receipts=receipts is not None)
        self.state = TerminalState(settings=settings)
        self.screen: Screen | None = None
        self.image: Image.Image | None = None
        self.leds = (False, False)
        self.drawer_opened = 0
        self.screen_listeners: list[ScreenListener] = []
        self._monotonic = monotonic
        self._call_later = call_later
        self._t0 = monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rows: dict[int, JournalRow] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[TimerName, TimerHandle] = {}
        self._queue: deque[Event] = deque()
        self.owed: dict[int, OwedReversal] = {}  # seq -> a reversal not yet recorded nor sent
        self._owed_wake = asyncio.Event()
        self._days_wake = asyncio.Event()  # an owed end-of-day check may go now
        self._draining = False
        self._stepping = False  # a step and its effects are running (the re-entry guard)
        self.steps = 0  # events taken, for tests and the bench
        self.cards_taken = 0  # CardSwiped/CardUnreadable taken: the simulator's swipe waits on it
        self._seq_taken = 0  # the latest seq take_stan gave a message

    # --- time and posting ----------------------------------------------------------------------

    def now_s(self) -> float:
        return self._monotonic() - self._t0

    def post(self, make_event: Callable[[float], Event]) -> None:
        """Thread-safe: queue an event (built with the loop's clock) on the terminal's loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(lambda: self.enqueue(make_event(self.now_s())))

    def post_key(self, key: Key) -> None:
        self.post(lambda now_s: KeyPressed(now_s, key))

    def dispatch_key(self, key: Key) -> None:
        """A key pressed on this loop (the simulator's keyboard and scripts)."""
        self.enqueue(KeyPressed(self.now_s(), key))

    # The CardSink protocol, called from the reader's thread.
    def card(self, card: Card) -> None:
        self.post(
            lambda now_s: CardSwiped(
                now_s,
                card,
                self.calendar_yymm(),
                last_sun_counter=self.last_sun_counter(card),
                offline_sales_of_card=self.offline_sales_of_card(card),
                hotlisted=self.is_hotlisted(card),
            )
        )

    def is_hotlisted(self, card: Card) -> bool:
        """The journal's hotlist lookup (one indexed query, on the loop). A journal that cannot
        answer counts as "not listed": online the host declines anyway, offline it is the
        merchant's loss, as it was before there was a hotlist."""
        try:
            return self.journal.is_hotlisted(card)
        except StorageError as exc:
            log_event(log, "hotlist_lookup_failed", level=logging.ERROR, error=str(exc))
            return False

    def last_sun_counter(self, card: Card) -> int | None:
        """For a SUN tap, the highest read counter the journal holds for that card (one indexed
        query, on the loop). A journal that cannot answer counts as "never seen": the host still
        declines a replay after the fact."""
        if card.tier is not CardTier.SUN:
            return None
        try:
            return self.journal.last_sun_counter(card.identity)
        except StorageError as exc:
            log_event(log, "sun_counter_failed", level=logging.ERROR, error=str(exc))
            return None

    def offline_sales_of_card(self, card: Card) -> int:
        """The journal's count for this card's offline limit (one indexed query, on the loop)."""
        limits = self.state.settings.limits
        try:
            return self.journal.offline_sales_of_card(card.identity, window_s=limits.max_age_s)
        except StorageError as exc:
            log_event(log, "card_count_failed", level=logging.ERROR, error=str(exc))
            return limits.max_per_card  # unknown: no offline approval for this card

    def unreadable(self, reason: str) -> None:
        self.post(lambda now_s: CardUnreadable(now_s, reason))

    def reader_status(self, connected: bool, detail: str) -> None:
        level = logging.INFO if connected else logging.WARNING
        log_event(log, "reader_status", level=level, connected=connected, detail=detail)
        self.post(lambda now_s: ReaderChanged(now_s, connected, detail))

    # --- the one place state changes -----------------------------------------------------------

    def enqueue(self, event: Event) -> None:
        """Queue `event` (on the loop). Outside a step it is taken at once (with anything queued
        before it); from inside a step's effects it waits until they have all run."""
        self._queue.append(event)
        if not self._draining:
            self.drain()

    def drain(self) -> None:
        """Take the queued events one at a time. Raises ReentryError when called from inside a
        step (an effect or a listener): the step's remaining effects must run first."""
        if self._draining:
            raise ReentryError(
                f"drain() re-entered while a step ran, in phase {self.state.phase.value}: "
                "an effect must enqueue its event, never step the core itself"
            )
        self._draining = True
        try:
            while self._queue:
                self._take(self._queue.popleft())
        finally:
            self._draining = False

    def _take(self, event: Event) -> None:
        if self._stepping:
            raise ReentryError(
                f"{type(event).__name__} taken while a step's effects ran, in phase "
                f"{self.state.phase.value}: an effect must enqueue its event"
            )
        self._stepping = True
        try:
            self._step(event)
        finally:
            self._stepping = False

    def _step(self, event: Event) -> None:
        before = self.state
        self.state, effects = step(self.state, event)
        self.steps += 1
        if isinstance(event, (CardSwiped, CardUnreadable)):
            self.cards_taken += 1
        if self.state.phase is not before.phase:
            self.event_log.write(
                event.now_s, "state", phase=self.state.phase.value, was=before.phase.value
            )
        for effect in effects:
            try:
                self._execute(effect)
            except StorageError as exc:
                log_event(log, "storage_fault", level=logging.ERROR, error=str(exc))
                self.event_log.write(self.now_s(), "storage_fault", error=str(exc))
                seq = 0
                if isinstance(effect, Record):
                    seq = effect.txn.seq
                    self._void(effect.txn)
                # Next, ahead of anything queued: the state this step left claims what the
                # journal refused, and no other event may redraw it (an APPROVED screen).
                self._queue.appendleft(RecordFailed(self.now_s(), seq, str(exc)))
                return

    def _execute(self, effect: Effect) -> None:
        if isinstance(effect, Show):
            self._show(effect.screen)
        elif isinstance(effect, Record):
            self._record(effect.txn)
        elif isinstance(effect, Authorize):
            self._spawn(self._authorize(effect.txn))
        elif isinstance(effect, StartTimer):
            self._start_timer(effect)
        elif isinstance(effect, Beep):
            self.devices.indicators.beep(effect.pattern)
            self.event_log.write(self.now_s(), "beep", pattern=effect.pattern.value)
        elif isinstance(effect, SetLeds):
            self.leds = (effect.green, effect.red)
            self.devices.indicators.set_leds(effect.green, effect.red)
        elif isinstance(effect, RequestReport):
            self._spawn(self._report())
        elif isinstance(effect, SaveMode):
            self._save_mode(effect.mode)
        elif isinstance(effect, FindLastSale):
            self.enqueue(LastSaleFound(self.now_s(), self.journal.last_sale()))
        elif isinstance(effect, VoidSale):
            self._void_sale(effect)
        elif isinstance(effect, FindRecentSales):
            self._find_recent_sales(effect)
        elif isinstance(effect, PrintReceipt):
            self._spawn(self._print_receipt(effect.seq))
        elif isinstance(effect, ReprintReceipt):  # FN 6: seq 0 is the newest receipt
            self._spawn(self._print_receipt(effect.seq, merchant=effect.merchant, again=True))
        elif isinstance(effect, FindReceipt):
            row = self.journal.newest_before(effect.before_seq)
            found = (row.seq, dayend.summary(row)) if row is not None else (0, "")
            self.enqueue(ReceiptFound(self.now_s(), *found))
        elif isinstance(effect, CloseDay):
            self._spawn(self._close_day())
        elif isinstance(effect, VerifyPin):
            self._spawn(self._verify_pin(effect.pin))
        elif isinstance(effect, SetPin):
            self._spawn(self._set_pin(effect.pin))
        elif isinstance(effect, OpenDrawer):
            self.drawer_opened += 1
            self.devices.indicators.open_drawer()
            self.event_log.write(self.now_s(), "drawer", count=self.drawer_opened)
        else:  # pragma: no cover - the Effect union is closed
            raise AssertionError(f"unknown effect {effect!r}")

    def _save_mode(self, mode: OfflineMode) -> None:
        """The mode holds now either way; a failed write only means a restart forgets it."""
        try:
            self.journal.save_setting(MODE_SETTING, mode.value)
        except StorageError as exc:
            log_event(log, "mode_not_saved", level=logging.ERROR, mode=mode.value, error=str(exc))
        else:
            log_event(log, "mode_saved", mode=mode.value)

    def _void_sale(self, effect: VoidSale) -> None:
        """FN 3: one commit (the sale's new status and its VOID row), then VoidDone. A reversal
        it queues goes out through the forwarder like any other, with reason 17."""
        try:
            done = self.journal.record_void(
                effect.seq, effect.from_status, effect.to_status, effect.void
            )
        except StorageError as exc:
            log_event(log, "void_not_saved", level=logging.ERROR, seq=effect.seq, error=str(exc))
            self.enqueue(VoidDone(self.now_s(), ok=False, reason="Void NOT saved"))
            return
        if not done:
            log_event(log, "void_refused", level=logging.WARNING, seq=effect.seq)
            self.enqueue(VoidDone(self.now_s(), ok=False, reason="Sale changed: no void"))
            return
        log_event(log, "sale_voided", seq=effect.seq, status=effect.to_status.value)
        self.event_log.write(
            self.now_s(),
            "void",
            seq=effect.seq,
            status=effect.to_status.value,
            void_seq=effect.void.seq,
            amount_minor=effect.void.amount_minor,
        )
        if effect.to_status is TxnStatus.REVERSAL_PENDING:
            self.forwarder.kick()
        self.enqueue(VoidDone(self.now_s(), ok=True))
        self.enqueue(self.backlog_event())

    def _find_recent_sales(self, effect: FindRecentSales) -> None:
        """FN 4: the newest refundable sales (of the swiped card), one indexed query."""
        identity = effect.card.identity if effect.card is not None else None
        sales = self.journal.recent_sales(REFUND_LIST_LENGTH, identity)
        self.enqueue(RecentSalesFound(self.now_s(), tuple(sales), effect.card))

    async def _print_receipt(self, seq: int, merchant: bool = False, again: bool = False) -> None:
        """Off the loop: a slow or dead printer never holds up keys, probes or the next sale.
        The sale is journaled already; a failure is a notice, and FN 6 reprints (seq 0 with
        `again`: the newest receipt; a reprint without a printer says it was not printed)."""
        sink = self.receipts
        row = self.journal.newest_before(0) if again and seq == 0 else self.journal.get(seq)
        if row is None or (sink is None and not again):
            return
        seq = row.seq
        if sink is None:
            self.enqueue(ReceiptPrinted(self.now_s(), seq, ok=False, reason="no printer"))
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, sink.print_row, row, merchant, again)
        except Exception as exc:  # a printer fails in many ways (USB, serial, paper, library)
            reason = f"{type(exc).__name__}: {exc}"
            log_event(log, "receipt_not_printed", level=logging.WARNING, seq=seq, error=reason)
            self.event_log.write(self.now_s(), "receipt", seq=seq, ok=False, error=reason)
            self.enqueue(ReceiptPrinted(self.now_s(), seq, ok=False, reason=reason))
            return
        self.event_log.write(self.now_s(), "receipt", seq=seq, ok=True)
        self.enqueue(ReceiptPrinted(self.now_s(), seq, ok=True))

    async def _close_day(self) -> None:
        """FN 5: closed in one commit, Z printed, the host asked when it may be reached."""
        online = self.state.link in (LinkStatus.ONLINE, LinkStatus.DEGRADED)
        ok, lines, z = await dayend.close_day(
            self.journal,
            self.client,
            self.receipts,
            online=online,
            currency=self.config.terminal.currency,
            width=self.config.receipt.width,
        )
        if z is not None:
            self.event_log.write(
                self.now_s(),
                "day_closed",
                day=z.day.day,
                last_seq=z.day.last_seq,
                host=z.day.host_status.value,
                note=z.day.host_note,
            )
        self.enqueue(DayClosed(self.now_s(), ok, lines))

    async def _settle_days(self) -> None:
        """Owed host checks of closed days: tried when the link is back, after forwarding, and
        every DAY_CHECK_RETRY_S (an 0500 that got no answer is sent again)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DAY_CHECK_RETRY_S):
                    await self._days_wake.wait()
            self._days_wake.clear()
            if self.state.link in (LinkStatus.ONLINE, LinkStatus.DEGRADED):
                try:
                    await dayend.settle_owed(
                        self.journal, self.client, self.config.terminal.currency
                    )
                except StorageError as exc:
                    log_event(log, "day_check_not_saved", level=logging.ERROR, error=str(exc))

    async def _verify_pin(self, pin: str) -> None:
        """scrypt is slow on purpose: off the loop. The PIN itself is never logged."""
        loop = asyncio.get_running_loop()
        try:
            verdict = await loop.run_in_executor(None, self.pins.verify, pin)
        except StorageError as exc:  # the try could not be counted: do not open the menu
            log_event(log, "pin_check_failed", level=logging.ERROR, error=str(exc))
            self.enqueue(PinChecked(self.now_s(), ok=False))
            return
        level = logging.INFO if verdict.ok else logging.WARNING
        log_event(log, "pin_checked", level=level, ok=verdict.ok, locked_for_s=verdict.locked_for_s)
        self.event_log.write(
            self.now_s(), "pin", ok=verdict.ok, locked_for_s=round(verdict.locked_for_s)
        )
        self.enqueue(PinChecked(self.now_s(), verdict.ok, verdict.tries_left, verdict.locked_for_s))

    async def _set_pin(self, pin: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.pins.set_pin, pin)
        except StorageError as exc:
            log_event(log, "pin_not_saved", level=logging.ERROR, error=str(exc))
            self.enqueue(PinSaved(self.now_s(), saved=False))
            return
        log_event(log, "pin_saved")
        self.enqueue(PinSaved(self.now_s(), saved=True))

    def saved_mode(self) -> OfflineMode | None:
        """The mode last chosen from the FN menu, if any (it wins over the config's)."""
        value = self.journal.setting(MODE_SETTING)
        if value is None:
            return None
        try:
            return OfflineMode(value)
        except ValueError:
            log_event(log, "saved_mode_unknown", level=logging.WARNING, value=value)
            return None

    def check_clock(self) -> None:
        """Tell the core whether the wall clock is obviously wrong, when that changes."""
        problem = self.journal.clock_problem()
        changed = (problem is None) != (self.clock_problem is None)
        self.clock_problem = problem
        if not changed:
            return
        if problem is not None:
            log_event(log, "clock_wrong", level=logging.WARNING, problem=problem, fix=CLOCK_FIX)
        else:
            log_event(log, "clock_right")
        self.enqueue(ClockChecked(self.now_s(), wrong=problem is not None))

    def _show(self, screen: Screen) -> None:
        self.image = self.devices.display.show(screen)
        if screen != self.screen:
            self.event_log.write(self.now_s(), "screen", text=screen.text())
        self.screen = screen
        for listener in self.screen_listeners:
            listener(screen, self.image)

    def _record(self, txn: Txn) -> None:
        row = self.journal.record(txn)  # raises StorageError when not durable
        self._rows[txn.seq] = row
        if txn.status is not TxnStatus.AUTHORIZING and txn.card and txn.card.track:
            txn.card.track.drop()  # decided (offline, declined...): no 0200 will take the track
        self.event_log.write(
            self.now_s(),
            "journal",
            seq=row.seq,
            kind=row.kind.value,
            mode=row.mode.value,
            status=row.status.value,
            amount_minor=row.amount_minor,
            currency=row.currency,
            masked_pan=row.masked_pan,
        )
        log_event(
            log,
            "txn_recorded",
            seq=row.seq,
            status=row.status.value,
            amount_minor=row.amount_minor,
            pan=row.masked_pan,
        )
        if txn.status in (TxnStatus.PENDING, TxnStatus.REVERSAL_PENDING):
            self.forwarder.kick()
            self.enqueue(self.backlog_event())

    def _void(self, txn: Txn) -> None:
        """After a failed write the screen says NOT saved; make the journal agree.

        A commit whose fsync failed may still sit in the WAL and come back at the next open.
        So write, best effort, what the cashier was told: VOIDED (never forwarded, never sold).
        A sale the host may have charged (its approval, or its unknown outcome, not recorded)
        owes a reversal instead, kept in memory until it is recorded or sent (see _settle_owed).
        """
        if txn.status in (TxnStatus.APPROVED, TxnStatus.REVERSAL_PENDING):
            self._owe_reversal(txn)
            return
        if txn.status not in (TxnStatus.PENDING, TxnStatus.COMPLETED, TxnStatus.AUTHORIZING):
            return  # DECLINED: a replay of it promises nobody anything
        try:
            self._record(txn.with_status(TxnStatus.VOIDED))
        except StorageError as exc:
            log_event(log, "void_failed", level=logging.CRITICAL, seq=txn.seq, error=str(exc))

    # --- reversals owed: the host charged a card and the journal could not say so -------------

    def _owe_reversal(self, txn: Txn) -> None:
        row = self._rows.get(txn.seq)
        if row is None:  # pragma: no cover - Authorize always follows the AUTHORIZING record
            log_event(log, "reversal_owed_unknown_row", level=logging.CRITICAL, seq=txn.seq)
            return
        owed = OwedReversal(txn.with_status(TxnStatus.REVERSAL_PENDING), row)
        self.owed[txn.seq] = owed
        # At once, before the STORAGE FAULT screen: a failed commit may still sit in the WAL and
        # come back at the next open; the reversal's row supersedes it if we die right after.
        if self._record_owed(owed):
            return
        log_event(log, "reversal_owed", level=logging.ERROR, seq=txn.seq, pan=row.masked_pan)
        self.event_log.write(self.now_s(), "reversal_owed", seq=txn.seq)
        self._owed_wake.set()

    async def _settle_owed(self) -> None:
        """Until every owed reversal is settled: try to record it (then the forwarder sends it),
        and while that fails send it ourselves whenever the link is not OFFLINE. Retries back off
        from forward_retry_s to forward_retry_max_s; a link coming up retries at once."""
        upstream = self.config.upstream
        failures = 0
        while True:
            if not self.owed:
                failures = 0
                await self._owed_wake.wait()
            self._owed_wake.clear()
            for owed in list(self.owed.values()):
                await self._settle(owed)
            if self.owed:
                failures += 1
                delay_s = min(
                    upstream.forward_retry_max_s,
                    upstream.forward_retry_s * 2 ** min(failures - 1, 32),
                )
                handle = self._later(delay_s, self._owed_wake.set)
                try:
                    await self._owed_wake.wait()
                finally:
                    handle.cancel()

    async def _settle(self, owed: OwedReversal) -> None:
        seq = owed.txn.seq
        if self._record_owed(owed):
            return
        if owed.answer or self.state.link is LinkStatus.OFFLINE:
            return
        # The reversal goes now, journal or not: the attempt count lives here until it is written.
        row = dataclasses.replace(owed.row, status=TxnStatus.REVERSAL_PENDING, attempts=owed.sends)
        owed.sends += 1
        try:
            item = ForwardItem(ForwardKind.REVERSAL, row, owed.txn.card)  # fields 2, 14, 22
            code = await self.client.send_reversal(item)
        except UpstreamError as exc:
            log_event(log, "owed_reversal_not_sent", level=logging.WARNING, seq=seq, error=str(exc))
            return
        if advice_class(code) is ResponseClass.RETRY:
            return
        owed.answer = code
        log_event(log, "owed_reversal_sent", level=logging.WARNING, seq=seq, response_code=code)
        self.event_log.write(self.now_s(), "reversal_sent_unjournaled", seq=seq, code=code)
        self._record_owed(owed)

    def _record_owed(self, owed: OwedReversal) -> bool:
        """Write the owed reversal (and the host's answer, once it has one); True when done."""
        seq = owed.txn.seq
        try:
            self._record(owed.txn)  # REVERSAL_PENDING: from here the forwarder owns it
        except StorageError as exc:
            log_event(
                log, "owed_reversal_not_recorded", level=logging.ERROR, seq=seq, error=str(exc)
            )
            return False
        del self.owed[seq]
        if owed.answer:
            try:
                self.journal.mark_forwarded(seq, owed.answer)
            except StorageError as exc:  # the forwarder sends it again: the host deduplicates
                log_event(log, "owed_reversal_answer_lost", seq=seq, error=str(exc))
            else:
                self.enqueue(self.backlog_event())
        log_event(log, "owed_reversal_recorded", seq=seq, answered=owed.answer or "not yet")
        return True

    def backlog_event(self) -> BacklogChanged:
        exposure = self.journal.offline_exposure()
        return BacklogChanged(
            self.now_s(),
            pending=self.journal.pending_count(),
            offline_count=exposure.count,
            offline_minor=exposure.amount_minor,
            oldest_age_s=exposure.oldest_age_s,
            refund_offline_minor=self.journal.offline_refunds_minor(),
        )

    def _start_timer(self, effect: StartTimer) -> None:
        """A new timer of a name supersedes the old one (whose token is stale anyway)."""
        if (old := self._timers.pop(effect.name, None)) is not None:
            old.cancel()
        self._timers[effect.name] = self._later(
            effect.delay_s,
            lambda: self.enqueue(TimerFired(self.now_s(), effect.name, effect.token)),
        )

    def _later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        if self._call_later is not None:
            return self._call_later(delay_s, callback)
        assert self._loop is not None
        return self._loop.call_later(delay_s, callback)

    async def _report(self) -> None:
        """The FN report: one aggregate query on a read-only connection of its own, in a thread,
        so keys, probes and the watchdog never wait for it."""
        loop = asyncio.get_running_loop()
        try:
            report = await loop.run_in_executor(None, read_report, self.journal.path.parent)
            lines = report.screen_lines()
        except StorageError as exc:
            log_event(log, "report_failed", level=logging.WARNING, error=str(exc))
            lines = ("Report failed:", "journal unreadable", "see the log")
        self.enqueue(ReportReady(self.now_s(), lines))

    def _spawn(self, coro: Awaitable[None]) -> None:
        assert self._loop is not None
        task: asyncio.Task[None] = asyncio.ensure_future(coro, loop=self._loop)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A background task that died of a bug is reported now, not when it is collected."""
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None and self._loop:
            message = f"pitill task {task.get_coro()!r} failed"
            self._loop.call_exception_handler({"message": message, "exception": exc, "task": task})

    async def _authorize(self, txn: Txn) -> None:
        row = self._rows[txn.seq]
        try:
            answer = await self.client.authorize(txn, row.local_datetime)
        except UpstreamTimeout as exc:  # the client has told the monitor already
            log_event(log, "auth_timeout", seq=txn.seq, error=str(exc))
            result = AuthResult(self.now_s(), txn.seq, AuthOutcome.TIMEOUT)
        except UpstreamError as exc:
            log_event(log, "auth_unreachable", seq=txn.seq, error=str(exc))
            result = AuthResult(self.now_s(), txn.seq, AuthOutcome.UNREACHABLE)
        else:
            outcome = AuthOutcome.APPROVED if answer.approved else AuthOutcome.DECLINED
            result = AuthResult(
                self.now_s(),
                txn.seq,
                outcome,
                answer.response_code,
                answer.auth_code,
                balance_minor=answer.balance_minor,
            )
        self.enqueue(result)

    # --- link and backlog --------------------------------------------------------------------

    def on_link_change(self, status: LinkStatus, reason: str) -> None:
        """Called by the monitor on this loop."""
        self.event_log.write(self.now_s(), "link", status=status.value, reason=reason)
        log_event(log, "link_changed", status=status.value, reason=reason)
        online = status in (LinkStatus.ONLINE, LinkStatus.DEGRADED)
        coming_back = self.state.link not in (LinkStatus.ONLINE, LinkStatus.DEGRADED)
        if online and coming_back and not self._no_hotlist_at_host:
            self._hotlist_wake.set()  # after each (re)connect: what changed meanwhile
        self.forwarder.set_online(online)
        self.enqueue(LinkChanged(self.now_s(), status, reason))
        if status is not LinkStatus.OFFLINE:
            self._owed_wake.set()  # an owed reversal goes as soon as the host may be reached
            self._days_wake.set()

    def take_stan(self) -> int:
        """A STAN for a message of no transaction (an 0800 echo or hotlist request, an 0500):
        the client's StanSource, called as the message goes out. One counter of seqs and
        STANs: the journal keeps the seq taken across restarts and the core moves its next seq
        past it, so no message of the terminal ever reuses it. Its SeqTaken goes ahead of any
        queued event (a swipe queued behind it would take the same seq)."""
        seq = max(self.state.next_seq, self._seq_taken + 1)  # its SeqTaken may still be queued
        try:
            seq = self.journal.take_message_seq(seq)
        except StorageError as exc:  # the journal is failing: the terminal shows it elsewhere
            log_event(log, "message_seq_not_saved", level=logging.WARNING, error=str(exc))
        self._seq_taken = seq
        self._queue.appendleft(SeqTaken(self.now_s(), seq))
        if not self._draining:
            self.drain()
        return stan_for(seq)

    def on_backlog(self, pending: int) -> None:
        """The forwarder's count changed (also from inside an effect: a Record kicks it)."""
        self.event_log.write(self.now_s(), "backlog", pending=pending)
        self.enqueue(self.backlog_event())

    def on_forward_report(self, report: ForwardReport) -> None:
        """A batch of advices and reversals about to go upstream, or answered: the events file
        (and the simulator's log) get one line per batch, not one per message."""
        self.event_log.write(
            self.now_s(),
            "forwarding" if report.stage == "sending" else "forwarded",
            seqs=[seq for seq, _, _, _ in report.items],
            kinds=[kind.value for _, kind, _, _ in report.items],
            repeats=sum(repeat for _, _, repeat, _ in report.items),
            codes=[code for _, _, _, code in report.items if code],
            left=report.left,
        )
        if report.stage != "sending":
            self._days_wake.set()  # answers came: an owed day check may go (if all are through)
        for seq, kind, _, code in report.items:
            if kind is ForwardKind.REVERSAL and code and advice_class(code) is ResponseClass.FINAL:
                # The journal made it REVERSAL_REFUSED: the host did not take the charge back.
                log_event(log, "reversal_refused", level=logging.ERROR, seq=seq, code=code)
            elif kind is ForwardKind.ADVICE and code and advice_held(code):
                # The journal holds it (ADVICE_REFUSED): the host never judged the card.
                log_event(log, "advice_refused", level=logging.ERROR, seq=seq, code=code)

    def on_forward_wait(self, delay_s: float) -> None:
        """Back online after an outage: the drain waits delay_s (forward_jitter_s) first, so the
        events file and the simulator's log say why nothing is sent yet."""
        self.event_log.write(self.now_s(), "forward_wait", wait_s=round(delay_s, 2))

    def on_forward_failure(self, failure: ForwardFailure) -> None:
        self.event_log.write(
            self.now_s(),
            "forward_retry",
            seq=failure.seq,
            reason=failure.reason,
            retry_in_s=round(failure.retry_in_s, 1),
        )

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Boot: recover the journal, show the first screen, start devices and background tasks."""
        self._loop = asyncio.get_running_loop()
        self._t0 = self._monotonic()
        recovered = self.journal.recover_at_boot()
        if recovered:
            log_event(log, "recovered_unknown_outcomes", seqs=recovered)
        notice = "Journal damaged: moved aside" if self.journal.moved_aside else ""
        if self.journal.moved_aside:
            log_event(
                log, "journal_moved_aside", level=logging.ERROR, path=self.journal.moved_aside
            )
        self.enqueue(
            Booted(
                self.now_s(),
                next_seq=self.journal.next_seq(),
                pending=self.journal.pending_count(),
                notice=notice,
                mode=self.saved_mode(),
                pin_set=self.pins.is_set(),
                pin_locked_for_s=self.pins.locked_for_s(),
            )
        )
        self.enqueue(self.backlog_event())
        self.check_clock()
        for source in self.devices.key_sources:
            source.start(self.post_key)
        if self.devices.reader is not None:
            self.devices.reader.start(self)
        self._spawn(self.monitor.run())
        self._spawn(self.forwarder.run())
        # WATCHDOG=1 from this loop: if the loop hangs, the pings stop and systemd restarts us.
        self._spawn(run_watchdog(self.notifier))
        self._spawn(self._keep_time())
        self._spawn(self._watch_clock())
        self._spawn(self._settle_owed())
        self._spawn(self._settle_days())
        if self.hotlist is not None:
            self._spawn(self._keep_hotlist(self.hotlist))
        self.notifier.ready()
        log_event(log, "ready", next_seq=self.state.next_seq, pending=self.state.pending)

    async def _keep_time(self) -> None:
        """Persist the running time each minute and refresh the pending sales' age on screen."""
        while True:
            await asyncio.sleep(RUNTIME_SAVE_S)
            try:
                self.journal.save_runtime(card_window_s=self.state.settings.limits.max_age_s)
            except StorageError as exc:
                log_event(log, "runtime_not_saved", level=logging.WARNING, error=str(exc))
            self.enqueue(self.backlog_event())

    async def _keep_hotlist(self, source: HotlistSource) -> None:
        """The program's hotlist, after each (re)connect and every HOTLIST_REFRESH_S."""
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel that
            # arrives as the event is set, and stop() then waited for this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HOTLIST_REFRESH_S):
                    await self._hotlist_wake.wait()
            self._hotlist_wake.clear()
            if self.state.link is not LinkStatus.OFFLINE:
                await self.sync_hotlist(source)

    async def sync_hotlist(self, source: HotlistSource) -> None:
        """Ask for the changes since the journal's version, page by page, each page applied in
        one commit; a failure leaves the list as it was for the next try."""
        for _ in range(HOTLIST_MAX_PAGES):
            have = self.journal.hotlist_version()
            try:
                page = await source.fetch_hotlist(have)
                if page is None:  # the host keeps no hotlist (the sandbox acquirer, a bank):
                    self._no_hotlist_at_host = True  # asked again on the timer, not at reconnects
                    return
                self._no_hotlist_at_host = False
                applied = self.journal.apply_hotlist(page, have)
            except (UpstreamError, StorageError) as exc:  # ProtocolError is an UpstreamError
                log_event(log, "hotlist_not_updated", level=logging.WARNING, error=str(exc))
                return
            if applied:
                log_event(log, "hotlist_updated", version=page.version, changes=len(page.changes))
                self.event_log.write(
                    self.now_s(), "hotlist", version=page.version, changes=len(page.changes)
                )
                if not page.more:
                    return

    async def _watch_clock(self) -> None:
        """A Pi's clock jumps when NTP answers: notice it within CLOCK_CHECK_S."""
        while True:
            await asyncio.sleep(CLOCK_CHECK_S)
            self.check_clock()

    async def stop(self) -> None:
        self.notifier.stopping()
        for seq in self.owed:  # still AUTHORIZING on disk: the next boot queues the reversal
            log_event(log, "reversal_owed_at_stop", level=logging.CRITICAL, seq=seq)
        for handle in self._timers.values():
            handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.close()
        self.devices.close()
        self.journal.close()
        self.event_log.close()


def build_terminal(
    config: Config,
    data_dir: Path,
    devices: Devices,
    resolver: Resolver,
    *,
    event_log: EventLog | None = None,
    receipts: ReceiptSink | None = None,
) -> Terminal:
    """The terminal and its background parts, the same for `pitill run` and the simulator.

    Upstream names resolve through a cache of their last addresses (unless
    upstream.cache_resolved is off) so a vanished name does not stop sales; the client and the
    monitor share it and one TLS context (None without upstream.tls).
    """
    check_journal_present(data_dir)  # before the key is made: a key alone is evidence of sales
    sealer = Sealer.load_or_create(data_dir / KEY_FILE_NAME)
    journal = Journal.open(data_dir, sealer)
    note_journal_opened(data_dir)
    upstream = config.upstream
    if upstream.cache_resolved:
        # The lookup's own bound; the rest of the probe timeout reaches a remembered address.
        resolver = CachingResolver(
            resolver, data_dir / RESOLVED_HOSTS_NAME, lookup_timeout_s=upstream.lookup_timeout_s
        )
    tls = client_context(upstream)
    terminal: Terminal
    client = UpstreamClient.from_config(upstream, config.terminal, resolver, tls=tls)
    # The monitor watches the client's one connection; the client's outcomes are its signals.
    monitor = LinkMonitor(
        upstream,
        config.terminal,
        resolver,
        on_change=lambda status, reason: terminal.on_link_change(status, reason),
        client=client,
    )
    client.on_signal = monitor.report_failure
    client.on_answer = monitor.report_answer
    forwarder = Forwarder(
        journal,
        client,
        config.upstream,
        on_backlog=lambda pending: terminal.on_backlog(pending),
        on_failure=lambda failure: terminal.on_forward_failure(failure),
        on_report=lambda report: terminal.on_forward_report(report),
        on_heal_wait=lambda delay_s: terminal.on_forward_wait(delay_s),
    )
    terminal = Terminal(
        config,
        devices,
        journal,
        client,
        monitor,
        forwarder,
        event_log=event_log,
        receipts=receipts,
        hotlist=client,
    )
    client.stans = terminal.take_stan  # 0800s and 0500s draw from the sales' counter
    return terminal

"""The terminal's state as one frozen value, and the settings the core decides with."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from pitill.card.model import Card
from pitill.core.txn import Txn
from pitill.core.types import LinkStatus, OfflineMode


class Phase(StrEnum):
    """Where the terminal is in a sale. Every phase but BOOTING is shown on screen."""

    BOOTING = "BOOTING"
    IDLE = "IDLE"
    AMOUNT = "AMOUNT"  # the cashier keys in the sale amount
    AWAIT_CARD = "AWAIT_CARD"
    AUTHORIZING = "AUTHORIZING"  # an 0200 is in flight
    APPROVED = "APPROVED"  # approved online
    OFFLINE_APPROVED = "OFFLINE_APPROVED"  # approved offline, journaled as pending
    DECLINED = "DECLINED"
    CASH_ONLY = "CASH_ONLY"  # offline and over the limit: offer cash
    TENDER = "TENDER"  # the cashier keys in the cash handed over
    CHANGE = "CHANGE"  # cash sale journaled, drawer open, change shown
    STORAGE_FAULT = "STORAGE_FAULT"  # the journal could not make a write durable
    MENU = "MENU"  # FN: mode and report
    REPORT = "REPORT"  # the reconciliation report on screen


@dataclass(frozen=True)
class PhaseTimeouts:
    """Seconds each waiting phase waits before it gives up and returns to idle."""

    amount_entry_s: float = 60.0
    await_card_s: float = 30.0
    authorizing_s: float = 15.0
    result_s: float = 4.0
    cash_only_s: float = 60.0
    tender_s: float = 120.0
    change_s: float = 30.0
    storage_fault_s: float = 60.0
    menu_s: float = 30.0


@dataclass(frozen=True)
class OfflineLimits:
    """How much card risk the terminal takes while it cannot reach the host."""

    floor_limit_minor: int = 2500  # per sale
    max_total_minor: int = 50_000  # all offline sales not yet acknowledged by the host
    max_count: int = 20  # how many of them
    max_age_s: float = 24 * 3600.0  # the oldest must reach the host within this
    age_alarm_s: float = 20 * 3600.0  # warn (screen and buzzer) from this age on
    # Offline approvals of one card until the host approves it online (within max_age_s of
    # running time): counted from the journal, so neither a restart nor a short return of the
    # host resets it.
    max_per_card: int = 3
    uid_only_floor_limit_minor: int = 0  # UID-only NFC cards are clonable: online only by default


@dataclass(frozen=True)
class Settings:
    currency: str = "EUR"
    currency_exponent: int = 2
    max_amount_minor: int = 999_999
    mode: OfflineMode = OfflineMode.PREFER_ONLINE
    limits: OfflineLimits = field(default_factory=OfflineLimits)
    timeouts: PhaseTimeouts = field(default_factory=PhaseTimeouts)

    @property
    def floor_limit_minor(self) -> int:
        return self.limits.floor_limit_minor

    @property
    def max_tender_minor(self) -> int:
        """A cash tender above ten times the largest sale is a typing slip, not money."""
        return self.max_amount_minor * 10


@dataclass(frozen=True)
class TerminalState:
    settings: Settings = field(default_factory=Settings)
    phase: Phase = Phase.BOOTING
    link: LinkStatus = LinkStatus.UNKNOWN
    link_reason: str = ""
    reader_connected: bool = True
    reader_detail: str = ""
    pending: int = 0  # card transactions the journal still has to send upstream
    mode: OfflineMode = OfflineMode.PREFER_ONLINE
    offline_count: int = 0  # offline approvals the host has not acknowledged yet
    offline_minor: int = 0
    oldest_age_s: float = 0.0
    age_alarm: bool = False  # the oldest pending sale is nearing its age limit
    report_lines: tuple[str, ...] = ()
    report_page: int = 0  # the page of report_lines on screen, three lines a page
    next_seq: int = 1
    amount_minor: int = 0
    tendered_minor: int = 0
    card: Card | None = None
    card_offline_sales: int = 0  # the journal's count for this card (CardSwiped)
    txn: Txn | None = None  # the sale in progress, or the one just finished
    decline_reason: str = ""
    cash_reason: str = ""
    notice: str = ""  # a one-line message for the cashier, cleared by the next action
    clock_wrong: bool = False  # the wall clock is obviously wrong: shown until it is right
    timer_token: int = 0  # the PHASE timer that counts; older TimerFired are stale

    def but(self, **changes: object) -> TerminalState:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def can_go_online(self) -> bool:
        """Try the host unless it is down or the operator said so (UNKNOWN: try, fall back)."""
        return self.link is not LinkStatus.OFFLINE and self.mode is not OfflineMode.FORCE_OFFLINE

    @property
    def offline(self) -> bool:
        return not self.can_go_online

"""The terminal's state as one frozen value, and the settings the core decides with.

What belongs to one sale (its amount, card, transaction, why it was declined or sent to cash)
lives in its own record, `Sale`: created when the first digit of an amount is keyed, dropped when
the terminal goes idle, so nothing of one sale can leak into the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import StrEnum

from pitill.card.model import Card
from pitill.core.txn import SaleOnRecord, Txn
from pitill.core.types import LinkStatus, OfflineMode, PinPurpose
from pitill.errors import TransitionError


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
    PIN_ENTRY = "PIN_ENTRY"  # FN: the supervisor PIN, keyed as asterisks, guards the menu
    PIN_CHECKING = "PIN_CHECKING"  # the shell checks (or saves) the PIN off the loop
    VOID_LOOKUP = "VOID_LOOKUP"  # FN 3: the journal's newest sale is read
    VOID_CONFIRM = "VOID_CONFIRM"  # that sale on screen: OK voids it
    VOIDING = "VOIDING"  # the void is being journaled
    VOIDED = "VOIDED"  # journaled: reversal queued, offline sale cancelled or cash given back
    # The staffed terminal (core/staffed.py): FN 7 top-up with cash, FN 8 balance inquiry.
    TOPUP_AMOUNT = "TOPUP_AMOUNT"  # the cashier keys in the cash the customer puts on the card
    TOPUP_CARD = "TOPUP_CARD"  # the card to credit
    BALANCE_CARD = "BALANCE_CARD"  # the card whose balance is asked
    STAFFED_AUTHORIZING = "STAFFED_AUTHORIZING"  # the 0200 (code 21 or 31) is in flight
    TOPPED_UP = "TOPPED_UP"  # credited by the host, journaled, drawer open for the cash
    BALANCE_SHOWN = "BALANCE_SHOWN"  # the host's answer to an inquiry on screen
    END_OF_DAY = "END_OF_DAY"  # FN 5: "close the day?" (OK closes it)
    CLOSING_DAY = "CLOSING_DAY"  # the shell closes it, prints the Z report, asks the host
    REPRINT = "REPRINT"  # FN 6: a journaled receipt on screen, OK prints it again
    REFUND_LOOKUP = "REFUND_LOOKUP"  # FN 4: the journal's recent sales are read
    REFUND_PICK = "REFUND_PICK"  # the recent sales on screen: scroll, OK picks, or swipe the card
    REFUND_AMOUNT = "REFUND_AMOUNT"  # the amount to give back, at most the sale less refunds
    REFUND_CARD = "REFUND_CARD"  # a card sale picked from the list: its card, please
    REFUND_AUTHORIZING = "REFUND_AUTHORIZING"  # an 0200 with processing code 20 is in flight
    REFUNDED = "REFUNDED"  # journaled: approved online, queued offline, or cash out of the drawer
    REFUND_DECLINED = "REFUND_DECLINED"  # the host said no, or over the offline refund limits


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
    # Card refunds while the host cannot be reached: money out on nobody's word, so lower.
    refund_floor_limit_minor: int = 1000  # per refund
    refund_max_total_minor: int = 2000  # all offline refunds not yet acknowledged by the host


@dataclass(frozen=True)
class Settings:
    currency: str = "EUR"
    currency_exponent: int = 2
    max_amount_minor: int = 999_999
    mode: OfflineMode = OfflineMode.PREFER_ONLINE
    void_window_s: float = 600.0  # the last sale may be voided this long after it was recorded
    print_receipts: bool = False  # a receipt printer is fitted (or the simulator keeps receipts)
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
class Sale:
    """The sale in progress, from amount entry back to idle."""

    amount_minor: int = 0
    tendered_minor: int = 0
    card: Card | None = None
    card_offline_sales: int = 0  # the journal's count of offline sales for this card (CardSwiped)
    hotlisted: bool = False  # the program's hotlist holds the card: never approved offline
    txn: Txn | None = None  # its transaction once journaled (the one just finished, on a result)
    decline_reason: str = ""
    cash_reason: str = ""  # why CASH ONLY was shown for this sale, "" if it was not


SALE_FIELDS = frozenset(f.name for f in fields(Sale))


@dataclass(frozen=True)
class RefundPick:
    """FN 4 from the list of recent sales to the sale picked (its amount and card go in Sale)."""

    choices: tuple[SaleOnRecord, ...] = ()
    index: int = 0  # the choice under the cursor
    card: Card | None = None  # the card swiped to find the sale: the refund goes to it
    target: SaleOnRecord | None = None  # the sale picked


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
    sale: Sale | None = None  # None outside a sale (idle, menu, report)
    notice: str = ""  # a one-line message for the cashier, cleared by the next action
    clock_wrong: bool = False  # the wall clock is obviously wrong: shown until it is right
    timer_token: int = 0  # the PHASE timer that counts; older TimerFired are stale
    # The supervisor PIN: the core never sees its hash, only what the shell tells it (Booted,
    # PinChecked). The digits being keyed stay out of every repr.
    pin_set: bool = False
    pin_purpose: PinPurpose = PinPurpose.UNLOCK
    pin_entry: str = field(default="", repr=False)
    pin_first: str = field(default="", repr=False)  # a new PIN, until it is keyed again
    void_target: SaleOnRecord | None = None  # the sale FN 3 is voiding (VOID_CONFIRM on)
    void_seq: int = 0  # the seq of the VOID row being journaled / just journaled
    pin_locked_until_s: float = 0.0  # now_s until which the menu is locked after wrong tries
    reprint_seq: int = 0  # the receipt FN 6 shows (0: none found yet)
    reprint_line: str = ""  # its one-line summary, from the journal (ReceiptFound)
    refund: RefundPick | None = None  # FN 4 in progress (the list, the sale picked)
    refund_offline_minor: int = 0  # offline card refunds the host has not acknowledged yet

    def but(self, **changes: object) -> TerminalState:
        """A copy with `changes`; the fields of Sale go into the sale in progress, and changing
        one when no sale is in progress raises TransitionError (a sale is begun with sale=)."""
        sale_changes = {name: changes.pop(name) for name in SALE_FIELDS & changes.keys()}
        new = replace(self, **changes)  # type: ignore[arg-type]
        if not sale_changes:
            return new
        if new.sale is None:
            raise TransitionError(
                f"{', '.join(sorted(sale_changes))} changed with no sale in progress "
                f"(phase {new.phase.value})"
            )
        return replace(new, sale=replace(new.sale, **sale_changes))  # type: ignore[arg-type]

    # The sale's fields, read through the state (their defaults outside a sale).
    @property
    def amount_minor(self) -> int:
        return self.sale.amount_minor if self.sale else 0

    @property
    def tendered_minor(self) -> int:
        return self.sale.tendered_minor if self.sale else 0

    @property
    def card(self) -> Card | None:
        return self.sale.card if self.sale else None

    @property
    def card_offline_sales(self) -> int:
        return self.sale.card_offline_sales if self.sale else 0

    @property
    def txn(self) -> Txn | None:
        return self.sale.txn if self.sale else None

    @property
    def hotlisted(self) -> bool:
        return self.sale.hotlisted if self.sale else False

    @property
    def decline_reason(self) -> str:
        return self.sale.decline_reason if self.sale else ""

    @property
    def cash_reason(self) -> str:
        return self.sale.cash_reason if self.sale else ""

    @property
    def can_go_online(self) -> bool:
        """Try the host unless it is down or the operator said so (UNKNOWN: try, fall back)."""
        return self.link is not LinkStatus.OFFLINE and self.mode is not OfflineMode.FORCE_OFFLINE

    @property
    def offline(self) -> bool:
        return not self.can_go_online

"""Events: everything that can happen to the terminal, as data. Each carries a monotonic now_s."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pitill.card.model import Card
from pitill.core.txn import SaleOnRecord
from pitill.core.types import Key, LinkStatus, OfflineMode


@dataclass(frozen=True)
class Booted:
    """First event after start: what the journal says and where sequence numbers continue."""

    now_s: float
    next_seq: int
    pending: int = 0
    notice: str = ""  # what the shell found at boot that the cashier should know
    mode: OfflineMode | None = None  # chosen from the FN menu before (wins over the config's)
    pin_set: bool = False  # a supervisor PIN is stored (else the first FN asks for a new one)
    pin_locked_for_s: float = 0.0  # wrong tries before the restart still lock the menu this long


@dataclass(frozen=True)
class KeyPressed:
    now_s: float
    key: Key


@dataclass(frozen=True)
class CardSwiped:
    """A card read by any reader (swiped, typed by a USB stripe reader or tapped on NFC).

    today_yymm is the date the shell trusts (wallclock.py), for expiry; last_sun_counter is the
    highest SUN read counter the journal holds for this card (None: never seen, or not a SUN
    card); offline_sales_of_card is this card's offline approvals the journal counts against its
    per-card limit; hotlisted says the program's hotlist, as the journal last received it,
    holds this card (refused offline; online the host decides).
    """

    now_s: float
    card: Card
    today_yymm: str
    last_sun_counter: int | None = None
    offline_sales_of_card: int = 0
    hotlisted: bool = False


@dataclass(frozen=True)
class CardUnreadable:
    """The reader sent something that is not a usable track (bad LRC already dropped by framing)."""

    now_s: float
    reason: str


@dataclass(frozen=True)
class ReaderChanged:
    """The card reader's port went away (USB unplugged) or came back."""

    now_s: float
    connected: bool
    detail: str = ""


@dataclass(frozen=True)
class LinkChanged:
    now_s: float
    status: LinkStatus
    reason: str = ""


@dataclass(frozen=True)
class SeqTaken:
    """The shell gave `seq` (its STAN) to a message of no transaction, an echo: sequence numbers
    and STANs are one counter, so the next transaction takes a later one."""

    now_s: float
    seq: int


class AuthOutcome(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    TIMEOUT = "timeout"  # sent, no answer in time: outcome unknown, must be reversed
    UNREACHABLE = "unreachable"  # never sent (refused, no route, name did not resolve)


@dataclass(frozen=True)
class AuthResult:
    now_s: float
    seq: int
    outcome: AuthOutcome
    response_code: str = ""
    auth_code: str = ""
    balance_minor: int | None = None  # the card's balance after it, when the host says (field 54)


@dataclass(frozen=True)
class BacklogChanged:
    """The journal's view of what still has to go upstream, and the offline exposure in it."""

    now_s: float
    pending: int  # card transactions still to send (advices and reversals)
    offline_count: int = 0  # offline approvals not yet acknowledged by the host
    offline_minor: int = 0  # their total amount
    oldest_age_s: float = 0.0  # age of the oldest of them (terminal running time, see journal)
    refund_offline_minor: int = 0  # offline card refunds not yet acknowledged, their total


@dataclass(frozen=True)
class ClockChecked:
    """Whether the wall clock is obviously wrong (the shell checks it; see wallclock.py)."""

    now_s: float
    wrong: bool


@dataclass(frozen=True)
class ReportReady:
    """The reconciliation report the FN menu asked for, as lines for the screen."""

    now_s: float
    lines: tuple[str, ...]


@dataclass(frozen=True)
class RecordFailed:
    """The journal could not make a write durable; nothing after that Record was executed."""

    now_s: float
    seq: int
    reason: str


@dataclass(frozen=True)
class PinChecked:
    """The shell's verdict on a keyed PIN (VerifyPin). After too many wrong tries the menu is
    locked for `locked_for_s` (the shell counts the tries and keeps the lock across restarts)."""

    now_s: float
    ok: bool
    tries_left: int = 0
    locked_for_s: float = 0.0


@dataclass(frozen=True)
class PinSaved:
    """The shell stored a new PIN (SetPin), or could not."""

    now_s: float
    saved: bool


@dataclass(frozen=True)
class LastSaleFound:
    """The journal's newest sale (FindLastSale), or None when it holds none."""

    now_s: float
    sale: SaleOnRecord | None


@dataclass(frozen=True)
class VoidDone:
    """The void was journaled (ok) or refused: the sale changed meanwhile, or the write failed."""

    now_s: float
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class RecentSalesFound:
    """The journal's recent sales that may still be refunded (FindRecentSales), newest first;
    `card` is the card they were looked up by (None: the newest of all)."""

    now_s: float
    sales: tuple[SaleOnRecord, ...]
    card: Card | None = None


@dataclass(frozen=True)
class ReceiptPrinted:
    """The printer took the receipt of `seq`, or did not (out of paper, offline, unplugged)."""

    now_s: float
    seq: int
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class DayClosed:
    """The day was closed (ok) and its Z report built, or it could not be (the journal refused):
    the lines for the screen either way (the host's verdict, or that its check is owed)."""

    now_s: float
    ok: bool
    lines: tuple[str, ...]


@dataclass(frozen=True)
class ReceiptFound:
    """The receipt FindReceipt asked for: its seq and a one-line summary; seq 0 if none."""

    now_s: float
    seq: int
    summary: str = ""


class TimerName(StrEnum):
    PHASE = "phase"  # the timeout of the current waiting step


@dataclass(frozen=True)
class TimerFired:
    now_s: float
    name: TimerName
    token: int  # stale tokens (a timer of a step already left) are ignored


Event = (
    Booted
    | KeyPressed
    | CardSwiped
    | CardUnreadable
    | ReaderChanged
    | LinkChanged
    | SeqTaken
    | AuthResult
    | BacklogChanged
    | ClockChecked
    | ReportReady
    | RecordFailed
    | TimerFired
    | PinChecked
    | PinSaved
    | LastSaleFound
    | VoidDone
    | ReceiptPrinted
    | DayClosed
    | ReceiptFound
    | RecentSalesFound
)

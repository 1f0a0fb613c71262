"""Effects: what the core asks the shell to do, as data, executed strictly in order.

A Record that makes a sale durable always precedes anything that tells the customer it succeeded;
if a Record fails, the shell executes nothing after it and feeds RecordFailed back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pitill.card.model import Card
from pitill.core.events import TimerName
from pitill.core.screens import Screen
from pitill.core.txn import Txn
from pitill.core.types import BeepPattern, OfflineMode, TxnStatus


@dataclass(frozen=True)
class Show:
    screen: Screen


@dataclass(frozen=True)
class Beep:
    pattern: BeepPattern


@dataclass(frozen=True)
class SetLeds:
    green: bool
    red: bool


@dataclass(frozen=True)
class Record:
    """Write this transaction (insert or new status) to the journal, durably, before going on."""

    txn: Txn


@dataclass(frozen=True)
class Authorize:
    """Send the journaled transaction `txn` online (0200); the answer comes back as AuthResult."""

    txn: Txn


@dataclass(frozen=True)
class OpenDrawer:
    pass


@dataclass(frozen=True)
class StartTimer:
    name: TimerName
    delay_s: float
    token: int


@dataclass(frozen=True)
class RequestReport:
    """Build the reconciliation report from the journal and answer with ReportReady."""


@dataclass(frozen=True)
class SaveMode:
    """Keep the mode the operator chose from the FN menu, so it survives a restart."""

    mode: OfflineMode


@dataclass(frozen=True)
class VerifyPin:
    """Check the keyed PIN against the stored hash (slow on purpose: off the loop); the answer
    comes back as PinChecked. The digits never appear in a repr, a log or the event file."""

    pin: str = field(repr=False)


@dataclass(frozen=True)
class SetPin:
    """Store a new supervisor PIN (as a salted hash); the answer comes back as PinSaved."""

    pin: str = field(repr=False)


@dataclass(frozen=True)
class FindLastSale:
    """Read the journal's newest sale; the answer comes back as LastSaleFound."""


@dataclass(frozen=True)
class VoidSale:
    """In one journal commit: move sale `seq` from `from_status` to `to_status` (only if it is
    still there and was never sent) and record `void`, which names it in reverses_seq. The
    answer comes back as VoidDone; a reversal it queues goes out through the forwarder."""

    seq: int
    from_status: TxnStatus
    to_status: TxnStatus
    void: Txn


@dataclass(frozen=True)
class FindRecentSales:
    """Read the newest sales that may still be refunded (of `card` only, when given), each with
    what was refunded of it so far; the answer comes back as RecentSalesFound."""

    card: Card | None = None


@dataclass(frozen=True)
class PrintReceipt:
    """Print the receipt of the journaled transaction `seq` (never before its Record); the
    answer comes back as ReceiptPrinted. A printer that fails never undoes or blocks a sale."""

    seq: int


@dataclass(frozen=True)
class CloseDay:
    """End of day (FN 5): close the open day in one journal commit, print its Z report, and
    when online ask the host to check it (0500/0510); the answer comes back as DayClosed."""


@dataclass(frozen=True)
class FindReceipt:
    """Read the newest journaled receipt older than `before_seq` (0: the newest of all); the
    answer comes back as ReceiptFound."""

    before_seq: int = 0


@dataclass(frozen=True)
class ReprintReceipt:
    """Print receipt `seq` again (0: the newest journaled one), the customer's or the
    merchant's copy; the answer comes back as ReceiptPrinted, like a first print."""

    seq: int = 0
    merchant: bool = False


Effect = (
    Show
    | Beep
    | SetLeds
    | Record
    | Authorize
    | OpenDrawer
    | StartTimer
    | RequestReport
    | SaveMode
    | VerifyPin
    | SetPin
    | FindLastSale
    | VoidSale
    | PrintReceipt
    | CloseDay
    | FindReceipt
    | ReprintReceipt
    | FindRecentSales
)

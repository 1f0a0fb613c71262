"""Every screen the terminal shows, produced by driving the real core, for the docs' gallery.

The README's pictures come from here (tools/record-demo), so they are the screens a cashier
sees: the same transition table, the same views, the same renderer.
"""

from __future__ import annotations

from collections.abc import Iterable

from PIL import Image

from pitill.card.model import Card
from pitill.core.events import (
    AuthOutcome,
    AuthResult,
    BacklogChanged,
    Booted,
    CardSwiped,
    DayClosed,
    Event,
    KeyPressed,
    LastSaleFound,
    LinkChanged,
    PinChecked,
    ReaderChanged,
    ReceiptFound,
    RecordFailed,
    ReportReady,
    VoidDone,
)
from pitill.core.machine import step
from pitill.core.screens import Screen
from pitill.core.state import TerminalState
from pitill.core.txn import SaleOnRecord
from pitill.core.types import Key, LinkStatus, TxnKind, TxnMode, TxnStatus
from pitill.core.views import screen_for
from pitill.receipt import ReceiptHeader, receipt_png
from pitill.records import JournalRow

CARD = Card("4111111111111111", "3012")
TODAY = "2611"


def keys(*names: str) -> list[Event]:
    return [KeyPressed(0.0, Key.parse(name)) for name in names]


def run(events: Iterable[Event]) -> Screen:
    state, _ = step(TerminalState(), Booted(0.0, next_seq=1, pin_set=True))
    for event in events:
        state, _ = step(state, event)
    return screen_for(state)


ONLINE = [LinkChanged(0.0, LinkStatus.ONLINE)]
OFFLINE = [LinkChanged(0.0, LinkStatus.OFFLINE, "DNS")]
SWIPE = [CardSwiped(0.0, CARD, TODAY)]
# FN and the supervisor PIN, which the shell accepts (a PIN stored before: Booted said so).
LAST_SALE = SaleOnRecord(
    seq=41,
    kind=TxnKind.CARD,
    mode=TxnMode.ONLINE,
    status=TxnStatus.APPROVED,
    amount_minor=1250,
    currency="EUR",
    masked_pan="411111******1111",
    age_s=95.0,
    sent=False,
)
SUPERVISOR = [*keys("FN", "2", "5", "8", "0", "OK"), PinChecked(0.0, ok=True)]


REPORT_LINES = (
    "Card Online 12 310.50",
    "Card Offline 4 61.00",
    "Cash 7 96.20",
    "Waiting 1 12.00",
    "Declined after 0 0.00",
    "Reversals due 0",
)


# The Z report's first page (end of day, FN 5) as journal/days.py writes it, agreed and not.
Z_AGREED = ("Z day 3 #118-164", "Host agrees", "Card Online 31 702.40", "Card Offline 4 61.00")
Z_DISAGREES = ("Z day 3 #118-164", "HOST DISAGREES (95)", "debits 35/36", "debits minor")


def core_gallery() -> dict[str, Screen]:
    """Screen name -> the screen the core shows there."""
    return {
        "ready_checking": run([]),  # the first screen: the monitor has no verdict yet
        "ready": run(ONLINE),
        "amount": run([*ONLINE, *keys("1", "2", "5", "0")]),
        "swipe_card": run([*ONLINE, *keys("1", "2", "5", "0", "OK")]),
        "authorizing": run([*ONLINE, *keys("1", "2", "5", "0", "OK"), *SWIPE]),
        "approved": run(
            [
                *ONLINE,
                *keys("1", "2", "5", "0", "OK"),
                *SWIPE,
                AuthResult(0.0, 1, AuthOutcome.APPROVED, "00", "A1B2C3"),
            ]
        ),
        "declined": run(
            [
                *ONLINE,
                *keys("2", "0", "5", "1", "OK"),
                *SWIPE,
                AuthResult(0.0, 1, AuthOutcome.DECLINED, "51"),
            ]
        ),
        "ready_offline": run(OFFLINE),
        "approved_offline": run([*OFFLINE, *keys("1", "8", "0", "0", "OK"), *SWIPE]),
        "cash_only": run([*OFFLINE, *keys("4", "2", "1", "0", "OK")]),
        "tender": run([*OFFLINE, *keys("4", "2", "1", "0", "OK", "OK", "5", "0", "0", "0")]),
        "change": run([*OFFLINE, *keys("4", "2", "1", "0", "OK", "OK", "5", "0", "0", "0", "OK")]),
        "forwarding": run([*ONLINE, BacklogChanged(0.0, 3, 3, 4500, 600.0)]),
        "age_alarm": run([*OFFLINE, BacklogChanged(0.0, 4, 4, 6000, 21 * 3600.0)]),
        "reader_unplugged": run([*ONLINE, ReaderChanged(0.0, False, "unplugged")]),
        "storage_fault": run(
            [*ONLINE, *keys("1", "OK"), *SWIPE, RecordFailed(0.0, 1, "disk full")]
        ),
        "pin": run([*ONLINE, *keys("FN", "2", "5", "8")]),
        "menu": run([*ONLINE, *SUPERVISOR]),
        "void": run([*ONLINE, *SUPERVISOR, *keys("3"), LastSaleFound(0.0, LAST_SALE)]),
        "voided": run(
            [
                *ONLINE,
                *SUPERVISOR,
                *keys("3"),
                LastSaleFound(0.0, LAST_SALE),
                *keys("OK"),
                VoidDone(0.0, ok=True),
            ]
        ),
        "report": run(
            [
                *ONLINE,
                *SUPERVISOR,
                *keys("2"),
                ReportReady(0.0, REPORT_LINES),
            ]
        ),
        "end_of_day": run([*ONLINE, *SUPERVISOR, *keys("5")]),
        "z_report": run([*ONLINE, *SUPERVISOR, *keys("5", "OK"), DayClosed(0.0, True, Z_AGREED)]),
        "z_disagrees": run(
            [*ONLINE, *SUPERVISOR, *keys("5", "OK"), DayClosed(0.0, True, Z_DISAGREES)]
        ),
        "reprint": run([*ONLINE, *SUPERVISOR, *keys("6"), ReceiptFound(0.0, 41, "12.50 APPROVED")]),
        "topped_up": run(
            [
                *ONLINE,
                *SUPERVISOR,
                *keys("7", "2", "0", "0", "0", "OK"),
                *SWIPE,
                AuthResult(0.0, 1, AuthOutcome.APPROVED, "00", "000042", balance_minor=1750),
            ]
        ),
        "balance": run(
            [
                *ONLINE,
                *SUPERVISOR,
                *keys("8"),
                *SWIPE,
                AuthResult(0.0, 1, AuthOutcome.APPROVED, "00", balance_minor=1750),
            ]
        ),
    }


# The receipt of the offline approval the "approved_offline" screen shows (README: side by side).
OFFLINE_RECEIPT_ROW = JournalRow(
    seq=42,
    kind=TxnKind.CARD,
    mode=TxnMode.OFFLINE,
    amount_minor=1800,
    currency="EUR",
    status=TxnStatus.PENDING,
    masked_pan=CARD.masked_pan,
    stan=42,
    local_datetime="251020094815",
    response_code="Y3",
    auth_code="",
    tendered_minor=0,
    change_minor=0,
    reverses_seq=0,
    attempts=0,
)


def receipt_gallery() -> dict[str, Image.Image]:
    """The receipts the README shows, drawn by the same code as `pitill receipt --png`."""
    header = ReceiptHeader(shop="PITILL CAFE", address=("1 Pi Street",))
    return {"approved_offline": receipt_png(OFFLINE_RECEIPT_ROW, "PITILL01", header)}

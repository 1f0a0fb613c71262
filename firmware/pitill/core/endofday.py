"""End of day (FN 5) and receipt reprints (FN 6, and FN 6 OK without a PIN): their table rows.

Registered in machine.py's table (this module uses its helpers, so machine imports it last).

- FN 5 (behind the PIN): END_OF_DAY asks "close the day?"; OK -> CLOSING_DAY with CloseDay. The
  shell closes the day in one journal commit, prints the Z report, asks the host when online and
  answers DayClosed with the Z report's lines, paged on the REPORT screen. The next sale is the
  first of the next day; a sale of a closed day can no longer be voided (machine.void_refusal).
- FN 6 after the PIN: REPRINT shows the newest receipt; CLEAR steps to an older one, OK prints
  the customer's copy again, FN the merchant's copy.
- FN, 6, OK (no PIN): the newest receipt is printed again. A PIN has at least four digits, so a
  lone 6 on the PIN screen can only mean this; any cashier can do it, and only for the last one.
"""

from __future__ import annotations

from pitill.core.effects import Beep, CloseDay, FindReceipt, ReprintReceipt
from pitill.core.events import DayClosed, Event, ReceiptFound
from pitill.core.machine import (
    _NO_CARD_WANTED,
    _NOT_NOW,
    Handler,
    Result,
    Trigger,
    awaiting,
    confirming,
    done,
    enter,
    ignore,
    leads_to,
    to_idle,
)
from pitill.core.settlement import ADVICE_REFUSED_LINE, REFUSED_LINE
from pitill.core.state import Phase, TerminalState
from pitill.core.types import BeepPattern

REPRINT_LAST_KEYS = "6"  # keyed on the PIN screen, then OK: the last receipt, no PIN needed


def ask_end_of_day(state: TerminalState) -> Result:
    """FN 5 in the menu."""
    return enter(state, Phase.END_OF_DAY, Beep(BeepPattern.ALERT))


@leads_to(Phase.CLOSING_DAY)
def close_day(state: TerminalState, event: Event) -> Result:
    return enter(
        state, Phase.CLOSING_DAY, CloseDay(), report_lines=("Closing the day",), report_page=0
    )


@leads_to(Phase.REPORT, Phase.IDLE)
def day_closed(state: TerminalState, event: Event) -> Result:
    """The Z report, paged like the FN 2 report; a day that could not be closed says so."""
    assert isinstance(event, DayClosed)
    if not event.ok:
        new_state, effects = to_idle(state, notice=event.lines[0] if event.lines else "")
        return new_state, (Beep(BeepPattern.ERROR), *effects)
    # a refused reversal (the host did not reverse), a held advice (the host took nothing)
    alarming = ("HOST DISAGREES", REFUSED_LINE, ADVICE_REFUSED_LINE)
    disagrees = any(line.startswith(alarming) for line in event.lines)
    beep = Beep(BeepPattern.ALERT if disagrees else BeepPattern.APPROVE)
    return enter(state, Phase.REPORT, beep, report_lines=event.lines, report_page=0)


@leads_to(Phase.IDLE)
def closing_timed_out(state: TerminalState, event: Event) -> Result:
    """The shell never answered: the day may be closed; `pitill report --day` tells."""
    return to_idle(state, notice="See report --day")


# --- reprint -------------------------------------------------------------------------------------


def reprint_last(state: TerminalState) -> Result:
    """FN 6 OK without a PIN: the newest receipt, the customer's copy."""
    new_state, effects = to_idle(state, notice="Reprinting last")
    return new_state, (ReprintReceipt(0), Beep(BeepPattern.CLICK), *effects)


def open_reprint(state: TerminalState) -> Result:
    """FN 6 in the menu (behind the PIN): any receipt, either copy."""
    return enter(
        state,
        Phase.REPRINT,
        FindReceipt(0),
        Beep(BeepPattern.CLICK),
        reprint_seq=0,
        reprint_line="Reading journal",
    )


def receipt_found(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, ReceiptFound)
    if event.seq == 0:
        if state.reprint_seq:  # stepping back past the oldest: stay on it
            return state.but(notice="No older receipt"), (Beep(BeepPattern.ERROR),)
        return state.but(reprint_line="No receipt yet"), (Beep(BeepPattern.ERROR),)
    return state.but(reprint_seq=event.seq, reprint_line=event.summary, notice=""), ()


@leads_to(Phase.REPRINT)
def reprint_older(state: TerminalState, event: Event) -> Result:
    if not state.reprint_seq:
        return state.but(notice="No receipt yet"), (Beep(BeepPattern.ERROR),)
    return enter(state, Phase.REPRINT, FindReceipt(state.reprint_seq), Beep(BeepPattern.CLICK))


def _reprint(merchant: bool) -> Handler:
    @leads_to(Phase.REPRINT)
    def handler(state: TerminalState, event: Event) -> Result:
        if not state.reprint_seq:
            return state.but(notice="No receipt yet"), (Beep(BeepPattern.ERROR),)
        copy = "Merchant copy" if merchant else "Customer copy"
        return enter(
            state,
            Phase.REPRINT,
            ReprintReceipt(state.reprint_seq, merchant=merchant),
            Beep(BeepPattern.CLICK),
            notice=f"{copy} sent",
        )

    return handler


ROWS: dict[Phase, dict[Trigger, Handler]] = {
    Phase.END_OF_DAY: confirming(close_day),
    # The journal commit is done within the step; the host's check is bounded by the shell.
    Phase.CLOSING_DAY: awaiting(Trigger.DAY_CLOSED, day_closed, closing_timed_out),
    Phase.REPRINT: {
        Trigger.DIGIT: _NOT_NOW,
        Trigger.OK: _reprint(merchant=False),
        Trigger.FN: _reprint(merchant=True),
        Trigger.CLEAR: reprint_older,
        Trigger.CANCEL: done,
        Trigger.CARD: _NO_CARD_WANTED,
        Trigger.CARD_UNREADABLE: ignore,
        Trigger.TIMEOUT: done,
        Trigger.RECEIPT_FOUND: receipt_found,
    },
}

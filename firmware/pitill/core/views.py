"""What each phase shows: the screen is a pure function of the state, never set by hand.

Because the screen is derived, a status change (link, backlog, reader) redraws whatever phase the
terminal is in, and a test can compare screens without driving the renderer.
"""

from __future__ import annotations

from pitill.core.responses import APPROVED, screen_text
from pitill.core.screens import Emphasis, Screen, StatusBar
from pitill.core.state import Phase, TerminalState
from pitill.core.txn import SaleOnRecord
from pitill.core.types import (
    PIN_MAX_DIGITS,
    PIN_MIN_DIGITS,
    LinkStatus,
    OfflineMode,
    PinPurpose,
    TxnKind,
    TxnStatus,
    format_amount,
)

CLOCK_WRONG_LINE = "CLOCK WRONG: set time"  # `pitill doctor` says what is wrong with it


def decline_reason(response_code: str) -> str:
    return screen_text(response_code)


def money(state: TerminalState, amount_minor: int) -> str:
    settings = state.settings
    return f"{settings.currency} {format_amount(amount_minor, settings.currency_exponent)}"


def balance_line(state: TerminalState) -> str:
    """ "Balance EUR 7.50" when the host told the card's balance with the answer, else ""."""
    balance = state.txn.balance_minor if state.txn else None
    return "" if balance is None else f"Balance {money(state, balance)}"


def status_bar(state: TerminalState) -> StatusBar:
    return StatusBar(link=state.link, reason=state.link_reason, pending=state.pending)


# Why card sales are offline, in the words of the status bar's reason (default: unreachable),
# so the body never says "unreachable" under a header that says the host answers.
OFFLINE_CAUSES = {
    "RETRY": "Host failing sales",
    "TLS": "Host not trusted",
    "PROTOCOL": "Host answers garbage",
}
CHECKING_LINK = "Checking host link..."
CLEAR_HINT = "CLEAR = back 1 digit"
REPORT_PAGE_LINES = 3
PIN_TITLES = {
    PinPurpose.UNLOCK: "PIN",
    PinPurpose.NEW: "NEW PIN",
    PinPurpose.CONFIRM: "PIN AGAIN",
}


def report_page_count(state: TerminalState) -> int:
    return max(1, -(-len(state.report_lines) // REPORT_PAGE_LINES))


def offline_budget_lines(state: TerminalState) -> tuple[str, ...]:
    """What card sales are still possible while the host is away (the remaining budget)."""
    cause = OFFLINE_CAUSES.get(state.link_reason, "Host unreachable")
    if state.mode is OfflineMode.REQUIRE_ONLINE:
        return (cause, "Online-only mode:", "cash only")
    limits = state.settings.limits
    sales_left = max(0, limits.max_count - state.offline_count)
    amount_left = max(0, limits.max_total_minor - state.offline_minor)
    forced = state.mode is OfflineMode.FORCE_OFFLINE and state.link is not LinkStatus.OFFLINE
    first = "Operator: offline" if forced else cause
    hours_left = (limits.max_age_s - state.oldest_age_s) / 3600 if state.offline_count else None
    time_left = f" {hours_left:.0f}h" if hours_left is not None else ""
    return (
        first,
        f"Card up to {money(state, limits.floor_limit_minor)}",
        f"Left {sales_left}x {money(state, amount_left)}{time_left}",
    )


def screen_for(state: TerminalState) -> Screen:
    title, lines, emphasis = _content(state)
    if not state.reader_connected and state.phase in (Phase.IDLE, Phase.AWAIT_CARD):
        lines = ("READER DISCONNECTED", *lines)
    lines = tuple(line for line in lines if line)[:3]
    if state.clock_wrong and state.phase in (Phase.BOOTING, Phase.IDLE):
        lines = (*lines[:2], CLOCK_WRONG_LINE)  # like a notice: takes the last line if need be
    if state.notice:  # the notice always shows, in place of the last line if need be
        lines = (*lines[:2], state.notice)
    return Screen(title=title, lines=lines, emphasis=emphasis, status=status_bar(state))


# What a void did, in the words of the VOIDED screen, by the sale's status before it.
VOID_OUTCOMES = {
    TxnStatus.APPROVED: "Reversal to host",
    TxnStatus.PENDING: "Not sent: cancelled",
    TxnStatus.FORWARDED: "Reversal to host",
    TxnStatus.COMPLETED: "Give the cash back",
}


def _void_content(
    state: TerminalState, sale: SaleOnRecord
) -> tuple[str, tuple[str, ...], Emphasis]:
    amount = f"{money(state, sale.amount_minor)} #{sale.seq}"
    if state.phase is Phase.VOID_CONFIRM:
        what = sale.masked_pan or "Cash sale"
        return "VOID?", (amount, what, "OK=void CANCEL=keep"), Emphasis.WARNING
    return "VOID", (amount, VOID_OUTCOMES[sale.status], "OK"), Emphasis.SUCCESS


STAFFED_PHASES = frozenset(
    {
        Phase.TOPUP_AMOUNT,
        Phase.TOPUP_CARD,
        Phase.BALANCE_CARD,
        Phase.STAFFED_AUTHORIZING,
        Phase.TOPPED_UP,
        Phase.BALANCE_SHOWN,
    }
)


REFUND_PHASES = frozenset(
    {
        Phase.REFUND_LOOKUP,
        Phase.REFUND_PICK,
        Phase.REFUND_AMOUNT,
        Phase.REFUND_CARD,
        Phase.REFUND_AUTHORIZING,
        Phase.REFUNDED,
        Phase.REFUND_DECLINED,
    }
)


def _staffed_content(state: TerminalState) -> tuple[str, tuple[str, ...], Emphasis]:
    """FN 7 top-up and FN 8 balance inquiry (core/staffed.py)."""
    phase = state.phase
    amount = money(state, state.amount_minor)
    pan = state.card.masked_pan if state.card else ""
    if phase is Phase.TOPUP_AMOUNT:
        return amount, ("TOP-UP with cash", "OK = card", CLEAR_HINT), Emphasis.NORMAL
    if phase is Phase.TOPUP_CARD:
        return "TAP OR SWIPE", (f"Top-up {amount}", "CANCEL = stop"), Emphasis.NORMAL
    if phase is Phase.BALANCE_CARD:
        return "BALANCE", ("Tap or swipe card", "CANCEL = stop"), Emphasis.NORMAL
    if phase is Phase.STAFFED_AUTHORIZING:
        topup = state.txn is not None and state.txn.kind is TxnKind.TOPUP
        return (
            "TOPPING UP" if topup else "ASKING HOST",
            (amount if topup else "", pan),
            (Emphasis.NORMAL),
        )
    if phase is Phase.TOPPED_UP:
        lines = (f"Cash in {amount}", balance_line(state), "Close the drawer")
        return "TOPPED UP", lines, Emphasis.SUCCESS
    balance = state.txn.balance_minor if state.txn else None
    if state.txn is not None and state.txn.status is TxnStatus.APPROVED and balance is not None:
        return "BALANCE", (money(state, balance), pan), Emphasis.SUCCESS
    return "NO BALANCE", (state.decline_reason or "Host gave none", pan), Emphasis.ERROR


def sale_line(state: TerminalState, sale: SaleOnRecord) -> str:
    """One sale of the refund list: #seq, amount, card's last 4 or CASH."""
    what = sale.masked_pan[-4:] if sale.masked_pan else "cash"
    amount = format_amount(sale.amount_minor, state.settings.currency_exponent)
    return f"#{sale.seq} {amount} {what}"


def _refund_content(state: TerminalState) -> tuple[str, tuple[str, ...], Emphasis]:
    phase, pick = state.phase, state.refund
    if phase is Phase.REFUND_LOOKUP or pick is None:
        return "REFUND", ("Reading journal", "or swipe the card"), Emphasis.NORMAL
    if phase is Phase.REFUND_PICK:
        # Two sales on screen, the cursor's first; the last line says how to move.
        shown = pick.choices[pick.index : pick.index + 2]
        lines = tuple(("> " if i == 0 else "  ") + sale_line(state, s) for i, s in enumerate(shown))
        title = f"REFUND {pick.index + 1}/{len(pick.choices)}"
        return title, (*lines, "2/8 OK=pick swipe"), Emphasis.NORMAL
    target = pick.target
    assert target is not None
    left = target.amount_minor - target.refunded_minor
    if phase is Phase.REFUND_AMOUNT:
        amount = money(state, state.amount_minor)
        return (
            amount,
            (f"Refund #{target.seq}", f"Max {money(state, left)}", "OK=all if 0"),
            (Emphasis.NORMAL),
        )
    amount = money(state, state.amount_minor)
    if phase is Phase.REFUND_CARD:
        return "SWIPE CARD", (f"Refund {amount}", f"Card {target.masked_pan[-4:]}"), Emphasis.NORMAL
    if phase is Phase.REFUND_AUTHORIZING:
        return "REFUNDING", (amount, "Please wait"), Emphasis.NORMAL
    if phase is Phase.REFUND_DECLINED:
        return "NOT REFUNDED", (state.decline_reason, amount), Emphasis.ERROR
    txn = state.txn
    if target.kind is TxnKind.CASH:
        how = "Give the cash back"
    elif txn is not None and txn.status is TxnStatus.PENDING:
        how = "OFFLINE - queued"
    else:
        how = f"Auth {txn.auth_code}" if txn is not None and txn.auth_code else "Approved"
    return "REFUND", (amount, f"Sale #{target.seq}", how), Emphasis.SUCCESS


def _content(state: TerminalState) -> tuple[str, tuple[str, ...], Emphasis]:
    phase = state.phase
    amount = money(state, state.amount_minor)
    pan = state.card.masked_pan if state.card else ""
    if phase in (Phase.BOOTING, Phase.IDLE):
        title = "STARTING" if phase is Phase.BOOTING else "READY"
        if state.age_alarm:
            hours = state.oldest_age_s / 3600
            return title, ("FORWARD SOON:", f"oldest sale {hours:.0f}h old"), Emphasis.WARNING
        if state.offline:
            return title, offline_budget_lines(state), Emphasis.WARNING
        if state.link is LinkStatus.UNKNOWN:  # until the monitor's first verdict
            return title, ("Key in an amount", CHECKING_LINK), Emphasis.NORMAL
        return title, ("Key in an amount",), Emphasis.NORMAL
    if phase is Phase.AMOUNT:
        return amount, ("OK = card", "FN = cash", CLEAR_HINT), Emphasis.NORMAL
    if phase is Phase.AWAIT_CARD:
        offline = "Offline approval" if state.offline else ""
        return "SWIPE CARD", (amount, offline, "FN = cash"), Emphasis.NORMAL
    if phase is Phase.AUTHORIZING:
        return "AUTHORIZING", (amount, pan), Emphasis.NORMAL
    if phase is Phase.APPROVED:
        auth = state.txn.auth_code if state.txn else ""
        note = screen_text((state.txn.response_code if state.txn else "") or APPROVED)
        second = pan if note == "APPROVED" else note  # e.g. 08: the cashier checks the ID
        # A closed-loop host tells the card's balance: the customer wants it more than the code.
        third = balance_line(state) or (f"Auth {auth}" if auth else "")
        return "APPROVED", (amount, second, third), Emphasis.SUCCESS
    if phase is Phase.OFFLINE_APPROVED:
        return "APPROVED", ("OFFLINE - queued", amount, pan), Emphasis.SUCCESS
    if phase is Phase.DECLINED:
        third = balance_line(state) or pan  # 51 from a closed-loop host: how much is left
        return "DECLINED", (state.decline_reason, amount, third), Emphasis.ERROR
    if phase is Phase.CASH_ONLY:
        return (
            "CASH ONLY",
            (f"Total {amount}", state.cash_reason, "OK=cash CANCEL=stop"),
            (Emphasis.WARNING),
        )
    if phase is Phase.TENDER:
        tendered = money(state, state.tendered_minor)
        return tendered, ("Cash tendered", f"Total {amount}", CLEAR_HINT), Emphasis.NORMAL
    if phase is Phase.CHANGE:
        txn = state.txn
        change = money(state, txn.change_minor if txn else 0)
        tendered = money(state, state.tendered_minor)
        return "CHANGE", (change, f"Tendered {tendered}", "Close the drawer"), Emphasis.NORMAL
    if phase is Phase.MENU:
        return (
            "MENU",
            (
                f"1 Mode: {state.mode.label}",
                "2 Report 3 Void 4 Refund",
                "5 End day 6 Print 7 Top 8 Bal",
            ),
            (Emphasis.NORMAL),
        )
    if phase is Phase.PIN_ENTRY:
        stars = "*" * len(state.pin_entry) or "_"  # the digits themselves are never drawn
        unlock = state.pin_purpose is PinPurpose.UNLOCK
        # FN 6 OK prints the last receipt again without a PIN (core/endofday.py).
        second = "6 OK: last receipt" if unlock else f"{PIN_MIN_DIGITS}-{PIN_MAX_DIGITS} digits"
        lines = (stars, second, "OK=go CANCEL=leave")
        return PIN_TITLES[state.pin_purpose], lines, Emphasis.NORMAL
    if phase in (Phase.VOID_CONFIRM, Phase.VOIDED) and state.void_target is not None:
        return _void_content(state, state.void_target)
    if phase is Phase.VOID_LOOKUP:
        return "VOID", ("Reading journal",), Emphasis.NORMAL
    if phase is Phase.VOIDING:
        return "VOIDING", ("Please wait",), Emphasis.NORMAL
    if phase is Phase.END_OF_DAY:
        return "END OF DAY?", ("Z report, new day", "OK=close CANCEL=no"), Emphasis.WARNING
    if phase is Phase.CLOSING_DAY:
        return "END OF DAY", ("Closing the day", "Please wait"), Emphasis.NORMAL
    if phase is Phase.REPRINT:
        title = f"REPRINT #{state.reprint_seq}" if state.reprint_seq else "REPRINT"
        return title, (state.reprint_line, "OK=copy FN=merchant", "CLEAR=older"), Emphasis.NORMAL
    if phase is Phase.PIN_CHECKING:
        return "CHECKING PIN", ("Please wait",), Emphasis.NORMAL
    if phase is Phase.REPORT:
        first = state.report_page * REPORT_PAGE_LINES
        page_lines = state.report_lines[first : first + REPORT_PAGE_LINES]
        pages = report_page_count(state)
        if pages == 1:
            return "REPORT", page_lines, Emphasis.NORMAL
        action = "next" if state.report_page + 1 < pages else "done"
        return f"{state.report_page + 1}/{pages} OK: {action}", page_lines, Emphasis.NORMAL
    if phase in STAFFED_PHASES:
        return _staffed_content(state)
    if phase in REFUND_PHASES:
        return _refund_content(state)
    if phase is Phase.STORAGE_FAULT and state.sale is None:
        return "STORAGE FAULT", ("Journal NOT writable", "call support"), Emphasis.ERROR
    if phase is Phase.STORAGE_FAULT:  # the drawer opened with this screen (on_record_failed)
        return (
            "STORAGE FAULT",
            ("Sale NOT saved", "Take cash, write it", "down; call support"),
            (Emphasis.ERROR),
        )
    raise AssertionError(f"no screen for phase {phase}")

"""The transition table of the terminal and `step`, the only way its state changes.

Rules of the table (read these before changing it):

1. `step(state, event) -> (state, effects)` is pure: no I/O, no clock, no randomness. Time arrives
   in events (`now_s`); timeouts are StartTimer effects answered by TimerFired events.
2. TABLE[phase][trigger] names the handler for every pair that may happen. A pair that is not in
   the table raises TransitionError: it is a bug in the shell, never silently ignored. Inputs a
   cashier can cause at any time (keys, swipes) therefore have a row in every phase, even if the
   row only says "not now" (`refuse`).
3. Status events (link, backlog, reader) and storage faults are the same in every phase and come
   from COMMON_ROWS, merged into each phase's rows.
4. A TimerFired whose token is not the state's current token belongs to a phase already left and is
   dropped before the table is consulted.
5. Handlers never emit Show: the screen is derived from the state (views.screen_for) and `step`
   appends Show after the handler's effects whenever it changed. So a Record that makes a sale
   durable always comes before the screen or beep that tells the customer it succeeded.
6. Money is integer minor units; keyed digits shift in from the right (1 2 5 0 -> 12.50).
7. The FN menu (mode, report, and every supervisor power) opens only through PIN_ENTRY ->
   PIN_CHECKING -> MENU. The core never checks a PIN: it asks the shell (VerifyPin) and obeys the
   answer (PinChecked), including how long the menu stays locked; selling and cash never need it.
8. A void (FN 3) cancels only the newest sale, within settings.void_window_s of running time, and
   only as VOIDS allows for its kind, mode and status; the shell journals it in one commit
   (VoidSale) and answers VoidDone before the drawer opens or the screen says VOID.
9. Entering a result phase with a journaled transaction (RECEIPT_PHASES) appends PrintReceipt
   after everything else, in `step`: the receipt follows the Record, and a printer that fails
   (ReceiptPrinted not ok) only puts a notice on screen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from pitill.card.model import Card, CardTier
from pitill.card.sun import counter_is_fresh
from pitill.core.effects import (
    Authorize,
    Beep,
    Effect,
    FindLastSale,
    FindRecentSales,
    OpenDrawer,
    PrintReceipt,
    Record,
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
from pitill.core.responses import OFFLINE_APPROVED, OFFLINE_DECLINED, ResponseClass, sale_class
from pitill.core.state import Phase, RefundPick, Sale, TerminalState
from pitill.core.txn import SaleOnRecord, Txn
from pitill.core.types import (
    PIN_MAX_DIGITS,
    PIN_MIN_DIGITS,
    BeepPattern,
    Key,
    LinkStatus,
    OfflineMode,
    PinPurpose,
    TxnKind,
    TxnMode,
    TxnStatus,
)
from pitill.core.views import REPORT_PAGE_LINES, decline_reason, money, screen_for
from pitill.errors import TransitionError

Effects = tuple[Effect, ...]
Result = tuple[TerminalState, Effects]
Handler = Callable[[TerminalState, Event], Result]


class Trigger(StrEnum):
    """The event kinds the table is keyed on; keys are split into their roles."""

    BOOTED = "booted"
    DIGIT = "digit"
    OK = "ok"
    CLEAR = "clear"
    CANCEL = "cancel"
    FN = "fn"
    CARD = "card"
    CARD_UNREADABLE = "card_unreadable"
    AUTH_RESULT = "auth_result"
    TIMEOUT = "timeout"
    LINK = "link"
    SEQ_TAKEN = "seq_taken"
    BACKLOG = "backlog"
    CLOCK = "clock"
    READER = "reader"
    RECORD_FAILED = "record_failed"
    REPORT_READY = "report_ready"
    PIN_CHECKED = "pin_checked"
    PIN_SAVED = "pin_saved"
    LAST_SALE_FOUND = "last_sale_found"
    VOID_DONE = "void_done"
    RECEIPT_PRINTED = "receipt_printed"
    DAY_CLOSED = "day_closed"
    RECEIPT_FOUND = "receipt_found"
    RECENT_SALES_FOUND = "recent_sales_found"


_KEY_TRIGGERS = {Key.OK: Trigger.OK, Key.CLEAR: Trigger.CLEAR, Key.CANCEL: Trigger.CANCEL}
_KEY_TRIGGERS[Key.FN] = Trigger.FN
_EVENT_TRIGGERS: dict[type, Trigger] = {
    Booted: Trigger.BOOTED,
    CardSwiped: Trigger.CARD,
    CardUnreadable: Trigger.CARD_UNREADABLE,
    AuthResult: Trigger.AUTH_RESULT,
    TimerFired: Trigger.TIMEOUT,
    LinkChanged: Trigger.LINK,
    SeqTaken: Trigger.SEQ_TAKEN,
    BacklogChanged: Trigger.BACKLOG,
    ClockChecked: Trigger.CLOCK,
    ReaderChanged: Trigger.READER,
    RecordFailed: Trigger.RECORD_FAILED,
    ReportReady: Trigger.REPORT_READY,
    PinChecked: Trigger.PIN_CHECKED,
    PinSaved: Trigger.PIN_SAVED,
    LastSaleFound: Trigger.LAST_SALE_FOUND,
    VoidDone: Trigger.VOID_DONE,
    ReceiptPrinted: Trigger.RECEIPT_PRINTED,
    DayClosed: Trigger.DAY_CLOSED,
    ReceiptFound: Trigger.RECEIPT_FOUND,
    RecentSalesFound: Trigger.RECENT_SALES_FOUND,
}


def trigger_of(event: Event) -> Trigger:
    if isinstance(event, KeyPressed):
        return _KEY_TRIGGERS.get(event.key, Trigger.DIGIT)
    return _EVENT_TRIGGERS[type(event)]


def initial_state(state: TerminalState | None = None) -> TerminalState:
    return state if state is not None else TerminalState()


def step(state: TerminalState, event: Event) -> Result:
    """Apply one event: the new state and the effects the shell must execute, in order."""
    if isinstance(event, TimerFired) and event.token != state.timer_token:
        return state, ()
    trigger = trigger_of(event)
    handler = TABLE[state.phase].get(trigger)
    if handler is None:
        raise TransitionError(f"event {trigger.value} is not allowed in phase {state.phase.value}")
    new_state, effects = handler(state, event)
    before = screen_for(state)
    after = screen_for(new_state)
    if after != before or trigger is Trigger.BOOTED:
        effects = (*effects, Show(after))
    receipt_seq = receipt_due(state, new_state)
    if receipt_seq:
        effects = (*effects, PrintReceipt(receipt_seq))
    return new_state, effects


RECEIPT_PHASES = frozenset(
    {
        Phase.APPROVED,
        Phase.OFFLINE_APPROVED,
        Phase.DECLINED,
        Phase.CHANGE,
        Phase.VOIDED,
        Phase.TOPPED_UP,
        Phase.REFUNDED,
        Phase.REFUND_DECLINED,
    }
)


def receipt_due(before: TerminalState, after: TerminalState) -> int:
    """The seq whose receipt is due now that `after` was entered, or 0 (rule 9)."""
    if not after.settings.print_receipts or after.phase is before.phase:
        return 0
    if after.phase is Phase.VOIDED:
        return after.void_seq
    if after.phase in RECEIPT_PHASES and after.txn is not None:
        return after.txn.seq  # a card refused by the local checks has no row: no receipt
    return 0


# --- declared targets: the state chart (pitill diagram) and the property tests read these --------

STAY = "(stays)"


def leads_to(*phases: Phase) -> Callable[[Handler], Handler]:
    """Declare the phases a handler may move to; tests check every observed move against it."""

    def mark(handler: Handler) -> Handler:
        handler.leads_to = frozenset(phases)  # type: ignore[attr-defined]
        return handler

    return mark


def targets(handler: Handler) -> frozenset[Phase]:
    """Where a handler may lead; an unmarked handler stays in the phase it was called in."""
    found: frozenset[Phase] = getattr(handler, "leads_to", frozenset())
    return found


# --- helpers -------------------------------------------------------------------------------------

_PHASE_TIMEOUT_S: dict[Phase, Callable[[TerminalState], float]] = {
    Phase.AMOUNT: lambda s: s.settings.timeouts.amount_entry_s,
    Phase.AWAIT_CARD: lambda s: s.settings.timeouts.await_card_s,
    Phase.AUTHORIZING: lambda s: s.settings.timeouts.authorizing_s,
    Phase.APPROVED: lambda s: s.settings.timeouts.result_s,
    Phase.OFFLINE_APPROVED: lambda s: s.settings.timeouts.result_s,
    Phase.DECLINED: lambda s: s.settings.timeouts.result_s,
    Phase.CASH_ONLY: lambda s: s.settings.timeouts.cash_only_s,
    Phase.TENDER: lambda s: s.settings.timeouts.tender_s,
    Phase.CHANGE: lambda s: s.settings.timeouts.change_s,
    Phase.STORAGE_FAULT: lambda s: s.settings.timeouts.storage_fault_s,
    Phase.MENU: lambda s: s.settings.timeouts.menu_s,
    Phase.REPORT: lambda s: s.settings.timeouts.menu_s,
    Phase.PIN_ENTRY: lambda s: s.settings.timeouts.menu_s,
    Phase.PIN_CHECKING: lambda s: s.settings.timeouts.menu_s,
    Phase.VOID_LOOKUP: lambda s: s.settings.timeouts.menu_s,
    Phase.VOID_CONFIRM: lambda s: s.settings.timeouts.menu_s,
    Phase.VOIDING: lambda s: s.settings.timeouts.menu_s,
    Phase.VOIDED: lambda s: s.settings.timeouts.result_s,
    Phase.TOPUP_AMOUNT: lambda s: s.settings.timeouts.amount_entry_s,
    Phase.TOPUP_CARD: lambda s: s.settings.timeouts.await_card_s,
    Phase.BALANCE_CARD: lambda s: s.settings.timeouts.await_card_s,
    Phase.STAFFED_AUTHORIZING: lambda s: s.settings.timeouts.authorizing_s,
    Phase.TOPPED_UP: lambda s: s.settings.timeouts.change_s,  # the cash goes in meanwhile
    Phase.BALANCE_SHOWN: lambda s: s.settings.timeouts.result_s,
    Phase.END_OF_DAY: lambda s: s.settings.timeouts.menu_s,
    Phase.CLOSING_DAY: lambda s: s.settings.timeouts.menu_s,
    Phase.REPRINT: lambda s: s.settings.timeouts.menu_s,
    Phase.REFUND_LOOKUP: lambda s: s.settings.timeouts.menu_s,
    Phase.REFUND_PICK: lambda s: s.settings.timeouts.menu_s,
    Phase.REFUND_AMOUNT: lambda s: s.settings.timeouts.amount_entry_s,
    Phase.REFUND_CARD: lambda s: s.settings.timeouts.await_card_s,
    Phase.REFUND_AUTHORIZING: lambda s: s.settings.timeouts.authorizing_s,
    Phase.REFUNDED: lambda s: s.settings.timeouts.result_s,
    Phase.REFUND_DECLINED: lambda s: s.settings.timeouts.result_s,
}


def enter(state: TerminalState, phase: Phase, *effects: Effect, **changes: object) -> Result:
    """Move to `phase` (clearing the notice) and start its timeout, after `effects`."""
    token = state.timer_token + 1
    changes.setdefault("notice", "")
    new_state = state.but(phase=phase, timer_token=token, **changes)
    timeout = _PHASE_TIMEOUT_S.get(phase)
    if timeout is None:
        return new_state, effects
    return new_state, (*effects, StartTimer(TimerName.PHASE, timeout(new_state), token))


def to_idle(state: TerminalState, notice: str = "") -> Result:
    """Back to idle; the sale's record is dropped with everything in it (and any PIN keyed)."""
    return enter(
        state,
        Phase.IDLE,
        notice=notice,
        sale=None,
        pin_entry="",
        pin_first="",
        void_target=None,
        refund=None,
    )


def refuse(notice: str) -> Handler:
    """A row for input that is not wanted now: a short error beep and a word on screen."""

    def handler(state: TerminalState, event: Event) -> Result:
        return state.but(notice=notice), (Beep(BeepPattern.ERROR),)

    return handler


def ignore(state: TerminalState, event: Event) -> Result:
    return state, ()


def digit_of(event: Event) -> int:
    assert isinstance(event, KeyPressed)
    digit = event.key.digit
    assert digit is not None
    return digit


def shift_in(value_minor: int, digit: int) -> int:
    return value_minor * 10 + digit


def amount_keys(
    phase: Phase, field: str, too_much: Callable[[TerminalState, int], str | None]
) -> tuple[Handler, Handler]:
    """The DIGIT and CLEAR rows of a phase that keys an amount into `field` (rule 6): a digit
    shifts in from the right unless `too_much` says why not (shown, error beep); CLEAR takes
    the last one back. The sale's amount, the cash tendered, a top-up and a refund key so."""

    @leads_to(phase)
    def key_digit(state: TerminalState, event: Event) -> Result:
        value_minor = shift_in(getattr(state, field), digit_of(event))
        refusal = too_much(state, value_minor)
        if refusal is not None:
            return state.but(notice=refusal), (Beep(BeepPattern.ERROR),)
        return enter(state, phase, Beep(BeepPattern.CLICK), **{field: value_minor})

    @leads_to(phase)
    def key_clear(state: TerminalState, event: Event) -> Result:
        return enter(state, phase, Beep(BeepPattern.CLICK), **{field: getattr(state, field) // 10})

    return key_digit, key_clear


def over_max_amount(state: TerminalState, amount_minor: int) -> str | None:
    """A sale's or a top-up's amount past the configured maximum (as the screen says it)."""
    if amount_minor > state.settings.max_amount_minor:
        return f"Max {money(state, state.settings.max_amount_minor)}"
    return None


# --- status rows, common to every phase --------------------------------------------------------


def on_link(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, LinkChanged)
    reason = "" if event.status is LinkStatus.ONLINE else event.reason
    new_state = state.but(link=event.status, link_reason=reason)
    effects: list[Effect] = []
    if leds(new_state) != leds(state) or state.phase is Phase.BOOTING:
        green, red = leds(new_state)
        effects.append(SetLeds(green=green, red=red))
    if event.status is LinkStatus.OFFLINE and state.link is not LinkStatus.OFFLINE:
        effects.append(Beep(BeepPattern.ALERT))
    return new_state, tuple(effects)


def on_seq_taken(state: TerminalState, event: Event) -> Result:
    """An echo took a seq: the next transaction's is past it."""
    assert isinstance(event, SeqTaken)
    return state.but(next_seq=max(state.next_seq, event.seq + 1)), ()


def leds(state: TerminalState) -> tuple[bool, bool]:
    """(green, red): green while the host answers, red while it does not."""
    online = state.link in (LinkStatus.ONLINE, LinkStatus.DEGRADED)
    return online, state.link is LinkStatus.OFFLINE


def on_backlog(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, BacklogChanged)
    limits = state.settings.limits
    alarm = event.offline_count > 0 and event.oldest_age_s >= limits.age_alarm_s
    new_state = state.but(
        pending=event.pending,
        offline_count=event.offline_count,
        offline_minor=event.offline_minor,
        oldest_age_s=event.oldest_age_s,
        age_alarm=alarm,
        refund_offline_minor=event.refund_offline_minor,
    )
    return new_state, (Beep(BeepPattern.ALERT),) if alarm and not state.age_alarm else ()


def on_clock(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, ClockChecked)
    return state.but(clock_wrong=event.wrong), ()


def on_reader(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, ReaderChanged)
    return state.but(reader_connected=event.connected, reader_detail=event.detail), ()


@leads_to(Phase.STORAGE_FAULT)
def on_record_failed(state: TerminalState, event: Event) -> Result:
    """The journal refused a write: nothing after that Record ran, so nothing was promised.
    During a sale the screen tells the cashier to take cash, so the drawer opens for it."""
    if state.sale is None:
        return enter(state, Phase.STORAGE_FAULT, Beep(BeepPattern.ERROR))
    return enter(state, Phase.STORAGE_FAULT, Beep(BeepPattern.ERROR), OpenDrawer(), card=None)


def pin_answer_late(state: TerminalState, event: Event) -> Result:
    """A PIN verdict after the cashier left the PIN screen: only the lock it reports counts."""
    assert isinstance(event, PinChecked)
    if event.locked_for_s > 0:
        locked = state.but(pin_locked_until_s=event.now_s + event.locked_for_s)
        return locked, (Beep(BeepPattern.ALERT),)
    return state, ()


def pin_saved_late(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, PinSaved)
    return state.but(pin_set=state.pin_set or event.saved), ()


def receipt_printed(state: TerminalState, event: Event) -> Result:
    """The sale stands either way (it is journaled); the cashier hears that there is no paper."""
    assert isinstance(event, ReceiptPrinted)
    if event.ok:
        return state, ()
    return state.but(notice="Receipt NOT printed"), (Beep(BeepPattern.ERROR),)


COMMON_ROWS: dict[Trigger, Handler] = {
    Trigger.LINK: on_link,
    Trigger.SEQ_TAKEN: on_seq_taken,
    Trigger.BACKLOG: on_backlog,
    Trigger.CLOCK: on_clock,
    Trigger.READER: on_reader,
    Trigger.RECORD_FAILED: on_record_failed,
    Trigger.AUTH_RESULT: ignore,  # a late answer for a sale already resolved (it was reversed)
    Trigger.REPORT_READY: ignore,  # the cashier left the report before it was ready
    Trigger.PIN_CHECKED: pin_answer_late,  # the cashier left the PIN screen meanwhile
    Trigger.PIN_SAVED: pin_saved_late,
    Trigger.LAST_SALE_FOUND: ignore,  # the supervisor left the void before the journal answered
    Trigger.VOID_DONE: ignore,  # cannot come late: VOIDING waits for it (a bug would show here)
    Trigger.RECEIPT_PRINTED: receipt_printed,
    Trigger.DAY_CLOSED: ignore,  # CLOSING_DAY waits for it (a late one: the day is closed)
    Trigger.RECEIPT_FOUND: ignore,  # the supervisor left FN 6 before the journal answered
    Trigger.RECENT_SALES_FOUND: ignore,  # the supervisor left the refund before the answer
}


# --- booting and idle ----------------------------------------------------------------------------


@leads_to(Phase.IDLE)
def on_booted(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, Booted)
    mode = event.mode or state.settings.mode  # a mode chosen from the menu outlives a restart
    state = state.but(
        next_seq=event.next_seq,
        pending=event.pending,
        mode=mode,
        pin_set=event.pin_set,
        pin_locked_until_s=event.now_s + event.pin_locked_for_s if event.pin_locked_for_s else 0.0,
    )
    new_state, effects = to_idle(state, notice=event.notice)
    green, red = leds(new_state)
    return new_state, (SetLeds(green=green, red=red), *effects)


@leads_to(Phase.AMOUNT)
def start_amount(state: TerminalState, event: Event) -> Result:
    """The first digit of an amount begins a new sale (a fresh record: nothing carried over)."""
    sale = Sale(amount_minor=digit_of(event))
    return enter(state, Phase.AMOUNT, Beep(BeepPattern.CLICK), sale=sale)


# --- amount entry --------------------------------------------------------------------------------


amount_digit, amount_clear = amount_keys(Phase.AMOUNT, "amount_minor", over_max_amount)


@leads_to(Phase.AWAIT_CARD, Phase.CASH_ONLY)
def amount_ok(state: TerminalState, event: Event) -> Result:
    if state.amount_minor == 0:
        return state.but(notice="Key in an amount"), (Beep(BeepPattern.ERROR),)
    refusal = offline_refusal(state, None) if state.offline else None
    if refusal is not None:
        return cash_only(state, refusal)
    return enter(state, Phase.AWAIT_CARD, Beep(BeepPattern.CLICK))


def offline_refusal(state: TerminalState, card: Card | None) -> str | None:
    """Why this sale may not be approved offline (the limit, as the screen says it), or None."""
    limits = state.settings.limits
    if state.mode is OfflineMode.REQUIRE_ONLINE:
        return "Mode: online only"
    if state.amount_minor > limits.floor_limit_minor:
        return f"Offline: over {money(state, limits.floor_limit_minor)}"
    if state.offline_count >= limits.max_count:
        return f"Limit: {limits.max_count} offline sales"
    if state.offline_minor + state.amount_minor > limits.max_total_minor:
        return f"Limit: {money(state, limits.max_total_minor)} offline"
    if state.offline_count and state.oldest_age_s >= limits.max_age_s:
        return f"Limit: oldest sale {limits.max_age_s / 3600:.0f}h"
    if card is not None and state.card_offline_sales >= limits.max_per_card:
        return f"Limit: card {limits.max_per_card}x offline"
    if card is not None and card.tier is CardTier.UID_ONLY:
        if limits.uid_only_floor_limit_minor == 0:
            return "UID card: online only"
        if state.amount_minor > limits.uid_only_floor_limit_minor:
            return f"UID card: over {money(state, limits.uid_only_floor_limit_minor)}"
    return None


def cash_only(state: TerminalState, reason: str, *effects: Effect) -> Result:
    return enter(state, Phase.CASH_ONLY, *effects, Beep(BeepPattern.ALERT), cash_reason=reason)


@leads_to(Phase.IDLE)
def cancel(state: TerminalState, event: Event) -> Result:
    new_state, effects = to_idle(state, notice="Cancelled")
    return new_state, (Beep(BeepPattern.CLICK), *effects)


@leads_to(Phase.IDLE)
def timed_out(state: TerminalState, event: Event) -> Result:
    return to_idle(state, notice="Timed out")


# --- card and authorization ----------------------------------------------------------------------


def card_problem(event: CardSwiped) -> str | None:
    """What the terminal itself finds wrong with a card (as the screen says it), or None."""
    problem = event.card.problem(event.today_yymm)
    if (
        problem is None
        and event.card.tier is CardTier.SUN
        and not counter_is_fresh(event.last_sun_counter, event.card.sun_counter)
    ):
        problem = "CARD REPLAYED"  # a SUN counter seen before: a clone or a copied message
    return problem


@leads_to(Phase.DECLINED, Phase.AUTHORIZING, Phase.OFFLINE_APPROVED, Phase.CASH_ONLY)
def card_swiped(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, CardSwiped)
    problem = card_problem(event)
    if problem is not None:
        return declined_here(state, event.card, problem)
    # The journal's count and hotlist for this card decide offline, now or after a failed 0200.
    state = state.but(card_offline_sales=event.offline_sales_of_card, hotlisted=event.hotlisted)
    if state.can_go_online:
        txn = new_txn(state, TxnKind.CARD, TxnMode.ONLINE, TxnStatus.AUTHORIZING, card=event.card)
        return journal_new(state, Phase.AUTHORIZING, txn, Authorize(txn), card=event.card)
    return decide_offline(state.but(card=event.card))


def declined_here(state: TerminalState, card: Card, problem: str) -> Result:
    """A card that fails the terminal's own checks never reaches the host: declined on screen,
    no money moved, nothing journaled (so no receipt)."""
    return enter(
        state,
        Phase.DECLINED,
        Beep(BeepPattern.DECLINE),
        decline_reason=problem,
        card=card,
        txn=None,
    )


def journal_new(
    state: TerminalState,
    phase: Phase,
    txn: Txn,
    *after: Effect,
    before: Effects = (),
    **changes: object,
) -> Result:
    """Enter `phase` with `txn`, a new row: it took state.next_seq, which moves past it. Its
    Record comes after `before` (an earlier row's end) and ahead of `after` (its 0200, the
    beep, the drawer): neither the host nor the customer hears of a row not yet durable."""
    next_seq = state.next_seq + 1
    return enter(state, phase, *before, Record(txn), *after, txn=txn, next_seq=next_seq, **changes)


def new_txn(
    state: TerminalState, kind: TxnKind, mode: TxnMode, status: TxnStatus, **fields: Any
) -> Txn:
    """The sale in progress as a transaction with the next sequence number."""
    return Txn(
        seq=state.next_seq,
        kind=kind,
        mode=mode,
        amount_minor=state.amount_minor,
        currency=state.settings.currency,
        status=status,
        **fields,
    )


def decided_here(
    state: TerminalState, status: TxnStatus, response_code: str, reverses_seq: int
) -> Txn:
    """The card sale as the terminal decided it without the host, under its own code (Y3, Z3);
    reverses_seq names the timed-out 0200 it follows, if any."""
    assert state.card is not None
    return new_txn(
        state,
        TxnKind.CARD,
        TxnMode.OFFLINE,
        status,
        card=state.card,
        response_code=response_code,
        reverses_seq=reverses_seq,
    )


def decide_offline(state: TerminalState, *before: Effect, reverses_seq: int = 0) -> Result:
    """Approve offline within the limits (journaled before it is shown), else cash only; a
    card on the program's hotlist is declined, journaled as the terminal's own decline (Z3)."""
    if state.hotlisted:
        return blocked(state, *before, reverses_seq=reverses_seq)
    refusal = offline_refusal(state, state.card)
    if refusal is not None:
        return cash_only(state, refusal, *before)
    txn = decided_here(state, TxnStatus.PENDING, OFFLINE_APPROVED, reverses_seq)
    return journal_new(
        state,
        Phase.OFFLINE_APPROVED,
        txn,
        Beep(BeepPattern.APPROVE),
        before=before,
        offline_count=state.offline_count + 1,
        offline_minor=state.offline_minor + state.amount_minor,
        card_offline_sales=state.card_offline_sales + 1,
    )


CARD_BLOCKED = "CARD BLOCKED"


def blocked(state: TerminalState, *before: Effect, reverses_seq: int = 0) -> Result:
    """A hotlisted card while the host cannot decide: declined here, and journaled (a decline
    the shop may be asked about), never forwarded."""
    txn = decided_here(state, TxnStatus.DECLINED, OFFLINE_DECLINED, reverses_seq)
    return journal_new(
        state,
        Phase.DECLINED,
        txn,
        Beep(BeepPattern.DECLINE),
        before=before,
        decline_reason=CARD_BLOCKED,
    )


# --- the host's answer to an 0200, for every kind (sale, refund, top-up, balance inquiry) ---------


class DecideOffline(Protocol):
    """Decide without the host: journaled first (after `before`), or refused."""

    def __call__(self, state: TerminalState, *before: Effect, reverses_seq: int = 0) -> Result: ...


@dataclass(frozen=True)
class OfflineRule:
    """A kind the terminal may decide without the host, within the kind's own limits."""

    decide: DecideOffline
    refuses: Callable[[TerminalState], bool]  # decide() would end with no row of its own


@dataclass(frozen=True)
class HostOnly:
    """A kind never decided without the host: what the screen says instead."""

    unreachable: str  # the 0200 never went
    no_answer: str  # it went and no answer came


@dataclass(frozen=True)
class AnswerRules:
    """One kind's differences in the answer to its 0200 (`answered`, `unanswered`), as data."""

    approved_phase: Phase
    declined_phase: Phase
    without_host: OfflineRule | HostOnly
    approved_effects: tuple[Effect, ...] = ()  # after the Record, before the beep (the drawer)
    keeps_balance: bool = True  # the answer's balance (field 54) is journaled, so shown
    moves_money: bool = True  # unanswered, it is reversed; else closed as the terminal's decline


def answered(state: TerminalState, event: AuthResult, rules: AnswerRules) -> Result:
    """The host's answer to the 0200 in flight (state.txn), journaled before it is shown.
    A decline of the RETRY class ("not now") settles this STAN; a kind decided offline then
    stands in offline within its limits, any other kind is declined like a final decline."""
    txn = state.txn
    if txn is None or event.seq != txn.seq:
        return state, ()  # an answer for an earlier one, already resolved
    balance = event.balance_minor if rules.keeps_balance else None
    if event.outcome is AuthOutcome.APPROVED:
        done = txn.with_status(
            TxnStatus.APPROVED,
            response_code=event.response_code,
            auth_code=event.auth_code,
            balance_minor=balance,
        )
        approve = (Record(done), *rules.approved_effects, Beep(BeepPattern.APPROVE))
        return enter(state, rules.approved_phase, *approve, txn=done)
    if event.outcome is AuthOutcome.DECLINED:
        done = txn.with_status(
            TxnStatus.DECLINED, response_code=event.response_code, balance_minor=balance
        )
        offline = rules.without_host
        not_now = sale_class(event.response_code) is ResponseClass.RETRY
        if not_now and isinstance(offline, OfflineRule):  # this STAN is settled: stands in offline
            return offline.decide(state.but(txn=done), Record(done))
        return _declined(state, done, rules, decline_reason(event.response_code))
    if event.outcome is AuthOutcome.UNREACHABLE:
        return _never_sent(state, txn, rules)
    return unanswered(state, txn, rules)


def _never_sent(state: TerminalState, txn: Txn, rules: AnswerRules) -> Result:
    """The 0200 was never sent: the host knows nothing of it. Decided offline, its row keeps
    the seq (the next one stays past any an echo took meanwhile: SeqTaken); otherwise the row
    ends as the terminal's decline (Z3)."""
    offline = rules.without_host
    if isinstance(offline, OfflineRule) and not offline.refuses(state):
        decided, effects = offline.decide(state.but(next_seq=txn.seq))
        return decided.but(next_seq=max(decided.next_seq, state.next_seq)), effects
    undone = txn.with_status(TxnStatus.DECLINED, response_code=OFFLINE_DECLINED)
    if isinstance(offline, OfflineRule):
        return offline.decide(state.but(txn=undone), Record(undone))
    return _declined(state, undone, rules, offline.unreachable)


def unanswered(state: TerminalState, txn: Txn, rules: AnswerRules) -> Result:
    """Sent, no answer: the outcome is unknown. If it moves money a reversal is queued first
    (REVERSAL_PENDING); then it is decided offline, or declined by the terminal."""
    if rules.moves_money:
        unknown = txn.with_status(TxnStatus.REVERSAL_PENDING)
    else:
        unknown = txn.with_status(TxnStatus.DECLINED, response_code=OFFLINE_DECLINED)
    offline = rules.without_host
    if isinstance(offline, OfflineRule):
        reverses_seq = txn.seq if rules.moves_money else 0
        return offline.decide(state.but(txn=unknown), Record(unknown), reverses_seq=reverses_seq)
    return _declined(state, unknown, rules, offline.no_answer)


def _declined(state: TerminalState, done: Txn, rules: AnswerRules, reason: str) -> Result:
    return enter(
        state,
        rules.declined_phase,
        Record(done),
        Beep(BeepPattern.DECLINE),
        txn=done,
        decline_reason=reason,
    )


def _sale_refused_offline(state: TerminalState) -> bool:
    """A sale decided offline takes a row unless it goes to cash only (a hotlisted card is
    journaled as the terminal's decline)."""
    return offline_refusal(state, state.card) is not None and not state.hotlisted


SALE_ANSWERS = AnswerRules(
    approved_phase=Phase.APPROVED,
    declined_phase=Phase.DECLINED,
    without_host=OfflineRule(decide=decide_offline, refuses=_sale_refused_offline),
)


@leads_to(Phase.APPROVED, Phase.DECLINED, Phase.OFFLINE_APPROVED, Phase.CASH_ONLY)
def auth_result(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, AuthResult)
    return answered(state, event, SALE_ANSWERS)


@leads_to(Phase.OFFLINE_APPROVED, Phase.CASH_ONLY, Phase.DECLINED)
def authorizing_timer(state: TerminalState, event: Event) -> Result:
    assert state.txn is not None
    return unanswered(state, state.txn, SALE_ANSWERS)


# --- cash ----------------------------------------------------------------------------------------


@leads_to(Phase.TENDER)
def pay_cash(state: TerminalState, event: Event) -> Result:
    """FN while the amount or the card is wanted: the customer pays cash instead."""
    if state.amount_minor == 0:
        return state.but(notice="Key in an amount"), (Beep(BeepPattern.ERROR),)
    return enter(state, Phase.TENDER, Beep(BeepPattern.CLICK), tendered_minor=0, card=None)


@leads_to(Phase.TENDER)
def accept_cash(state: TerminalState, event: Event) -> Result:
    return enter(state, Phase.TENDER, Beep(BeepPattern.CLICK), tendered_minor=0)


def _over_max_tender(state: TerminalState, tendered_minor: int) -> str | None:
    return "Amount too large" if tendered_minor > state.settings.max_tender_minor else None


tender_digit, tender_clear = amount_keys(Phase.TENDER, "tendered_minor", _over_max_tender)


@leads_to(Phase.CHANGE)
def tender_ok(state: TerminalState, event: Event) -> Result:
    # OK with nothing keyed means the customer paid the exact amount.
    tendered = state.tendered_minor or state.amount_minor
    if tendered < state.amount_minor:
        return state.but(notice="Less than total"), (Beep(BeepPattern.ERROR),)
    mode = TxnMode.OFFLINE if state.link is LinkStatus.OFFLINE else TxnMode.ONLINE
    sale = new_txn(
        state,
        TxnKind.CASH,
        mode,
        TxnStatus.COMPLETED,
        tendered_minor=tendered,
        change_minor=tendered - state.amount_minor,
    )
    paid = (OpenDrawer(), Beep(BeepPattern.APPROVE))
    return journal_new(state, Phase.CHANGE, sale, *paid, tendered_minor=tendered)


# --- FN menu: offline mode and the reconciliation report ------------------------------------------

_MODES = tuple(OfflineMode)


@leads_to(Phase.PIN_ENTRY)
def open_menu(state: TerminalState, event: Event) -> Result:
    """FN in idle: the supervisor PIN first (a new one while none is stored)."""
    assert isinstance(event, KeyPressed)
    locked_s = state.pin_locked_until_s - event.now_s
    if locked_s > 0:
        return state.but(notice=lock_notice(locked_s)), (Beep(BeepPattern.ERROR),)
    purpose = PinPurpose.UNLOCK if state.pin_set else PinPurpose.NEW
    return enter(
        state,
        Phase.PIN_ENTRY,
        Beep(BeepPattern.CLICK),
        pin_purpose=purpose,
        pin_entry="",
        pin_first="",
    )


def lock_notice(locked_s: float) -> str:
    minutes = -(-int(locked_s) // 60)  # rounded up: never "0 min" while still locked
    return f"Menu locked {minutes} min"


# --- the supervisor PIN --------------------------------------------------------------------------


@leads_to(Phase.PIN_ENTRY)
def pin_digit(state: TerminalState, event: Event) -> Result:
    if len(state.pin_entry) >= PIN_MAX_DIGITS:
        return state.but(notice=f"At most {PIN_MAX_DIGITS} digits"), (Beep(BeepPattern.ERROR),)
    entry = state.pin_entry + str(digit_of(event))
    return enter(state, Phase.PIN_ENTRY, Beep(BeepPattern.CLICK), pin_entry=entry)


@leads_to(Phase.PIN_ENTRY)
def pin_clear(state: TerminalState, event: Event) -> Result:
    return enter(state, Phase.PIN_ENTRY, Beep(BeepPattern.CLICK), pin_entry=state.pin_entry[:-1])


@leads_to(Phase.PIN_ENTRY, Phase.PIN_CHECKING, Phase.IDLE)
def pin_ok(state: TerminalState, event: Event) -> Result:
    entry = state.pin_entry
    if entry == endofday.REPRINT_LAST_KEYS:  # FN 6 OK: the last receipt, no PIN (endofday.py)
        return endofday.reprint_last(state)
    if len(entry) < PIN_MIN_DIGITS:
        notice = f"{PIN_MIN_DIGITS} to {PIN_MAX_DIGITS} digits"
        return state.but(notice=notice), (Beep(BeepPattern.ERROR),)
    if state.pin_purpose is PinPurpose.UNLOCK:
        return enter(state, Phase.PIN_CHECKING, VerifyPin(entry), pin_entry="")
    if state.pin_purpose is PinPurpose.NEW:
        return enter(
            state,
            Phase.PIN_ENTRY,
            Beep(BeepPattern.CLICK),
            pin_purpose=PinPurpose.CONFIRM,
            pin_first=entry,
            pin_entry="",
        )
    if entry != state.pin_first:
        return enter(
            state,
            Phase.PIN_ENTRY,
            Beep(BeepPattern.ERROR),
            pin_purpose=PinPurpose.NEW,
            pin_first="",
            pin_entry="",
            notice="PINs differ: again",
        )
    return enter(state, Phase.PIN_CHECKING, SetPin(entry), pin_entry="", pin_first="")


@leads_to(Phase.MENU, Phase.PIN_ENTRY, Phase.IDLE)
def pin_checked(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, PinChecked)
    if event.ok:
        return enter(state, Phase.MENU, Beep(BeepPattern.CLICK), pin_locked_until_s=0.0)
    if event.locked_for_s > 0:
        new_state, effects = to_idle(state, notice=lock_notice(event.locked_for_s))
        locked = new_state.but(pin_locked_until_s=event.now_s + event.locked_for_s)
        return locked, (Beep(BeepPattern.ALERT), *effects)
    return enter(
        state,
        Phase.PIN_ENTRY,
        Beep(BeepPattern.ERROR),
        pin_purpose=PinPurpose.UNLOCK,
        notice=f"Wrong PIN: {event.tries_left} left",
    )


@leads_to(Phase.MENU, Phase.IDLE)
def pin_saved(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, PinSaved)
    if event.saved:
        return enter(state, Phase.MENU, Beep(BeepPattern.APPROVE), pin_set=True, notice="PIN saved")
    new_state, effects = to_idle(state, notice="PIN NOT saved")
    return new_state, (Beep(BeepPattern.ERROR), *effects)


@leads_to(
    Phase.MENU,
    Phase.REPORT,
    Phase.VOID_LOOKUP,
    Phase.TOPUP_AMOUNT,
    Phase.BALANCE_CARD,
    Phase.END_OF_DAY,
    Phase.REPRINT,
    Phase.REFUND_LOOKUP,
)
def menu_digit(state: TerminalState, event: Event) -> Result:
    choice = digit_of(event)
    if choice in staffed.MENU_CHOICES:
        return staffed.MENU_CHOICES[choice](state, event)
    if choice == 1:
        mode = _MODES[(_MODES.index(state.mode) + 1) % len(_MODES)]
        return enter(state, Phase.MENU, SaveMode(mode), Beep(BeepPattern.CLICK), mode=mode)
    if choice == 2:
        return enter(
            state, Phase.REPORT, RequestReport(), report_lines=("Reading journal",), report_page=0
        )
    if choice == 3:
        return enter(state, Phase.VOID_LOOKUP, FindLastSale(), Beep(BeepPattern.CLICK))
    if choice == 4:  # refund (core/refund.py): the recent sales first
        lookup = (FindRecentSales(), Beep(BeepPattern.CLICK))
        return enter(state, Phase.REFUND_LOOKUP, *lookup, refund=RefundPick())
    if choice == 5:
        return endofday.ask_end_of_day(state)
    if choice == 6:
        return endofday.open_reprint(state)
    return state.but(notice="Press 1-8"), (Beep(BeepPattern.ERROR),)


# --- void the last sale (FN 3) -------------------------------------------------------------------

# What a void does to the sale it cancels, by (kind, mode, status): the sale's new status.
VOIDS: Mapping[tuple[TxnKind, TxnMode, TxnStatus], TxnStatus] = {
    # The host charged it: a reversal (0420, reason 17 customer cancellation) via the forwarder.
    (TxnKind.CARD, TxnMode.ONLINE, TxnStatus.APPROVED): TxnStatus.REVERSAL_PENDING,
    # Not yet at the host: never forwarded (the shell checks it was never sent, in the commit).
    (TxnKind.CARD, TxnMode.OFFLINE, TxnStatus.PENDING): TxnStatus.VOIDED,
    # The host took its advice: a reversal (0420, reason 17) whose field 90 names the 0220.
    (TxnKind.CARD, TxnMode.OFFLINE, TxnStatus.FORWARDED): TxnStatus.REVERSAL_PENDING,
    # Cash: not sold after all; the VOID row is the cash that leaves the drawer.
    (TxnKind.CASH, TxnMode.ONLINE, TxnStatus.COMPLETED): TxnStatus.VOIDED,
    (TxnKind.CASH, TxnMode.OFFLINE, TxnStatus.COMPLETED): TxnStatus.VOIDED,
}
_VOIDED_ALREADY = (TxnStatus.VOIDED, TxnStatus.REVERSAL_PENDING, TxnStatus.REVERSED)


def void_refusal(state: TerminalState, sale: SaleOnRecord | None) -> str | None:
    """Why the newest sale may not be voided (as the screen says it), or None."""
    if sale is None:
        return "No sale to void"
    if sale.status in _VOIDED_ALREADY:
        return "Last sale is voided"
    if sale.day_closed:
        return "Day closed: no void"
    if sale.refunded_minor:
        return "Refunded: no void"
    if sale.kind is TxnKind.CARD and sale.sent and sale.status is TxnStatus.PENDING:
        return "Being sent: try later"  # its advice is in flight: void it once acknowledged
    if (sale.kind, sale.mode, sale.status) not in VOIDS:
        return f"Cannot void: {sale.status.value}"
    if sale.age_s > state.settings.void_window_s:
        return f"Too late: over {state.settings.void_window_s / 60:.0f} min"
    return None


@leads_to(Phase.VOID_CONFIRM, Phase.IDLE)
def last_sale_found(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, LastSaleFound)
    refusal = void_refusal(state, event.sale)
    if refusal is not None:
        new_state, effects = to_idle(state, notice=refusal)
        return new_state, (Beep(BeepPattern.ERROR), *effects)
    return enter(state, Phase.VOID_CONFIRM, Beep(BeepPattern.ALERT), void_target=event.sale)


@leads_to(Phase.VOIDING)
def void_ok(state: TerminalState, event: Event) -> Result:
    sale = state.void_target
    assert sale is not None
    void = Txn(
        seq=state.next_seq,
        kind=sale.kind,
        mode=sale.mode,
        amount_minor=sale.amount_minor,
        currency=sale.currency,
        status=TxnStatus.VOID,
        reverses_seq=sale.seq,
    )
    to_status = VOIDS[(sale.kind, sale.mode, sale.status)]
    return enter(
        state,
        Phase.VOIDING,
        VoidSale(sale.seq, sale.status, to_status, void),
        next_seq=state.next_seq + 1,
        void_seq=void.seq,
    )


@leads_to(Phase.VOIDED, Phase.IDLE)
def void_done(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, VoidDone)
    sale = state.void_target
    assert sale is not None
    if not event.ok:
        new_state, effects = to_idle(state, notice=event.reason or "Void NOT saved")
        return new_state, (Beep(BeepPattern.ERROR), *effects)
    drawer = (OpenDrawer(),) if sale.kind is TxnKind.CASH else ()
    return enter(state, Phase.VOIDED, *drawer, Beep(BeepPattern.APPROVE))


def report_ready(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, ReportReady)
    return state.but(report_lines=event.lines, report_page=0), ()


@leads_to(Phase.REPORT, Phase.IDLE)
def report_next_page(state: TerminalState, event: Event) -> Result:
    """OK pages through the report three lines at a time; after the last page, back to idle."""
    if (state.report_page + 1) * REPORT_PAGE_LINES >= len(state.report_lines):
        return to_idle(state)
    return enter(state, Phase.REPORT, report_page=state.report_page + 1)


# --- the table -----------------------------------------------------------------------------------

_NOT_NOW = refuse("")
_NO_CARD_WANTED = refuse("No card wanted now")
_PLEASE_WAIT = refuse("Please wait")


def awaiting(answer: Trigger, on_answer: Handler, on_timeout: Handler) -> dict[Trigger, Handler]:
    """The rows of a phase waiting for an answer whose outcome must be learned (a request in
    flight, a journal commit): every key and card says "Please wait", CANCEL too, until the
    answer or the phase timer."""
    waits = (Trigger.DIGIT, Trigger.OK, Trigger.CLEAR, Trigger.CANCEL, Trigger.FN, Trigger.CARD)
    rows: dict[Trigger, Handler] = {trigger: _PLEASE_WAIT for trigger in waits}
    return {**rows, Trigger.CARD_UNREADABLE: ignore, answer: on_answer, Trigger.TIMEOUT: on_timeout}


def confirming(on_ok: Handler) -> dict[Trigger, Handler]:
    """The rows of a supervisor's yes/no question (void this sale? close the day?): OK is the
    yes, CLEAR, CANCEL and FN the no, digits and cards are not wanted."""
    return {
        Trigger.DIGIT: _NOT_NOW,
        Trigger.OK: on_ok,
        Trigger.CLEAR: cancel,
        Trigger.CANCEL: cancel,
        Trigger.FN: cancel,
        Trigger.CARD: _NO_CARD_WANTED,
        Trigger.CARD_UNREADABLE: ignore,
        Trigger.TIMEOUT: timed_out,
    }


@leads_to(Phase.IDLE)
def done(state: TerminalState, event: Event) -> Result:
    return to_idle(state)


def dismiss_notice(state: TerminalState, event: Event) -> Result:
    return state.but(notice=""), ()


def any_key_leaves(on_digit: Handler) -> dict[Trigger, Handler]:
    """The rows of a screen the cashier only reads (a result, the menu): OK, CLEAR, CANCEL, FN
    and its timeout go back to idle, a card is not wanted; a digit does what `on_digit` says."""
    return {
        Trigger.DIGIT: on_digit,
        Trigger.OK: done,
        Trigger.CLEAR: done,
        Trigger.CANCEL: done,
        Trigger.FN: done,
        Trigger.CARD: _NO_CARD_WANTED,
        Trigger.CARD_UNREADABLE: ignore,
        Trigger.TIMEOUT: done,
    }


_RESULT_ROWS: dict[Trigger, Handler] = any_key_leaves(start_amount)  # a sale may begin at once

_ROWS: dict[Phase, dict[Trigger, Handler]] = {
    Phase.BOOTING: {
        Trigger.BOOTED: on_booted,
    },
    Phase.IDLE: {
        Trigger.DIGIT: start_amount,
        Trigger.OK: refuse("Key in an amount"),
        Trigger.CLEAR: dismiss_notice,
        Trigger.CANCEL: dismiss_notice,
        Trigger.FN: open_menu,
        Trigger.CARD: refuse("Key in the amount first"),
        Trigger.CARD_UNREADABLE: ignore,
        Trigger.TIMEOUT: ignore,
    },
    Phase.AMOUNT: {
        Trigger.DIGIT: amount_digit,
        Trigger.OK: amount_ok,
        Trigger.CLEAR: amount_clear,
        Trigger.CANCEL: cancel,
        Trigger.FN: pay_cash,
        Trigger.CARD: refuse("Press OK first"),
        Trigger.CARD_UNREADABLE: ignore,
        Trigger.TIMEOUT: timed_out,
    },
    Phase.AWAIT_CARD: {
        Trigger.DIGIT: _NOT_NOW,
        Trigger.OK: refuse("Swipe the card"),
        Trigger.CLEAR: _NOT_NOW,
        Trigger.CANCEL: cancel,
        Trigger.FN: pay_cash,
        Trigger.CARD: card_swiped,
        Trigger.CARD_UNREADABLE: refuse("Card not read, swipe again"),
        Trigger.TIMEOUT: timed_out,
    },
    # The request is in flight: its outcome must be learned, so CANCEL cannot abandon it.
    Phase.AUTHORIZING: awaiting(Trigger.AUTH_RESULT, auth_result, authorizing_timer),
    Phase.APPROVED: _RESULT_ROWS,
    Phase.OFFLINE_APPROVED: _RESULT_ROWS,
    Phase.DECLINED: _RESULT_ROWS,
    Phase.CASH_ONLY: {
        Trigger.DIGIT: _NOT_NOW,
        Trigger.OK: accept_cash,
        Trigger.CLEAR: _NOT_NOW,
        Trigger.CANCEL: cancel,
        Trigger.FN: _NOT_NOW,
        Trigger.CARD: refuse("Cash only: no card"),
        Trigger.CARD_UNREADABLE: ignore,
        Trigger.TIMEOUT: timed_out,
    },
    Phase.TENDER: {
        Trigger.DIGIT: tender_digit,
        Trigger.OK: tender_ok,
        Trigger.CLEAR: tender_clear,
        Trigger.CANCEL: cancel,
        Trigger.FN: _NOT_NOW,
        Trigger.CARD: refuse("Cash only: no card"),
        Trigger.CARD_UNREADABLE: ignore,
        Trigger.TIMEOUT: timed_out,
    },
    Phase.CHANGE: _RESULT_ROWS,
    Phase.STORAGE_FAULT: any_key_leaves(_NOT_NOW),
    Phase.MENU: any_key_leaves(menu_digit),
    Phase.PIN_ENTRY: {
        Trigger.DIGIT: pin_digit,
        Trigger.OK: pin_ok,
        Trigger.CLEAR: pin_clear,
        Trigger.CANCEL: cancel,
        Trigger.FN: done,
        Trigger.CARD: _NO_CARD_WANTED,
        Trigger.CARD_UNREADABLE: ignore,
        Trigger.TIMEOUT: done,
    },
    Phase.PIN_CHECKING: {
        # The verdict comes back as PinChecked/PinSaved; CANCEL leaves (a late one is noted).
        Trigger.DIGIT: _PLEASE_WAIT,
        Trigger.OK: _PLEASE_WAIT,
        Trigger.CLEAR: _PLEASE_WAIT,
        Trigger.CANCEL: cancel,
        Trigger.FN: _PLEASE_WAIT,
        Trigger.CARD: _NO_CARD_WANTED,
        Trigger.CARD_UNREADABLE: ignore,
        Trigger.TIMEOUT: done,
        Trigger.PIN_CHECKED: pin_checked,
        Trigger.PIN_SAVED: pin_saved,
    },
    Phase.VOID_LOOKUP: {
        Trigger.DIGIT: _PLEASE_WAIT,
        Trigger.OK: _PLEASE_WAIT,
        Trigger.CLEAR: _PLEASE_WAIT,
        Trigger.CANCEL: cancel,
        Trigger.FN: done,
        Trigger.CARD: _NO_CARD_WANTED,
        Trigger.CARD_UNREADABLE: ignore,
        Trigger.TIMEOUT: done,
        Trigger.LAST_SALE_FOUND: last_sale_found,
    },
    Phase.VOID_CONFIRM: confirming(void_ok),
    # The shell journals the void within the step; VoidDone is the next event taken.
    Phase.VOIDING: awaiting(Trigger.VOID_DONE, void_done, done),
    Phase.VOIDED: _RESULT_ROWS,
    Phase.REPORT: {  # the FN 2 report and the Z report (end of day): OK pages on
        **any_key_leaves(_NOT_NOW),
        Trigger.OK: report_next_page,
        Trigger.REPORT_READY: report_ready,
    },
}


# The staffed terminal's phases (FN 7 top-up, FN 8 balance) live in their own module; its
# handlers use the helpers above, so it is imported here, after them (import pitill.core.machine
# before pitill.core.staffed, never the other way round).
from pitill.core import staffed  # noqa: E402

_ROWS.update(staffed.ROWS)

# The refund phases' rows (FN 4) live with their rules in refund.py, imported here likewise.
from pitill.core.refund import REFUND_ROWS  # noqa: E402

_ROWS.update(REFUND_ROWS)


def _with_common_rows(
    rows: dict[Phase, dict[Trigger, Handler]],
) -> dict[Phase, dict[Trigger, Handler]]:
    table: dict[Phase, dict[Trigger, Handler]] = {}
    for phase, phase_rows in rows.items():
        common: dict[Trigger, Handler] = dict(COMMON_ROWS)
        if phase is Phase.BOOTING:  # before Booted only the monitors can speak
            monitors = (Trigger.LINK, Trigger.BACKLOG, Trigger.SEQ_TAKEN)
            common = {t: h for t, h in common.items() if t in monitors}
        table[phase] = {**common, **phase_rows}
    return table


# End of day and reprint (FN 5, FN 6) use the helpers above: imported last, merged in.
from pitill.core import endofday  # noqa: E402

TABLE: Mapping[Phase, Mapping[Trigger, Handler]] = _with_common_rows({**_ROWS, **endofday.ROWS})

"""The staffed terminal: FN 7 tops a closed-loop card up with cash, FN 8 asks for its balance.

Rules (the table's rules in machine.py hold here too):

1. Both need the host. Offline (or forced offline) the menu refuses them: a top-up taken
   offline would leave the customer without the credit on screen, and a card the host later
   refuses (replaced, lost) would leave the cash in the drawer with no account to hold it;
   the customer loses nothing by waiting. So no cash is taken until the host has credited.
2. A top-up is journaled like an online sale: AUTHORIZING before its 0200 (processing code
   21) goes, then APPROVED or DECLINED with the host's balance; the Record comes before the
   drawer opens for the cash. A 0200 whose answer never came is reversed (REVERSAL_PENDING:
   the forwarder sends the 0420 exactly once) and no cash is taken.
3. A balance inquiry (0200, processing code 31, amount 0) is journaled too, although it moves
   no money: its STAN is then never used again, and the host's exactly-once key (terminal,
   STAN, local time) can never hand a later sale the inquiry's stored answer.
4. The card checks are the sale's (machine.card_problem): a card failing them never reaches
   the host.

This module is imported by machine.py after the helpers it uses (import machine first).
"""

from __future__ import annotations

from collections.abc import Callable

from pitill.core.effects import Authorize, Beep, OpenDrawer
from pitill.core.events import AuthResult, CardSwiped, Event
from pitill.core.machine import (
    AnswerRules,
    Handler,
    HostOnly,
    Result,
    Trigger,
    amount_keys,
    answered,
    any_key_leaves,
    awaiting,
    cancel,
    card_problem,
    declined_here,
    enter,
    ignore,
    journal_new,
    leads_to,
    new_txn,
    over_max_amount,
    refuse,
    timed_out,
    to_idle,
    unanswered,
)
from pitill.core.state import Phase, Sale, TerminalState
from pitill.core.types import BeepPattern, TxnKind, TxnMode, TxnStatus

TOPUP_OFFLINE = "Top-up needs host"
BALANCE_OFFLINE = "Balance unavailable offline"
NO_ANSWER = "No answer: no top-up"
UNREACHABLE = "Host unreachable"


def _refused(state: TerminalState, notice: str) -> Result:
    return state.but(notice=notice), (Beep(BeepPattern.ERROR),)


@leads_to(Phase.TOPUP_AMOUNT)
def start_topup(state: TerminalState, event: Event) -> Result:
    """FN 7 in the menu: the amount of cash first."""
    if state.offline:
        return _refused(state, TOPUP_OFFLINE)
    return enter(state, Phase.TOPUP_AMOUNT, Beep(BeepPattern.CLICK), sale=Sale())


@leads_to(Phase.BALANCE_CARD)
def start_balance(state: TerminalState, event: Event) -> Result:
    """FN 8 in the menu: the card whose balance is asked."""
    if state.offline:
        return _refused(state, BALANCE_OFFLINE)
    return enter(state, Phase.BALANCE_CARD, Beep(BeepPattern.CLICK), sale=Sale())


MENU_CHOICES: dict[int, Callable[[TerminalState, Event], Result]] = {
    7: start_topup,
    8: start_balance,
}


topup_digit, topup_clear = amount_keys(Phase.TOPUP_AMOUNT, "amount_minor", over_max_amount)


@leads_to(Phase.TOPUP_CARD, Phase.IDLE)
def topup_ok(state: TerminalState, event: Event) -> Result:
    if state.amount_minor == 0:
        return _refused(state, "Key in an amount")
    if state.offline:  # the link went while the amount was keyed
        new_state, effects = to_idle(state, notice=TOPUP_OFFLINE)
        return new_state, (Beep(BeepPattern.ERROR), *effects)
    return enter(state, Phase.TOPUP_CARD, Beep(BeepPattern.CLICK))


@leads_to(Phase.DECLINED, Phase.STAFFED_AUTHORIZING, Phase.IDLE)
def staffed_card(state: TerminalState, event: Event) -> Result:
    """The card of a top-up (TOPUP_CARD) or of a balance inquiry (BALANCE_CARD)."""
    assert isinstance(event, CardSwiped)
    problem = card_problem(event)
    if problem is not None:  # refused here, nothing asked of the host: no row (as for a sale)
        return declined_here(state, event.card, problem)
    topup = state.phase is Phase.TOPUP_CARD
    if state.offline:
        new_state, effects = to_idle(state, notice=TOPUP_OFFLINE if topup else BALANCE_OFFLINE)
        return new_state, (Beep(BeepPattern.ERROR), *effects)
    kind = TxnKind.TOPUP if topup else TxnKind.BALANCE
    txn = new_txn(state, kind, TxnMode.ONLINE, TxnStatus.AUTHORIZING, card=event.card)
    return journal_new(state, Phase.STAFFED_AUTHORIZING, txn, Authorize(txn), card=event.card)


# The host's answer, by the sale's rule (machine.answered), but never decided offline (rule 1):
# "not now" is a decline, and no answer declines it too (a top-up is reversed first, rule 2).
_HOST_ONLY = HostOnly(unreachable=UNREACHABLE, no_answer=NO_ANSWER)
ANSWERS: dict[TxnKind, AnswerRules] = {
    TxnKind.TOPUP: AnswerRules(
        approved_phase=Phase.TOPPED_UP,
        declined_phase=Phase.DECLINED,
        without_host=_HOST_ONLY,
        approved_effects=(OpenDrawer(),),  # credited and journaled: now the cash goes in
    ),
    TxnKind.BALANCE: AnswerRules(
        approved_phase=Phase.BALANCE_SHOWN,
        declined_phase=Phase.BALANCE_SHOWN,
        without_host=_HOST_ONLY,
        moves_money=False,  # nothing to reverse: unanswered, it is the terminal's decline
    ),
}


@leads_to(Phase.TOPPED_UP, Phase.BALANCE_SHOWN, Phase.DECLINED)
def staffed_result(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, AuthResult)
    if state.txn is None:
        return state, ()  # an answer for something already resolved
    return answered(state, event, ANSWERS[state.txn.kind])


@leads_to(Phase.BALANCE_SHOWN, Phase.DECLINED)
def staffed_timer(state: TerminalState, event: Event) -> Result:
    assert state.txn is not None
    return unanswered(state, state.txn, ANSWERS[state.txn.kind])


_NOT_NOW = refuse("")
_CARD_ROWS: dict[Trigger, Handler] = {
    Trigger.DIGIT: _NOT_NOW,
    Trigger.OK: refuse("Tap or swipe the card"),
    Trigger.CLEAR: _NOT_NOW,
    Trigger.CANCEL: cancel,
    Trigger.FN: _NOT_NOW,
    Trigger.CARD: staffed_card,
    Trigger.CARD_UNREADABLE: refuse("Card not read, swipe again"),
    Trigger.TIMEOUT: timed_out,
}


_RESULT_ROWS: dict[Trigger, Handler] = any_key_leaves(_NOT_NOW)

ROWS: dict[Phase, dict[Trigger, Handler]] = {
    Phase.TOPUP_AMOUNT: {
        Trigger.DIGIT: topup_digit,
        Trigger.OK: topup_ok,
        Trigger.CLEAR: topup_clear,
        Trigger.CANCEL: cancel,
        Trigger.FN: _NOT_NOW,
        Trigger.CARD: refuse("Press OK first"),
        Trigger.CARD_UNREADABLE: ignore,
        Trigger.TIMEOUT: timed_out,
    },
    Phase.TOPUP_CARD: _CARD_ROWS,
    Phase.BALANCE_CARD: _CARD_ROWS,
    # The 0200 is in flight: its outcome must be learned, so CANCEL cannot abandon it.
    Phase.STAFFED_AUTHORIZING: awaiting(Trigger.AUTH_RESULT, staffed_result, staffed_timer),
    Phase.TOPPED_UP: _RESULT_ROWS,
    Phase.BALANCE_SHOWN: _RESULT_ROWS,
}

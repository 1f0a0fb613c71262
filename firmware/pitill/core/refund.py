"""Refund (FN 4, behind the supervisor PIN): the rules and the table rows of the refund phases.

Rules (the transition table's rules in machine.py hold here too):

1. Only a sale REFUNDABLE says may be refunded: a card sale the host approved (or an offline one
   approved and not refused after the fact), or a cash sale; never a void, a decline or a refund.
2. A refund is never more than the sale less its earlier refunds (`refund_refusal`, the one home
   of that cap; the journal counts earlier refunds in REFUND_COUNTED statuses).
3. A card sale is refunded to its card: swiped to find the sale, or swiped after picking it from
   the list (the masked number must match). Online the host decides (0200, processing code 20);
   when it cannot be reached, only within the lower offline refund limits
   (`offline_refund_refusal`), journaled PENDING and forwarded exactly once like an offline sale.
4. A cash sale is refunded in cash: one COMPLETED REFUND row, then the drawer opens.
5. Every refund row names its sale in refunds_seq; its amount is positive (the kind says out).
"""

from __future__ import annotations

from dataclasses import replace

from pitill.card.model import Card
from pitill.core.effects import Authorize, Beep, Effect, FindRecentSales, OpenDrawer
from pitill.core.events import AuthResult, CardSwiped, Event, RecentSalesFound
from pitill.core.machine import (
    _RESULT_ROWS,
    AnswerRules,
    Handler,
    OfflineRule,
    Trigger,
    amount_keys,
    answered,
    awaiting,
    cancel,
    digit_of,
    done,
    enter,
    ignore,
    journal_new,
    leads_to,
    refuse,
    timed_out,
    to_idle,
    unanswered,
)
from pitill.core.responses import OFFLINE_APPROVED
from pitill.core.state import Phase, RefundPick, Sale, TerminalState
from pitill.core.txn import SaleOnRecord, Txn
from pitill.core.types import BeepPattern, OfflineMode, TxnKind, TxnMode, TxnStatus
from pitill.core.views import money

# The sales a refund may name, by kind: the statuses in which the money is the shop's.
REFUNDABLE: dict[TxnKind, frozenset[TxnStatus]] = {
    TxnKind.CARD: frozenset({TxnStatus.APPROVED, TxnStatus.PENDING, TxnStatus.FORWARDED}),
    TxnKind.CASH: frozenset({TxnStatus.COMPLETED}),
}
# The refund rows that count against their sale: given back, or maybe given back (in flight).
# A refund reversed, declined or voided gave nothing back.
REFUND_COUNTED = frozenset(
    {
        TxnStatus.AUTHORIZING,
        TxnStatus.APPROVED,
        TxnStatus.PENDING,
        TxnStatus.FORWARDED,
        TxnStatus.DECLINED_AFTER,  # the host refused it, but the customer was told refunded
        TxnStatus.COMPLETED,
    }
)
SCROLL_UP = 2  # keypad digits as arrows on the list: 2 up, 8 down (a phone's layout)
SCROLL_DOWN = 8


def refundable_minor(sale: SaleOnRecord) -> int:
    """What may still be refunded of `sale` (0 when it may not be refunded at all)."""
    if sale.status not in REFUNDABLE.get(sale.kind, frozenset()):
        return 0
    return max(0, sale.amount_minor - sale.refunded_minor)


def refund_refusal(state: TerminalState, sale: SaleOnRecord, amount_minor: int) -> str | None:
    """Why `amount_minor` may not be refunded of `sale` (as the screen says it), or None."""
    left = refundable_minor(sale)
    if left == 0:
        return "Refunded in full" if sale.refunded_minor else "Cannot refund it"
    if amount_minor <= 0:
        return "Key in an amount"
    if amount_minor > left:
        return f"At most {money(state, left)}"
    return None


def offline_refund_refusal(state: TerminalState, amount_minor: int) -> str | None:
    """Why a card refund may not be given without the host (the limit, as shown), or None."""
    limits = state.settings.limits
    if state.mode is OfflineMode.REQUIRE_ONLINE:
        return "Mode: online only"
    if amount_minor > limits.refund_floor_limit_minor:
        return f"Offline: over {money(state, limits.refund_floor_limit_minor)}"
    if state.refund_offline_minor + amount_minor > limits.refund_max_total_minor:
        return f"Limit: {money(state, limits.refund_max_total_minor)} refunds"
    return None


def same_card(card: Card, sale: SaleOnRecord) -> bool:
    """The card swiped is the sale's, as far as the journal can tell (its masked number)."""
    return card.masked_pan == sale.masked_pan


# --- handlers (machine.py builds its table with REFUND_ROWS, after its helpers exist) ------------

Result = tuple[TerminalState, tuple[Effect, ...]]


def _pick(state: TerminalState) -> RefundPick:
    assert state.refund is not None
    return state.refund


def _target(state: TerminalState) -> SaleOnRecord:
    target = _pick(state).target
    assert target is not None
    return target


@leads_to(Phase.REFUND_PICK, Phase.IDLE)
def sales_found(state: TerminalState, event: Event) -> Result:
    """The recent sales (of the swiped card, if one was): listed, or why there are none."""
    assert isinstance(event, RecentSalesFound)
    choices = tuple(s for s in event.sales if refundable_minor(s) > 0)
    if not choices:
        notice = "No sale of this card" if event.card is not None else "No sale to refund"
        if event.card is not None and state.refund and state.refund.choices:
            # the list of all stays on screen: the cashier may still pick from it
            return enter(state, Phase.REFUND_PICK, Beep(BeepPattern.ERROR), notice=notice)
        new_state, effects = to_idle(state, notice=notice)
        return new_state, (Beep(BeepPattern.ERROR), *effects)
    pick = RefundPick(choices=choices, card=event.card)
    return enter(state, Phase.REFUND_PICK, Beep(BeepPattern.CLICK), refund=pick)


@leads_to(Phase.REFUND_PICK)
def pick_scroll(state: TerminalState, event: Event) -> Result:
    pick = _pick(state)
    digit = digit_of(event)
    step = {SCROLL_UP: -1, SCROLL_DOWN: 1}.get(digit)
    if step is None:
        return state.but(notice="2/8 scroll, OK pick"), (Beep(BeepPattern.ERROR),)
    index = min(max(pick.index + step, 0), len(pick.choices) - 1)
    moved = replace(pick, index=index)
    return enter(state, Phase.REFUND_PICK, Beep(BeepPattern.CLICK), refund=moved)


@leads_to(Phase.REFUND_AMOUNT)
def pick_ok(state: TerminalState, event: Event) -> Result:
    """The sale under the cursor: key the amount next (nothing keyed = all that is left)."""
    pick = _pick(state)
    target = pick.choices[pick.index]
    card = pick.card if pick.card is not None and same_card(pick.card, target) else None
    return enter(
        state,
        Phase.REFUND_AMOUNT,
        Beep(BeepPattern.CLICK),
        refund=replace(pick, target=target),
        sale=Sale(card=card),
    )


@leads_to(Phase.REFUND_LOOKUP)
def pick_card(state: TerminalState, event: Event) -> Result:
    """A card swiped at the list: its own recent sales are looked up."""
    assert isinstance(event, CardSwiped)
    problem = event.card.problem(event.today_yymm)
    if problem is not None:
        return state.but(notice=problem), (Beep(BeepPattern.ERROR),)
    return enter(state, Phase.REFUND_LOOKUP, FindRecentSales(event.card), Beep(BeepPattern.CLICK))


def _over_what_is_left(state: TerminalState, amount_minor: int) -> str | None:
    left = refundable_minor(_target(state))
    return f"At most {money(state, left)}" if amount_minor > left else None


amount_digit, amount_clear = amount_keys(Phase.REFUND_AMOUNT, "amount_minor", _over_what_is_left)


@leads_to(Phase.REFUNDED, Phase.REFUND_CARD, Phase.REFUND_AUTHORIZING, Phase.REFUND_DECLINED)
def amount_ok(state: TerminalState, event: Event) -> Result:
    """OK: the amount keyed (nothing keyed: all that is left), within the cap; then the card."""
    target = _target(state)
    amount = state.amount_minor or refundable_minor(target)
    refusal = refund_refusal(state, target, amount)
    if refusal is not None:
        return state.but(notice=refusal), (Beep(BeepPattern.ERROR),)
    state = state.but(amount_minor=amount)
    if target.kind is TxnKind.CASH:
        refund = _refund_txn(state, TxnMode.OFFLINE, TxnStatus.COMPLETED)
        return journal_new(state, Phase.REFUNDED, refund, OpenDrawer(), Beep(BeepPattern.APPROVE))
    if state.card is None:
        return enter(state, Phase.REFUND_CARD, Beep(BeepPattern.CLICK))
    return _send(state)


@leads_to(Phase.REFUNDED, Phase.REFUND_AUTHORIZING, Phase.REFUND_DECLINED)
def card_swiped(state: TerminalState, event: Event) -> Result:
    """The card of the sale picked from the list (the refund goes to no other)."""
    assert isinstance(event, CardSwiped)
    problem = event.card.problem(event.today_yymm)
    if problem is None and not same_card(event.card, _target(state)):
        problem = f"Not the card of #{_target(state).seq}"
    if problem is not None:
        return state.but(notice=problem), (Beep(BeepPattern.ERROR),)
    return _send(state.but(card=event.card))


def _refund_txn(state: TerminalState, mode: TxnMode, status: TxnStatus, **fields: object) -> Txn:
    target = _target(state)
    return Txn(
        seq=state.next_seq,
        kind=TxnKind.REFUND,
        mode=mode,
        amount_minor=state.amount_minor,
        currency=target.currency,
        status=status,
        card=state.card,
        refunds_seq=target.seq,
        **fields,  # type: ignore[arg-type]
    )


def _send(state: TerminalState) -> Result:
    if state.can_go_online:
        txn = _refund_txn(state, TxnMode.ONLINE, TxnStatus.AUTHORIZING)
        return journal_new(state, Phase.REFUND_AUTHORIZING, txn, Authorize(txn))
    return _offline(state)


def _offline(state: TerminalState, *before: Effect, reverses_seq: int = 0) -> Result:
    """Refund without the host, within the offline refund limits (journaled first), or not."""
    refusal = offline_refund_refusal(state, state.amount_minor)
    if refusal is not None:
        return enter(
            state,
            Phase.REFUND_DECLINED,
            *before,
            Beep(BeepPattern.DECLINE),
            decline_reason=refusal,
        )
    txn = _refund_txn(
        state,
        TxnMode.OFFLINE,
        TxnStatus.PENDING,
        response_code=OFFLINE_APPROVED,
        reverses_seq=reverses_seq,
    )
    return journal_new(
        state,
        Phase.REFUNDED,
        txn,
        Beep(BeepPattern.APPROVE),
        before=before,
        refund_offline_minor=state.refund_offline_minor + state.amount_minor,
    )


def _refused_offline(state: TerminalState) -> bool:
    return offline_refund_refusal(state, state.amount_minor) is not None


# The host's answer to the refund's 0200, by the sale's rule (machine.answered): "not now",
# never sent or no answer decide it offline within the refund limits. Its row keeps no balance.
REFUND_ANSWERS = AnswerRules(
    approved_phase=Phase.REFUNDED,
    declined_phase=Phase.REFUND_DECLINED,
    without_host=OfflineRule(decide=_offline, refuses=_refused_offline),
    keeps_balance=False,
)


@leads_to(Phase.REFUNDED, Phase.REFUND_DECLINED)
def auth_result(state: TerminalState, event: Event) -> Result:
    assert isinstance(event, AuthResult)
    return answered(state, event, REFUND_ANSWERS)


@leads_to(Phase.REFUNDED, Phase.REFUND_DECLINED)
def authorizing_timer(state: TerminalState, event: Event) -> Result:
    assert state.txn is not None
    return unanswered(state, state.txn, REFUND_ANSWERS)


_PLEASE_WAIT = refuse("Please wait")
_KEYS_OFF = refuse("")

REFUND_ROWS: dict[Phase, dict[Trigger, Handler]] = {
    Phase.REFUND_LOOKUP: {
        Trigger.DIGIT: _PLEASE_WAIT,
        Trigger.OK: _PLEASE_WAIT,
        Trigger.CLEAR: _PLEASE_WAIT,
        Trigger.CANCEL: cancel,
        Trigger.FN: done,
        Trigger.CARD: _PLEASE_WAIT,
        Trigger.CARD_UNREADABLE: ignore,
        Trigger.TIMEOUT: done,
        Trigger.RECENT_SALES_FOUND: sales_found,
    },
    Phase.REFUND_PICK: {
        Trigger.DIGIT: pick_scroll,
        Trigger.OK: pick_ok,
        Trigger.CLEAR: cancel,
        Trigger.CANCEL: cancel,
        Trigger.FN: cancel,
        Trigger.CARD: pick_card,
        Trigger.CARD_UNREADABLE: refuse("Card not read, swipe again"),
        Trigger.TIMEOUT: timed_out,
    },
    Phase.REFUND_AMOUNT: {
        Trigger.DIGIT: amount_digit,
        Trigger.OK: amount_ok,
        Trigger.CLEAR: amount_clear,
        Trigger.CANCEL: cancel,
        Trigger.FN: cancel,
        Trigger.CARD: refuse("Press OK first"),
        Trigger.CARD_UNREADABLE: ignore,
        Trigger.TIMEOUT: timed_out,
    },
    Phase.REFUND_CARD: {
        Trigger.DIGIT: _KEYS_OFF,
        Trigger.OK: refuse("Swipe the card"),
        Trigger.CLEAR: _KEYS_OFF,
        Trigger.CANCEL: cancel,
        Trigger.FN: cancel,
        Trigger.CARD: card_swiped,
        Trigger.CARD_UNREADABLE: refuse("Card not read, swipe again"),
        Trigger.TIMEOUT: timed_out,
    },
    # In flight: its outcome must be learned, so CANCEL cannot abandon it.
    Phase.REFUND_AUTHORIZING: awaiting(Trigger.AUTH_RESULT, auth_result, authorizing_timer),
    Phase.REFUNDED: _RESULT_ROWS,
    Phase.REFUND_DECLINED: _RESULT_ROWS,
}

"""Any sequence of keys, swipes, link changes, answers and timers: the core's invariants hold."""

from __future__ import annotations

import dataclasses

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pitill.card.model import Card
from pitill.core.effects import Effect, Record, ReprintReceipt, Show, StartTimer, VoidSale
from pitill.core.events import (
    AuthOutcome,
    AuthResult,
    Booted,
    CardSwiped,
    DayClosed,
    Event,
    KeyPressed,
    LastSaleFound,
    LinkChanged,
    PinChecked,
    PinSaved,
    ReceiptFound,
    ReceiptPrinted,
    RecentSalesFound,
    TimerFired,
    TimerName,
    VoidDone,
)
from pitill.core.machine import TABLE, step, targets, trigger_of
from pitill.core.state import Phase, TerminalState
from pitill.core.txn import SaleOnRecord
from pitill.core.types import Key, LinkStatus, TxnKind, TxnMode, TxnStatus

CARDS = [
    Card("4111111111111111", "3012"),
    Card("4000000000000002", "3012"),
    Card("5555555555554444", "2001"),
    Card("4111111111111112", "3012"),
]
APPROVAL_PHASES = {Phase.APPROVED, Phase.OFFLINE_APPROVED, Phase.CHANGE}
DONE = {TxnStatus.APPROVED, TxnStatus.PENDING, TxnStatus.COMPLETED}
# Reached only through the supervisor PIN (FN, PIN, OK, a yes from the shell): the menu and
# every power behind it (void, refund, end of day, reprint of any receipt, top-up, balance).
OPEN_PHASES = {
    Phase.IDLE, Phase.AMOUNT, Phase.AWAIT_CARD, Phase.AUTHORIZING, Phase.APPROVED,
    Phase.OFFLINE_APPROVED, Phase.DECLINED, Phase.CASH_ONLY, Phase.TENDER, Phase.CHANGE,
    Phase.STORAGE_FAULT, Phase.PIN_ENTRY, Phase.PIN_CHECKING, Phase.BOOTING,
}  # fmt: skip
SUPERVISOR_PHASES = set(Phase) - OPEN_PHASES


class TerminalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now_s = 0.0
        self.state, _ = step(TerminalState(), Booted(0.0, next_seq=1))
        self.durable: dict[int, TxnStatus] = {}
        self.approvals: list[int] = []
        self.unlocked = False  # the supervisor PIN let this visit of the menu in

    def feed(self, event: Event) -> tuple[Effect, ...]:
        before = self.state.phase
        pick = self.state.refund.target if self.state.refund else None
        self.state, effects = step(self.state, event)
        if before is Phase.PIN_CHECKING and self.state.phase is Phase.MENU:
            self.unlocked = True
        elif self.state.phase in OPEN_PHASES:
            self.unlocked = False
        assert self.unlocked or self.state.phase not in SUPERVISOR_PHASES, (
            f"{before} -> {self.state.phase} without the PIN"
        )
        recorded_seqs: set[int] = set()
        for effect in effects:
            if isinstance(effect, ReprintReceipt) and not self.unlocked:
                # FN 6 OK without a PIN: the newest receipt, the customer's copy, nothing older
                assert (effect.seq, effect.merchant) == (0, False), effect
            if isinstance(effect, Record) and effect.txn.kind is TxnKind.REFUND:
                target = pick or (self.state.refund.target if self.state.refund else None)
                assert target is not None and effect.txn.refunds_seq == target.seq
                assert effect.txn.amount_minor <= target.amount_minor - target.refunded_minor
            if isinstance(effect, Record):
                self.durable[effect.txn.seq] = effect.txn.status
                recorded_seqs.add(effect.txn.seq)
            entered_approval = self.state.phase in APPROVAL_PHASES and self.state.phase != before
            if isinstance(effect, Show) and entered_approval:
                txn = self.state.txn
                assert txn is not None
                # The approval screen only ever follows the Record that made it durable.
                assert txn.seq in recorded_seqs, "approval shown before it was journaled"
                assert self.durable[txn.seq] in DONE
                self.approvals.append(txn.seq)
        return effects

    @rule(key=st.sampled_from(list(Key)))
    def press(self, key: Key) -> None:
        before = self.state.phase
        self.feed(KeyPressed(self.now_s, key))
        if key is Key.CANCEL and before not in (
            Phase.AUTHORIZING,
            Phase.VOIDING,
            Phase.REFUND_AUTHORIZING,
            Phase.STAFFED_AUTHORIZING,
            Phase.CLOSING_DAY,
        ):
            assert self.state.phase is Phase.IDLE

    @rule(
        choice=st.sampled_from([Key.D3, Key.D4, Key.D5, Key.D6, Key.D7, Key.D8]),
        then=st.lists(st.sampled_from([Key.OK, Key.D2, Key.D8, Key.D1, Key.CLEAR]), max_size=4),
    )
    def supervisor(self, choice: Key, then: list[Key]) -> None:
        """FN, the PIN and a yes from the shell, a menu entry and a few keys: the powers behind
        the PIN reached often enough to be mashed."""
        self.log_in()
        for key in (choice, *then):
            self.feed(KeyPressed(self.now_s, key))

    @rule(
        kind=st.sampled_from([TxnKind.CARD, TxnKind.CASH]),
        refunded_minor=st.sampled_from([0, 200, 500]),
        amount=st.sampled_from(["100", "300", "301", "500", "501"]),
    )
    def refund(self, kind: TxnKind, refunded_minor: int, amount: str) -> None:
        """FN 4 to the end: the sale from the journal, an amount maybe past what is left of it,
        the card, the host's yes."""
        self.log_in()
        self.feed(KeyPressed(self.now_s, Key.D4))
        self.recent_sales(kind, refunded_minor, by_card=False)
        self.feed(KeyPressed(self.now_s, Key.OK))
        for key in (*(Key(d) for d in amount), Key.OK):
            self.feed(KeyPressed(self.now_s, key))
        if self.state.phase is Phase.REFUND_CARD:
            self.feed(CardSwiped(self.now_s, CARDS[0], "2611"))
        if self.state.phase is Phase.REFUND_AUTHORIZING:
            self.answer(AuthOutcome.APPROVED, "00")

    @rule(
        status=st.sampled_from([TxnStatus.APPROVED, TxnStatus.PENDING, TxnStatus.COMPLETED]),
        day_closed=st.booleans(),
        void_ok=st.booleans(),
    )
    def void(self, status: TxnStatus, day_closed: bool, void_ok: bool) -> None:
        """FN 3 on the newest sale, its day closed or not."""
        self.log_in()
        self.feed(KeyPressed(self.now_s, Key.D3))
        kind = TxnKind.CASH if status is TxnStatus.COMPLETED else TxnKind.CARD
        self.void_answers(kind, status, 10.0, void_ok, day_closed)
        if self.state.phase is Phase.VOID_CONFIRM:
            self.feed(KeyPressed(self.now_s, Key.OK))
            self.feed(VoidDone(self.now_s, void_ok))

    def log_in(self) -> None:
        self.feed(KeyPressed(self.now_s, Key.FN))
        for _ in range(2):  # a new PIN is keyed twice
            if self.state.phase is not Phase.PIN_ENTRY:
                break
            for key in (Key.D2, Key.D5, Key.D8, Key.D0, Key.OK):
                self.feed(KeyPressed(self.now_s, key))
        if self.state.phase is Phase.PIN_CHECKING:
            self.feed(
                PinChecked(self.now_s, True) if self.state.pin_set else PinSaved(self.now_s, True)
            )

    @rule()
    def reprint_last(self) -> None:
        """FN 6 OK, the one thing the PIN screen does without a PIN."""
        for key in (Key.FN, Key.D6, Key.OK):
            self.feed(KeyPressed(self.now_s, key))

    @rule(card=st.sampled_from(CARDS))
    def swipe(self, card: Card) -> None:
        self.feed(CardSwiped(self.now_s, card, "2611"))

    @rule(status=st.sampled_from(list(LinkStatus)), reason=st.sampled_from(["", "DNS", "TIMEOUT"]))
    def link(self, status: LinkStatus, reason: str) -> None:
        self.feed(LinkChanged(self.now_s, status, reason))

    @rule(outcome=st.sampled_from(list(AuthOutcome)), code=st.sampled_from(["00", "05", "51"]))
    def answer(self, outcome: AuthOutcome, code: str) -> None:
        seq = self.state.txn.seq if self.state.txn else 0
        self.feed(AuthResult(self.now_s, seq, outcome, code, "A1B2C3"))

    @rule(
        ok=st.booleans(),
        locked_for_s=st.sampled_from([0.0, 60.0]),
        saved=st.booleans(),
        pin_saved=st.booleans(),
    )
    def pin_answer(self, ok: bool, locked_for_s: float, saved: bool, pin_saved: bool) -> None:
        """The shell's verdict on a PIN (or on saving a new one), in any phase, late or not."""
        before = self.state.phase
        if pin_saved:
            self.feed(PinSaved(self.now_s, saved))
        else:
            self.feed(PinChecked(self.now_s, ok and not locked_for_s, 3, locked_for_s))
        if self.state.phase is Phase.MENU and before is not Phase.MENU:
            assert before is Phase.PIN_CHECKING and (ok or saved)  # only a yes opens the menu

    @rule(
        kind=st.sampled_from(list(TxnKind)),
        status=st.sampled_from(list(TxnStatus)),
        age_s=st.sampled_from([10.0, 900.0]),
        void_ok=st.booleans(),
        day_closed=st.booleans(),
    )
    def void_answers(
        self, kind: TxnKind, status: TxnStatus, age_s: float, void_ok: bool, day_closed: bool
    ) -> None:
        """The journal's newest sale and the void's outcome, in any phase, late or not."""
        mode = TxnMode.OFFLINE if status is TxnStatus.PENDING else TxnMode.ONLINE
        found = SaleOnRecord(3, kind, mode, status, 500, "EUR", "", age_s, False, day_closed)
        effects = self.feed(LastSaleFound(self.now_s, found))
        if day_closed:  # after end of day a sale is refunded, never voided
            assert self.state.phase is not Phase.VOID_CONFIRM
            assert not any(isinstance(e, VoidSale) for e in effects)
        if self.state.phase is Phase.VOIDING:
            self.feed(VoidDone(self.now_s, void_ok))

    @rule(
        kind=st.sampled_from([TxnKind.CARD, TxnKind.CASH]),
        refunded_minor=st.sampled_from([0, 200, 500]),
        by_card=st.booleans(),
    )
    def recent_sales(self, kind: TxnKind, refunded_minor: int, by_card: bool) -> None:
        """The journal's refundable sales (FN 4), in any phase, late or not."""
        status = TxnStatus.APPROVED if kind is TxnKind.CARD else TxnStatus.COMPLETED
        pan = CARDS[0].masked_pan if kind is TxnKind.CARD else ""
        found = SaleOnRecord(3, kind, TxnMode.ONLINE, status, 500, "EUR", pan, 10.0, False)
        found = dataclasses.replace(found, refunded_minor=refunded_minor)
        self.feed(RecentSalesFound(self.now_s, (found,), CARDS[0] if by_card else None))

    @rule(ok=st.booleans())
    def day_closed(self, ok: bool) -> None:
        """The shell's end of day (FN 5), in any phase, late or not."""
        self.feed(DayClosed(self.now_s, ok, ("Z report", "day 1")))

    @rule(seq=st.sampled_from([0, 2, 3]), printed=st.booleans())
    def receipts(self, seq: int, printed: bool) -> None:
        """A receipt found for FN 6, or a print's outcome, in any phase, late or not."""
        if printed:
            self.feed(ReceiptPrinted(self.now_s, seq, ok=seq != 2))
        else:
            self.feed(ReceiptFound(self.now_s, seq, f"#{seq} EUR 5.00" if seq else ""))

    @rule(delay_s=st.floats(min_value=0.0, max_value=200.0))
    def time_passes(self, delay_s: float) -> None:
        self.now_s += delay_s
        self.feed(TimerFired(self.now_s, TimerName.PHASE, self.state.timer_token))

    @rule(token=st.integers(min_value=0, max_value=5))
    def stale_timer(self, token: int) -> None:
        if token != self.state.timer_token:
            assert self.feed(TimerFired(self.now_s, TimerName.PHASE, token)) == ()

    @invariant()
    def never_approves_a_sale_twice(self) -> None:
        assert len(self.approvals) == len(set(self.approvals))

    @invariant()
    def amounts_are_integers_in_range(self) -> None:
        assert isinstance(self.state.amount_minor, int)
        assert 0 <= self.state.amount_minor <= self.state.settings.max_amount_minor

    @invariant()
    def waiting_phases_have_a_live_timer(self) -> None:
        assert self.state.phase is not Phase.BOOTING


TerminalMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_terminal_machine = TerminalMachine.TestCase


def test_a_timer_is_started_on_entering_each_waiting_phase() -> None:
    state, _ = step(TerminalState(), Booted(0.0, next_seq=1))
    state, effects = step(state, KeyPressed(0.0, Key.D1))
    assert any(isinstance(e, StartTimer) and e.token == state.timer_token for e in effects)


class DeclaredTargetsMachine(TerminalMachine):
    """Every move the core makes is one the table declares, so `pitill diagram` tells the truth."""

    def feed(self, event: Event) -> tuple[Effect, ...]:
        before = self.state.phase
        handler = TABLE[before].get(trigger_of(event))
        effects = super().feed(event)
        after = self.state.phase
        if after is not before and handler is not None:
            assert after in targets(handler), f"{before} -> {after} not declared"
        return effects


DeclaredTargetsMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None
)
test_declared_targets = DeclaredTargetsMachine.TestCase

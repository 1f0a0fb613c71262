"""Rows that several phases share, from one place each: phases waiting for an answer whose outcome
must be learned (machine.awaiting), where every key and card, CANCEL too, says "Please wait";
the supervisor's yes/no questions (machine.confirming), where only OK goes on."""

from __future__ import annotations

import pytest
from till import GOOD, TODAY

from pitill.core.effects import Beep
from pitill.core.events import CardSwiped, CardUnreadable, Event, KeyPressed
from pitill.core.machine import TABLE, trigger_of
from pitill.core.state import Phase, TerminalState
from pitill.core.types import BeepPattern, Key

WAITING = (
    Phase.AUTHORIZING,
    Phase.STAFFED_AUTHORIZING,
    Phase.REFUND_AUTHORIZING,
    Phase.VOIDING,
    Phase.CLOSING_DAY,
)
INPUTS: tuple[Event, ...] = (
    *(KeyPressed(0.0, key) for key in (Key.D1, Key.OK, Key.CLEAR, Key.CANCEL, Key.FN)),
    CardSwiped(0.0, GOOD, TODAY),
)


@pytest.mark.parametrize("phase", WAITING)
def test_a_waiting_phase_answers_every_key_and_card_with_please_wait(phase: Phase) -> None:
    state = TerminalState(phase=phase)
    for event in INPUTS:
        after, effects = TABLE[phase][trigger_of(event)](state, event)
        assert (after.phase, after.notice, effects) == (
            phase,
            "Please wait",
            (Beep(BeepPattern.ERROR),),
        )
    unreadable = CardUnreadable(0.0, "noise")
    assert TABLE[phase][trigger_of(unreadable)](state, unreadable) == (state, ())


def test_only_the_waiting_phases_keep_the_cashier_from_cancelling() -> None:
    cancel = trigger_of(KeyPressed(0.0, Key.CANCEL))
    please_wait = TABLE[Phase.AUTHORIZING][cancel]
    assert {phase for phase, rows in TABLE.items() if rows.get(cancel) is please_wait} == set(
        WAITING
    )


@pytest.mark.parametrize("phase", [Phase.VOID_CONFIRM, Phase.END_OF_DAY])
def test_a_question_goes_on_only_with_ok(phase: Phase) -> None:
    state = TerminalState(phase=phase, notice="old")
    for key in (Key.CLEAR, Key.CANCEL, Key.FN):
        event = KeyPressed(0.0, key)
        after, _ = TABLE[phase][trigger_of(event)](state, event)
        assert (after.phase, after.notice) == (Phase.IDLE, "Cancelled")
    unwanted: tuple[Event, ...] = (KeyPressed(0.0, Key.D5), CardSwiped(0.0, GOOD, TODAY))
    for other in unwanted:
        after, effects = TABLE[phase][trigger_of(other)](state, other)
        assert after.phase is phase and effects == (Beep(BeepPattern.ERROR),)

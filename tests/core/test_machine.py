"""The transition table, driven with a fake clock: every phase, every timeout, money as integers."""

from __future__ import annotations

import pytest
from till import BAD_LUHN, EXPIRED, Till

from pitill.card.model import Card
from pitill.core.effects import Authorize, Beep, OpenDrawer, Record, SetLeds, Show
from pitill.core.events import (
    AuthOutcome,
    AuthResult,
    BacklogChanged,
    CardUnreadable,
    KeyPressed,
    ReaderChanged,
    RecordFailed,
    TimerFired,
    TimerName,
)
from pitill.core.machine import TABLE, Trigger, step
from pitill.core.state import Phase, Settings, TerminalState
from pitill.core.types import BeepPattern, Key, LinkStatus, TxnKind, TxnMode, TxnStatus
from pitill.errors import TransitionError


def test_digits_shift_in_from_the_right_and_clear_removes_the_last() -> None:
    till = Till()
    till.keys("1", "2", "5", "0")
    assert till.state.amount_minor == 1250
    assert "EUR 12.50" in till.screen_text
    till.keys("CLEAR")
    assert till.state.amount_minor == 125
    assert "EUR 1.25" in till.screen_text


def test_online_approval_records_before_it_tells_anyone() -> None:
    till = Till(next_seq=7)
    till.keys("1", "2", "5", "0", "OK")
    assert till.state.phase is Phase.AWAIT_CARD
    effects = till.swipe()
    authorizing = next(e for e in effects if isinstance(e, Record)).txn
    assert authorizing.seq == 7 and authorizing.status is TxnStatus.AUTHORIZING
    assert effects.index(next(e for e in effects if isinstance(e, Record))) < effects.index(
        next(e for e in effects if isinstance(e, Authorize))
    )
    effects = till.feed(AuthResult(till.now_s, 7, AuthOutcome.APPROVED, "00", "123456"))
    kinds = [type(e) for e in effects]
    assert kinds.index(Record) < kinds.index(Beep) < kinds.index(Show)
    assert till.state.phase is Phase.APPROVED
    assert "APPROVED" in till.screen_text and "411111******1111" in till.screen_text
    assert "4111111111111111" not in till.screen_text
    till.advance(4.0)
    assert till.state.phase is Phase.IDLE


def test_online_decline_shows_the_reason() -> None:
    till = Till()
    till.keys("5", "1", "OK")
    till.swipe()
    till.feed(AuthResult(till.now_s, 1, AuthOutcome.DECLINED, "51"))
    assert till.state.phase is Phase.DECLINED
    assert "INSUFFICIENT FUNDS" in till.screen_text
    assert till.records()[-1].txn.status is TxnStatus.DECLINED


@pytest.mark.parametrize(
    ("code", "reason"),
    [("62", "RESTRICTED CARD"), ("04", "KEEP CARD"), ("Q7", "CODE Q7"), ("05", "DO NOT HONOUR")],
)
def test_decline_reason_is_the_response_tables_screen_text(code: str, reason: str) -> None:
    till = Till()
    till.keys("5", "OK")
    till.swipe()
    till.feed(AuthResult(till.now_s, 1, AuthOutcome.DECLINED, code))
    assert till.state.phase is Phase.DECLINED
    assert reason in till.screen_text


def test_approval_with_identification_tells_the_cashier_to_check_id() -> None:
    till = Till()
    till.keys("5", "OK")
    till.swipe()
    till.feed(AuthResult(till.now_s, 1, AuthOutcome.APPROVED, "08", "A1B2C3"))
    assert till.state.phase is Phase.APPROVED
    assert "APPROVED CHECK ID" in till.screen_text and "Auth A1B2C3" in till.screen_text
    assert till.records()[-1].txn.status is TxnStatus.APPROVED


@pytest.mark.parametrize(("card", "reason"), [(EXPIRED, "EXPIRED CARD"), (BAD_LUHN, "INVALID")])
def test_cards_failing_local_checks_are_declined_without_the_host(card: Card, reason: str) -> None:
    till = Till()
    till.keys("9", "OK")
    effects = till.swipe(card)
    assert not [e for e in effects if isinstance(e, Authorize | Record)]
    assert till.state.phase is Phase.DECLINED and reason in till.screen_text


def test_offline_under_floor_limit_is_approved_offline_and_journaled_pending() -> None:
    till = Till()
    till.link(LinkStatus.OFFLINE, "DNS")
    assert SetLeds(green=False, red=True) in till.effects
    till.keys("2", "5", "0", "0", "OK")
    effects = till.swipe()
    record = next(e for e in effects if isinstance(e, Record))
    assert record.txn.mode is TxnMode.OFFLINE and record.txn.status is TxnStatus.PENDING
    assert not [e for e in effects if isinstance(e, Authorize)]
    assert till.state.phase is Phase.OFFLINE_APPROVED and "OFFLINE" in till.screen_text


def test_offline_over_floor_limit_walks_the_cashier_through_cash_with_change() -> None:
    till = Till()
    till.link(LinkStatus.OFFLINE, "REFUSED")
    till.keys("4", "2", "1", "0", "OK")
    assert till.state.phase is Phase.CASH_ONLY
    assert "CASH ONLY" in till.screen_text and "EUR 42.10" in till.screen_text
    till.keys("OK", "5", "0", "0", "0")
    assert till.state.tendered_minor == 5000
    effects = till.feed(KeyPressed(till.now_s, Key.OK))
    kinds = [type(e) for e in effects]
    assert kinds.index(Record) < kinds.index(OpenDrawer) < kinds.index(Show)
    sale = till.records()[-1].txn
    assert (sale.kind, sale.status, sale.change_minor) == (TxnKind.CASH, TxnStatus.COMPLETED, 790)
    assert till.state.phase is Phase.CHANGE and "EUR 7.90" in till.screen_text


def test_short_tender_is_refused_and_ok_alone_means_exact_cash() -> None:
    till = Till()
    till.link(LinkStatus.OFFLINE)
    till.keys("3", "0", "0", "0", "OK", "OK", "1", "0", "OK")
    assert till.state.phase is Phase.TENDER and "Less than total" in till.screen_text
    till.keys("CLEAR", "CLEAR", "OK")
    assert till.state.phase is Phase.CHANGE and till.records()[-1].txn.change_minor == 0


@pytest.mark.parametrize(
    "keys",
    [("1", "CANCEL"), ("1", "OK", "CANCEL"), ("9", "9", "9", "9", "OK", "CANCEL")],
)
def test_cancel_at_any_waiting_step_returns_to_idle(keys: tuple[str, ...]) -> None:
    till = Till()
    till.link(LinkStatus.OFFLINE)
    till.keys(*keys)
    assert till.state.phase is Phase.IDLE and "Cancelled" in till.screen_text


def test_cancel_in_cash_tender_returns_to_idle_and_records_nothing() -> None:
    till = Till()
    till.link(LinkStatus.OFFLINE)
    till.keys("9", "9", "9", "9", "OK", "OK", "5", "CANCEL")
    assert till.state.phase is Phase.IDLE and not till.records()


@pytest.mark.parametrize(
    ("keys", "timeout_s"),
    [(("1",), 60.0), (("1", "OK"), 30.0)],
)
def test_waiting_steps_time_out_to_idle(keys: tuple[str, ...], timeout_s: float) -> None:
    till = Till()
    till.keys(*keys)
    till.advance(timeout_s - 0.1)  # the fake timer does not fire early
    assert till.state.phase is not Phase.IDLE
    till.advance(timeout_s)
    assert till.state.phase is Phase.IDLE and "Timed out" in till.screen_text


def test_stale_timer_is_ignored() -> None:
    till = Till()
    till.keys("1")
    stale = till.state.timer_token
    till.keys("2")
    assert till.feed(TimerFired(1.0, TimerName.PHASE, stale)) == ()
    assert till.state.phase is Phase.AMOUNT


def test_auth_timeout_queues_a_reversal_then_decides_offline() -> None:
    till = Till(next_seq=10)
    till.keys("1", "0", "0", "0", "OK")
    till.swipe()
    till.feed(AuthResult(till.now_s, 10, AuthOutcome.TIMEOUT))
    first, second, third = (r.txn for r in till.records())
    assert first.status is TxnStatus.AUTHORIZING
    assert (second.seq, second.status) == (10, TxnStatus.REVERSAL_PENDING)
    assert (third.seq, third.status, third.reverses_seq) == (11, TxnStatus.PENDING, 10)
    assert till.state.phase is Phase.OFFLINE_APPROVED and till.state.next_seq == 12


def test_authorizing_guard_timer_counts_as_a_timeout() -> None:
    till = Till()
    till.keys("5", "0", "0", "0", "OK")
    till.swipe()
    till.advance(15.0)
    assert [r.txn.status for r in till.records()][-1] is TxnStatus.REVERSAL_PENDING
    assert till.state.phase is Phase.CASH_ONLY


def test_unreachable_host_reuses_the_unsent_seq_offline() -> None:
    till = Till(next_seq=3)
    till.keys("5", "0", "0", "OK")
    till.swipe()
    till.feed(AuthResult(till.now_s, 3, AuthOutcome.UNREACHABLE))
    last = till.records()[-1].txn
    assert (last.seq, last.status, last.mode) == (3, TxnStatus.PENDING, TxnMode.OFFLINE)
    assert till.state.next_seq == 4


def test_cancel_while_authorizing_is_refused() -> None:
    till = Till()
    till.keys("5", "OK")
    till.swipe()
    till.keys("CANCEL")
    assert till.state.phase is Phase.AUTHORIZING and "Please wait" in till.screen_text


def test_amount_over_the_maximum_is_refused_with_a_beep() -> None:
    till = Till(Settings(max_amount_minor=9999))
    till.keys("9", "9", "9", "9")
    effects = till.feed(KeyPressed(0.0, Key.D9))
    assert Beep(BeepPattern.ERROR) in effects and till.state.amount_minor == 9999
    assert "Max EUR 99.99" in till.screen_text


def test_swipe_while_no_card_is_wanted_says_so() -> None:
    till = Till()
    till.swipe()
    assert till.state.phase is Phase.IDLE and "amount first" in till.screen_text
    till.feed(CardUnreadable(0.0, "bad track"))
    assert till.state.phase is Phase.IDLE


def test_status_events_redraw_any_phase() -> None:
    till = Till()
    till.keys("1", "OK")
    till.feed(BacklogChanged(0.0, pending=3))
    assert "Q3" in till.screen_text
    till.feed(ReaderChanged(0.0, connected=False, detail="unplugged"))
    assert "READER DISCONNECTED" in till.screen_text
    till.link(LinkStatus.OFFLINE, "DNS")
    assert "OFFLINE DNS" in till.screen_text


def test_record_failure_is_a_storage_fault() -> None:
    till = Till()
    till.keys("1", "OK")
    till.swipe()
    till.feed(RecordFailed(0.0, 1, "disk full"))
    assert till.state.phase is Phase.STORAGE_FAULT and "STORAGE FAULT" in till.screen_text
    till.keys("OK")
    assert till.state.phase is Phase.IDLE


def test_a_storage_fault_during_a_sale_opens_the_drawer_for_the_cash_the_screen_asks_for() -> None:
    till = Till()
    till.keys("1", "5", "0", "FN", "OK")  # a cash sale of 1.50, exact money
    record = [e for e in till.effects if isinstance(e, Record)][-1]
    assert record.txn.status is TxnStatus.COMPLETED
    effects = till.feed(RecordFailed(0.0, record.txn.seq, "disk full"))  # its OpenDrawer never ran
    assert "Take cash" in till.screen_text
    assert [e for e in effects if isinstance(e, OpenDrawer)] == [OpenDrawer()]


def test_a_sale_leaves_nothing_behind_for_the_next_one() -> None:
    """The reason for CASH ONLY (and every other part of a sale) goes with the sale."""
    till = Till()
    till.link(LinkStatus.OFFLINE, "DNS")
    till.keys("9", "9", "9", "9", "OK")  # over the floor limit: CASH ONLY
    assert till.state.phase is Phase.CASH_ONLY and till.state.cash_reason
    till.keys("CANCEL")
    assert till.state.sale is None
    till.keys("1", "0", "0", "FN")  # the next sale goes to cash by FN, not by CASH ONLY
    assert till.state.phase is Phase.TENDER and till.state.cash_reason == ""


def test_pairs_outside_the_table_raise() -> None:
    with pytest.raises(TransitionError, match="not allowed in phase BOOTING"):
        step(TerminalState(), KeyPressed(0.0, Key.OK))


def test_every_phase_has_a_row_for_everything_a_cashier_can_do() -> None:
    cashier = {Trigger.DIGIT, Trigger.OK, Trigger.CLEAR, Trigger.CANCEL, Trigger.FN, Trigger.CARD}
    for phase, rows in TABLE.items():
        if phase is not Phase.BOOTING:
            assert cashier <= set(rows), phase


def test_fn_takes_cash_instead_of_a_card_online_too() -> None:
    till = Till()
    till.link(LinkStatus.ONLINE)
    till.keys("1", "2", "0", "0", "OK", "FN")
    assert till.state.phase is Phase.TENDER
    till.keys("2", "0", "0", "0", "OK")
    sale = till.records()[-1].txn
    assert (sale.kind, sale.mode, sale.change_minor) == (TxnKind.CASH, TxnMode.ONLINE, 800)
    till.keys("OK", "FN")
    assert till.state.phase is Phase.PIN_ENTRY  # FN in idle is still the (guarded) menu


def test_a_seq_taken_by_an_echo_moves_the_next_seq_past_it_in_every_phase() -> None:
    """The monitor's echoes take seqs (STANs) from the sales' counter at any moment."""
    from pitill.core.events import SeqTaken

    assert all(Trigger.SEQ_TAKEN in rows for rows in TABLE.values())
    handler = TABLE[Phase.AUTHORIZING][Trigger.SEQ_TAKEN]
    for phase in TABLE:
        state, effects = TABLE[phase][Trigger.SEQ_TAKEN](
            TerminalState(phase=phase, next_seq=7), SeqTaken(1.0, 7)
        )
        assert state.next_seq == 8 and state.phase is phase and not effects
    assert handler(TerminalState(next_seq=8), SeqTaken(2.0, 3))[0].next_seq == 8  # not back
    till = Till(next_seq=7)
    till.feed(SeqTaken(1.0, 7))
    till.keys("1", "2", "5", "0", "OK")
    effects = till.swipe()
    assert [e.txn.seq for e in effects if isinstance(e, Authorize)] == [8]

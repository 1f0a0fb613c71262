"""The host's answer to an 0200, one rule for every kind (machine.answered and unanswered): the
classes of answer pinned for a sale, a refund, a top-up and a balance inquiry, each kind's own
differences taken from its AnswerRules."""

from __future__ import annotations

import pytest
from till import GOOD, Till

from pitill.core import staffed
from pitill.core.effects import OpenDrawer, Record
from pitill.core.events import AuthOutcome, AuthResult, Booted, RecentSalesFound, SeqTaken
from pitill.core.machine import (
    SALE_ANSWERS,
    AnswerRules,
    HostOnly,
    OfflineRule,
    Result,
    answered,
    unanswered,
)
from pitill.core.refund import REFUND_ANSWERS
from pitill.core.responses import AnswerKind, ResponseClass, codes_of, screen_text
from pitill.core.state import Phase, Settings
from pitill.core.txn import SaleOnRecord, Txn
from pitill.core.types import LinkStatus, OfflineMode, TxnKind, TxnMode, TxnStatus

RULES: dict[str, AnswerRules] = {
    "sale": SALE_ANSWERS,
    "refund": REFUND_ANSWERS,
    "topup": staffed.ANSWERS[TxnKind.TOPUP],
    "balance": staffed.ANSWERS[TxnKind.BALANCE],
}
OFFLINE_KINDS = ("sale", "refund")  # decided without the host, each within its own limits
HOST_ONLY_KINDS = ("topup", "balance")
# Where each kind stands once decided offline, and where it goes when that is refused.
OFFLINE_PHASE = {"sale": Phase.OFFLINE_APPROVED, "refund": Phase.REFUNDED}
REFUSED_PHASE = {"sale": Phase.CASH_ONLY, "refund": Phase.REFUND_DECLINED}
RETRY_CODES = sorted(codes_of(AnswerKind.SALE, ResponseClass.RETRY))
FINAL_CODES = ["05", "51", "94", "XX"]  # "94" is RETRY for an advice, final for an 0200
SEQ = 20


def in_flight(kind: str, mode: OfflineMode = OfflineMode.PREFER_ONLINE) -> Till:
    """A terminal whose 0200 of this kind (8.00, within every offline limit) is in flight."""
    till = Till(Settings(mode=mode), booted=Booted(0.0, next_seq=SEQ, pin_set=True))
    till.link(LinkStatus.ONLINE)
    if kind == "sale":
        till.keys("8", "0", "0", "OK")
    elif kind == "refund":
        sold = SaleOnRecord(7, TxnKind.CARD, TxnMode.ONLINE, TxnStatus.APPROVED, 1250, "EUR",
                            GOOD.masked_pan, 60.0, False)  # fmt: skip
        till.open_menu()
        till.keys("4")
        till.feed(RecentSalesFound(till.now_s, (sold,)))
        till.keys("OK", "8", "0", "0", "OK")
    else:
        till.open_menu()
        till.keys("7", "8", "0", "0", "OK") if kind == "topup" else till.keys("8")
    till.swipe()
    txn = till.state.txn
    assert txn is not None and (txn.seq, txn.status) == (SEQ, TxnStatus.AUTHORIZING)
    return till


def answer(kind: str, outcome: AuthOutcome, code: str = "", **kw: object) -> tuple[Till, Result]:
    till = in_flight(kind, **kw)  # type: ignore[arg-type]
    event = AuthResult(till.now_s, SEQ, outcome, code, "A1B2C3", balance_minor=750)
    return till, answered(till.state, event, RULES[kind])


def rows(result: Result) -> list[Txn]:
    return [e.txn for e in result[1] if isinstance(e, Record)]


def test_only_a_sale_and_a_refund_are_ever_decided_without_the_host() -> None:
    assert all(isinstance(RULES[k].without_host, OfflineRule) for k in OFFLINE_KINDS)
    assert all(isinstance(RULES[k].without_host, HostOnly) for k in HOST_ONLY_KINDS)


@pytest.mark.parametrize("code", RETRY_CODES)
@pytest.mark.parametrize("kind", OFFLINE_KINDS)
def test_a_retry_class_decline_is_decided_offline_within_the_limits(kind: str, code: str) -> None:
    _, result = answer(kind, AuthOutcome.DECLINED, code)
    declined, pending = rows(result)  # the STAN is settled, then a row of its own offline
    assert (declined.seq, declined.status, declined.response_code) == (
        SEQ,
        TxnStatus.DECLINED,
        code,
    )
    assert (pending.seq, pending.mode, pending.status, pending.response_code) == (
        SEQ + 1,
        TxnMode.OFFLINE,
        TxnStatus.PENDING,
        "Y3",
    )
    assert result[0].phase is OFFLINE_PHASE[kind]


@pytest.mark.parametrize("kind", OFFLINE_KINDS)
def test_a_retry_class_decline_beyond_the_offline_rules_is_refused(kind: str) -> None:
    _, result = answer(kind, AuthOutcome.DECLINED, "91", mode=OfflineMode.REQUIRE_ONLINE)
    assert [(t.status, t.response_code) for t in rows(result)] == [(TxnStatus.DECLINED, "91")]
    assert result[0].phase is REFUSED_PHASE[kind]


@pytest.mark.parametrize("code", FINAL_CODES)
@pytest.mark.parametrize("kind", RULES)
def test_a_final_decline_ends_in_the_kinds_declined_phase(kind: str, code: str) -> None:
    _, result = answer(kind, AuthOutcome.DECLINED, code)
    (declined,) = rows(result)
    assert (declined.status, declined.response_code) == (TxnStatus.DECLINED, code)
    assert result[0].phase is RULES[kind].declined_phase
    assert result[0].decline_reason == screen_text(code)


@pytest.mark.parametrize("kind", OFFLINE_KINDS)
def test_never_sent_is_decided_offline_under_the_same_seq(kind: str) -> None:
    _, result = answer(kind, AuthOutcome.UNREACHABLE)
    (pending,) = rows(result)  # the host knows nothing of it: the seq is reused, not wasted
    assert (pending.seq, pending.mode, pending.status) == (SEQ, TxnMode.OFFLINE, TxnStatus.PENDING)
    assert result[0].phase is OFFLINE_PHASE[kind] and result[0].next_seq == SEQ + 1


@pytest.mark.parametrize("kind", OFFLINE_KINDS)
def test_never_sent_reuses_its_seq_but_never_one_an_echo_took_meanwhile(kind: str) -> None:
    till = in_flight(kind)
    till.feed(SeqTaken(till.now_s, SEQ + 1))  # an 0800 went out while the 0200 was tried
    event = AuthResult(till.now_s, SEQ, AuthOutcome.UNREACHABLE)
    result = answered(till.state, event, RULES[kind])
    (pending,) = rows(result)
    assert pending.seq == SEQ and result[0].next_seq == SEQ + 2  # not the echo's STAN again


@pytest.mark.parametrize("kind", OFFLINE_KINDS)
def test_never_sent_in_online_only_mode_is_the_terminals_decline(kind: str) -> None:
    _, result = answer(kind, AuthOutcome.UNREACHABLE, mode=OfflineMode.REQUIRE_ONLINE)
    (undone,) = rows(result)
    assert (undone.seq, undone.status, undone.response_code) == (SEQ, TxnStatus.DECLINED, "Z3")
    assert result[0].phase is REFUSED_PHASE[kind]


@pytest.mark.parametrize("kind", OFFLINE_KINDS)
def test_no_answer_is_reversed_then_decided_offline(kind: str) -> None:
    till = in_flight(kind)
    txn = till.state.txn
    assert txn is not None
    reversed_, pending = rows(unanswered(till.state, txn, RULES[kind]))
    assert (reversed_.seq, reversed_.status) == (SEQ, TxnStatus.REVERSAL_PENDING)
    assert (pending.seq, pending.status, pending.reverses_seq) == (
        SEQ + 1,
        TxnStatus.PENDING,
        SEQ,
    )


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (AuthOutcome.DECLINED, "91"),
        (AuthOutcome.UNREACHABLE, ""),
        (AuthOutcome.TIMEOUT, ""),
    ],
)
@pytest.mark.parametrize("kind", HOST_ONLY_KINDS)
def test_a_top_up_or_a_balance_inquiry_is_never_decided_offline(
    kind: str, outcome: AuthOutcome, code: str
) -> None:
    _, result = answer(kind, outcome, code)
    (row,) = rows(result)  # its own row ends, no offline row is written
    assert row.seq == SEQ and row.mode is TxnMode.ONLINE
    assert result[0].phase is RULES[kind].declined_phase and result[0].next_seq == SEQ + 1
    assert not any(isinstance(e, OpenDrawer) for e in result[1])  # no cash is taken
    sent_money = kind == "topup" and outcome is AuthOutcome.TIMEOUT  # maybe credited
    assert row.status is (TxnStatus.REVERSAL_PENDING if sent_money else TxnStatus.DECLINED)
    reasons = {"91": screen_text("91"), "": staffed.UNREACHABLE}
    reason = staffed.NO_ANSWER if outcome is AuthOutcome.TIMEOUT else reasons[code]
    assert result[0].decline_reason == reason


@pytest.mark.parametrize("kind", RULES)
def test_an_approval_is_journaled_with_the_balance_the_kind_keeps(kind: str) -> None:
    _, result = answer(kind, AuthOutcome.APPROVED, "00")
    (approved,) = rows(result)
    assert (approved.status, approved.auth_code) == (TxnStatus.APPROVED, "A1B2C3")
    assert approved.balance_minor == (750 if RULES[kind].keeps_balance else None)
    assert result[0].phase is RULES[kind].approved_phase
    drawer = [i for i, e in enumerate(result[1]) if isinstance(e, OpenDrawer)]
    assert drawer == ([1] if kind == "topup" else [])  # the cash goes in after the Record


@pytest.mark.parametrize("kind", RULES)
def test_an_answer_for_another_seq_changes_nothing(kind: str) -> None:
    till = in_flight(kind)
    late = AuthResult(till.now_s, SEQ - 1, AuthOutcome.APPROVED, "00")
    assert answered(till.state, late, RULES[kind]) == (till.state, ())

"""Offline you can trust: modes, every offline limit, the remaining budget, the FN menu."""

from __future__ import annotations

import pytest
from till import GOOD, Till

from pitill.card.model import Card
from pitill.core.effects import Authorize, Beep, Record, RequestReport, SaveMode, Show
from pitill.core.events import (
    AuthOutcome,
    AuthResult,
    BacklogChanged,
    Booted,
    ClockChecked,
    KeyPressed,
    ReportReady,
)
from pitill.core.state import OfflineLimits, Phase, Settings
from pitill.core.types import BeepPattern, Key, LinkStatus, OfflineMode, TxnStatus
from pitill.core.views import CLOCK_WRONG_LINE

OTHER = Card(pan="5555555555554444", expiry_yymm="3012")


def offline_till(**limits: float) -> Till:
    till = Till(Settings(limits=OfflineLimits(**limits)))  # type: ignore[arg-type]
    till.link(LinkStatus.OFFLINE, "DNS")
    return till


def sell(till: Till, amount: str, card: Card = GOOD) -> None:
    till.keys(*amount, "OK")
    if till.state.phase is Phase.AWAIT_CARD:
        till.swipe(card)


def test_count_limit_turns_the_next_sale_into_cash_and_says_which_limit() -> None:
    till = offline_till(max_count=2, max_per_card=10)
    for _ in range(2):
        sell(till, "100")
        assert till.state.phase is Phase.OFFLINE_APPROVED
        till.keys("OK")
    sell(till, "100")
    assert till.state.phase is Phase.CASH_ONLY and "Limit: 2 offline sales" in till.screen_text


def test_total_amount_limit() -> None:
    till = offline_till(max_total_minor=3000, max_per_card=10)
    sell(till, "2000")
    till.keys("OK")
    sell(till, "1500")
    assert till.state.phase is Phase.CASH_ONLY and "Limit: EUR 30.00 offline" in till.screen_text


def test_per_card_limit_is_the_journal_count_the_swipe_carries() -> None:
    till = offline_till(max_per_card=2)
    till.keys(*"100", "OK")
    till.swipe(GOOD, offline_sales_of_card=1)  # one offline sale of this card in the journal
    assert till.state.phase is Phase.OFFLINE_APPROVED
    till.keys("OK", *"100", "OK")
    till.swipe(GOOD, offline_sales_of_card=2)
    assert till.state.phase is Phase.CASH_ONLY and "card 2x offline" in till.screen_text
    till.keys("CANCEL")
    sell(till, "100", OTHER)
    assert till.state.phase is Phase.OFFLINE_APPROVED
    till.keys("OK")


def test_the_host_returning_briefly_resets_no_per_card_count() -> None:
    """The core keeps no per-card memory that a link change could clear: the count comes from
    the journal with each swipe, whatever the link did in between."""
    till = offline_till(max_per_card=1)
    till.link(LinkStatus.ONLINE)
    till.link(LinkStatus.OFFLINE, "REFUSED")
    till.keys(*"100", "OK")
    till.swipe(GOOD, offline_sales_of_card=1)
    assert till.state.phase is Phase.CASH_ONLY and "card 1x offline" in till.screen_text


def test_per_card_count_also_decides_after_a_timed_out_authorization() -> None:
    till = Till(Settings(limits=OfflineLimits(max_per_card=1)))
    till.link(LinkStatus.ONLINE)
    till.keys(*"100", "OK")
    till.swipe(GOOD, offline_sales_of_card=1)
    assert till.state.phase is Phase.AUTHORIZING
    seq = till.records()[-1].txn.seq
    till.feed(AuthResult(till.now_s, seq, AuthOutcome.TIMEOUT))
    assert till.state.phase is Phase.CASH_ONLY and "card 1x offline" in till.screen_text
    assert [r.txn.status for r in till.records()] == [
        TxnStatus.AUTHORIZING,
        TxnStatus.REVERSAL_PENDING,
    ]


def test_age_limit_and_the_alarm_before_it() -> None:
    till = offline_till(max_age_s=100.0, age_alarm_s=80.0)
    effects = till.feed(BacklogChanged(0.0, 1, offline_count=1, offline_minor=100, oldest_age_s=85))
    assert Beep(BeepPattern.ALERT) in effects and "FORWARD SOON" in till.screen_text
    till.feed(BacklogChanged(0.0, 1, offline_count=1, offline_minor=100, oldest_age_s=101))
    sell(till, "100")
    assert till.state.phase is Phase.CASH_ONLY and "oldest sale" in till.screen_text


def test_require_online_mode_never_approves_a_card_offline() -> None:
    till = Till(Settings(mode=OfflineMode.REQUIRE_ONLINE))
    till.link(LinkStatus.OFFLINE, "REFUSED")
    assert "Online-only" in till.screen_text
    sell(till, "100")
    assert till.state.phase is Phase.CASH_ONLY and "online only" in till.screen_text
    assert not till.records()


def test_force_offline_decides_offline_even_when_probes_pass() -> None:
    till = Till(Settings(mode=OfflineMode.FORCE_OFFLINE))
    till.link(LinkStatus.ONLINE)
    sell(till, "100")
    assert not [e for e in till.effects if isinstance(e, Authorize)]
    assert till.state.phase is Phase.OFFLINE_APPROVED


def test_remaining_budget_is_on_the_idle_screen_while_offline() -> None:
    till = offline_till(max_count=5, max_total_minor=10_000)
    sell(till, "2000")
    till.keys("OK")
    till.feed(BacklogChanged(0.0, 1, offline_count=1, offline_minor=2000, oldest_age_s=3600))
    assert "Left 4x EUR 80.00 23h" in till.screen_text


@pytest.mark.parametrize("code", ["91", "96", "68", "19", "90"])  # 68 was a final decline here
def test_retry_later_answer_settles_the_stan_and_stands_in_offline(code: str) -> None:
    till = Till(next_seq=5)
    sell(till, "100")
    till.feed(AuthResult(0.0, 5, AuthOutcome.DECLINED, code))
    statuses = [(r.txn.seq, r.txn.status) for r in till.records()]
    assert statuses[-2:] == [(5, TxnStatus.DECLINED), (6, TxnStatus.PENDING)]
    assert till.state.phase is Phase.OFFLINE_APPROVED


def test_fn_menu_switches_mode_and_shows_the_report() -> None:
    till = Till()
    till.open_menu()
    assert till.state.phase is Phase.MENU and "prefer online" in till.screen_text
    till.keys("1")
    assert till.state.mode is OfflineMode.REQUIRE_ONLINE and "require online" in till.screen_text
    till.keys("1", "1")
    assert till.state.mode is OfflineMode.PREFER_ONLINE
    till.keys("2")
    assert till.state.phase is Phase.REPORT
    assert any(isinstance(e, RequestReport) for e in till.effects)
    lines = ("Card online 2", "Card offline 1", "Cash 1", "Declined after 0")
    till.feed(ReportReady(0.0, lines))
    assert "Card online 2" in till.screen_text and "Declined after" not in till.screen_text
    till.keys("OK")
    assert "Declined after 0" in till.screen_text
    till.keys("OK")
    assert till.state.phase is Phase.IDLE


def test_a_mode_chosen_from_the_menu_is_saved_and_wins_at_the_next_boot() -> None:
    till = Till()
    effects = [*till.open_menu(), *till.feed(KeyPressed(0.0, Key.D1))]
    assert SaveMode(OfflineMode.REQUIRE_ONLINE) in effects
    assert effects.index(SaveMode(OfflineMode.REQUIRE_ONLINE)) < effects.index(
        next(e for e in effects if isinstance(e, Show) and "require online" in e.screen.text())
    )
    rebooted = Till.booted(Booted(0.0, next_seq=1, mode=OfflineMode.REQUIRE_ONLINE))
    assert rebooted.state.mode is OfflineMode.REQUIRE_ONLINE  # the config said prefer online
    assert Till().state.mode is OfflineMode.PREFER_ONLINE  # nothing saved: the config's mode


def test_a_wrong_clock_shows_on_the_idle_screen_and_never_hides_the_amount() -> None:
    till = Till()
    till.feed(ClockChecked(0.0, wrong=True))
    assert CLOCK_WRONG_LINE in till.screen_text and "Key in an amount" in till.screen_text
    till.keys(*"1250")
    assert "EUR 12.50" in till.screen_text and CLOCK_WRONG_LINE not in till.screen_text
    till.keys("CANCEL", "CLEAR")  # CLEAR dismisses the "Cancelled" notice
    assert CLOCK_WRONG_LINE in till.screen_text
    till.feed(ClockChecked(0.0, wrong=False))
    assert CLOCK_WRONG_LINE not in till.screen_text


def test_offline_sale_counts_toward_the_budget_at_once() -> None:
    till = offline_till()
    sell(till, "1000")
    assert (till.state.offline_count, till.state.offline_minor) == (1, 1000)
    assert any(isinstance(e, Record) for e in till.effects)

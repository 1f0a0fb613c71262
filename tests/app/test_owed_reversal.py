"""A charged card is always reversed or kept, without a restart.

The host approved the sale, then the journal refused the write of that approval (disk full): the
reversal is owed. It is kept in memory and retried, recorded or sent, whichever works first; it is
sent while the disk is still full, and recorded (with the host's answer) once the disk recovers.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from shell_kit import GOOD, ShellRig

from pitill.core.screens import Screen
from pitill.core.state import Phase
from pitill.core.types import LinkStatus, TxnStatus
from pitill.logs import FIELDS_ATTR


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[ShellRig]:
    rig = ShellRig(tmp_path)
    rig.link(LinkStatus.ONLINE)
    yield rig
    rig.close()


def approved_but_not_recorded(rig: ShellRig) -> None:
    rig.keys("1", "0", "0", "0", "OK")
    rig.swipe()
    assert rig.phase is Phase.AUTHORIZING and rig.status_of(1) is TxnStatus.AUTHORIZING
    rig.journal.full = True
    rig.answer(1, "approve")
    assert rig.phase is Phase.STORAGE_FAULT
    assert rig.indicators.drawer_pulses == 1  # "Take cash": the customer pays cash instead


def test_the_reversal_goes_while_the_disk_is_full_and_is_recorded_when_it_recovers(
    rig: ShellRig,
) -> None:
    approved_but_not_recorded(rig)
    assert rig.upstream.reversed == {1: 1}, "the owed reversal was not sent at once"
    assert rig.status_of(1) is TxnStatus.AUTHORIZING and 1 in rig.terminal.owed
    for _ in range(3):  # the disk is still full: retried, never sent twice
        assert rig.fire_timer()
    assert rig.upstream.reversed == {1: 1} and rig.status_of(1) is TxnStatus.AUTHORIZING
    rig.journal.full = False
    while 1 in rig.terminal.owed:
        assert rig.fire_timer()
    assert rig.status_of(1) is TxnStatus.REVERSED  # what happened, recorded: no restart
    assert rig.upstream.reversed == {1: 1}


def test_an_owed_reversal_waits_for_the_host_then_goes_at_once(rig: ShellRig) -> None:
    rig.upstream.reachable = False
    approved_but_not_recorded(rig)
    rig.link(LinkStatus.OFFLINE)
    for _ in range(3):
        assert rig.fire_timer()
    assert rig.upstream.reversed == {} and 1 in rig.terminal.owed
    rig.upstream.reachable = True
    rig.link(LinkStatus.ONLINE)  # no timer needed: the link coming back sends it
    assert rig.upstream.reversed == {1: 1}
    assert rig.status_of(1) is TxnStatus.AUTHORIZING  # the disk is still full


def test_an_owed_reversal_recorded_first_is_the_forwarders(rig: ShellRig) -> None:
    rig.upstream.reachable = False
    approved_but_not_recorded(rig)
    rig.journal.full = False
    while 1 in rig.terminal.owed:
        assert rig.fire_timer()
    assert rig.status_of(1) is TxnStatus.REVERSAL_PENDING and rig.upstream.reversed == {}
    rig.upstream.reachable = True
    rig.link(LinkStatus.OFFLINE)
    rig.link(LinkStatus.ONLINE)
    assert rig.status_of(1) is TxnStatus.REVERSED and rig.upstream.reversed == {1: 1}


def test_an_unknown_outcome_that_cannot_be_recorded_is_owed_too(rig: ShellRig) -> None:
    rig.keys("1", "0", "0", "0", "OK")
    rig.swipe()
    rig.journal.full = True
    rig.answer(1, "timeout")  # sent, no answer: the host may have charged it
    assert rig.phase is Phase.STORAGE_FAULT
    assert rig.upstream.reversed == {1: 1} and rig.status_of(1) is TxnStatus.AUTHORIZING


def test_an_owed_reversal_carries_the_sales_card(rig: ShellRig) -> None:
    rig.keys("1", "0", "0", "0", "OK")
    rig.swipe()
    rig.journal.full = True
    rig.answer(1, "timeout")  # not journaled: the shell sends it from memory
    assert rig.upstream.reversed == {1: 1} and rig.upstream.reversal_cards[1] == GOOD


def test_a_journaled_reversal_carries_the_sales_card_and_it_is_wiped_at_the_0430(
    rig: ShellRig,
) -> None:
    rig.keys("1", "0", "0", "0", "OK")
    rig.swipe()
    assert sealed_reversal_card(rig, 1) is not None  # sealed before the 0200 went
    rig.upstream.reachable = False
    rig.answer(1, "timeout")
    assert rig.status_of(1) is TxnStatus.REVERSAL_PENDING and sealed_reversal_card(rig, 1)
    rig.upstream.reachable = True
    rig.link(LinkStatus.OFFLINE)
    rig.link(LinkStatus.ONLINE)
    assert rig.status_of(1) is TxnStatus.REVERSED and rig.upstream.reversal_cards[1] == GOOD
    assert sealed_reversal_card(rig, 1) is None


def test_a_reversal_the_host_refuses_is_logged_and_never_counted_reversed(
    rig: ShellRig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.keys("1", "0", "0", "0", "OK")
    rig.swipe()
    rig.upstream.reachable = False
    rig.answer(1, "timeout")
    assert rig.status_of(1) is TxnStatus.REVERSAL_PENDING
    rig.upstream.reachable, rig.upstream.reversal_code = True, "30"  # format error
    rig.link(LinkStatus.OFFLINE)
    rig.link(LinkStatus.ONLINE)
    assert rig.status_of(1) is TxnStatus.REVERSAL_REFUSED and rig.upstream.reversed == {1: 1}
    assert sealed_reversal_card(rig, 1) is None  # not sent again: no need for the card
    refused = [r for r in caplog.records if r.getMessage() == "reversal_refused"]
    assert [getattr(r, FIELDS_ATTR) for r in refused] == [{"seq": 1, "code": "30"}]
    assert refused[0].levelno == logging.ERROR


def sealed_reversal_card(rig: ShellRig, seq: int) -> bytes | None:
    with sqlite3.connect(rig.journal.path) as raw:
        (blob,) = raw.execute("SELECT reversal_card FROM txns WHERE seq = ?", (seq,)).fetchone()
    raw.close()
    return blob  # type: ignore[no-any-return]


def test_a_cash_sale_on_a_full_disk_opens_the_drawer_the_screen_asks_for(rig: ShellRig) -> None:
    rig.journal.full = True
    rig.keys("4", "5", "0", "FN", "OK")  # cash, exact money: its Record fails
    assert rig.phase is Phase.STORAGE_FAULT
    assert rig.terminal.screen is not None and "Take cash" in rig.terminal.screen.text()
    assert rig.indicators.drawer_pulses == 1 and rig.status_of(1) is None


def test_a_reversal_the_disk_takes_is_written_before_the_fault_screen(rig: ShellRig) -> None:
    """A failed commit may come back from the WAL at the next open: if the terminal dies right
    after the STORAGE FAULT screen, the reversal's row must already supersede it."""
    rig.keys("1", "0", "0", "0", "OK")
    rig.swipe()
    at_fault_screen: list[TxnStatus | None] = []

    def note(screen: Screen, image: object) -> None:
        if screen.title == "STORAGE FAULT":
            at_fault_screen.append(rig.status_of(1))

    rig.terminal.screen_listeners.append(note)
    rig.journal.fail_in = 1  # only the APPROVED write fails
    rig.answer(1, "approve")
    assert at_fault_screen[0] is TxnStatus.REVERSAL_PENDING and not rig.terminal.owed

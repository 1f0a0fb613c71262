"""The shell never re-enters the machine: one FIFO; all of a step's effects before the next."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from shell_kit import ACKNOWLEDGED_TITLES, ShellRig

from pitill.core.events import ReaderChanged
from pitill.core.state import Phase
from pitill.core.types import Key, TxnStatus
from pitill.errors import ReentryError

KEPT = (TxnStatus.APPROVED, TxnStatus.PENDING, TxnStatus.COMPLETED)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[ShellRig]:
    rig = ShellRig(tmp_path)
    yield rig
    rig.close()


def test_an_effect_that_steps_the_core_itself_raises(rig: ShellRig) -> None:
    rig.terminal.screen_listeners.append(lambda screen, image: rig.terminal.drain())
    with pytest.raises(ReentryError, match="re-entered while a step ran"):
        rig.keys("1")


def test_an_event_from_inside_an_effect_waits_for_the_rest_of_the_step(rig: ShellRig) -> None:
    taken_at: list[int] = []

    def report_from_effect(screen: object, image: object) -> None:
        if not taken_at:
            taken_at.append(rig.terminal.steps)
            rig.terminal.enqueue(ReaderChanged(rig.terminal.now_s(), False, "unplugged"))

    rig.terminal.screen_listeners.append(report_from_effect)
    rig.keys("5")
    # Queued during the key's step, taken as the next step, after the key's effects.
    assert rig.terminal.steps == taken_at[0] + 1
    assert rig.phase is Phase.AMOUNT and not rig.terminal.state.reader_connected


def test_a_failed_record_is_taken_before_anything_already_queued(rig: ShellRig) -> None:
    """A timed-out 0200 queues its reversal (that write works, so the backlog changes and
    BacklogChanged is queued), then the offline approval's write fails. The backlog event must
    not redraw the OFFLINE APPROVED screen of a sale the journal refused."""
    rig.keys("1", "0", "0", "0", "OK")
    rig.swipe()
    assert rig.phase is Phase.AUTHORIZING
    rig.journal.fail_on = "seq 2"  # the offline re-do of the sale gets seq 2
    rig.answer(1, "timeout")
    assert rig.phase is Phase.STORAGE_FAULT
    assert rig.status_of(1) is TxnStatus.REVERSAL_PENDING and rig.status_of(2) is None
    for shown in rig.shown:
        if shown.screen.title in ACKNOWLEDGED_TITLES:
            assert shown.status in KEPT, f"{shown.screen.text()!r} shown for a sale not kept"


def test_the_report_runs_off_the_loop_and_comes_back_as_an_event(rig: ShellRig) -> None:
    rig.keys("2", "0", "0", "OK", "FN")
    assert rig.phase is Phase.TENDER
    rig.keys("OK")  # exact money: cash sale of 2.00 journaled
    rig.keys("OK")
    assert rig.open_menu()
    right_after: list[tuple[str, ...]] = []

    def press_2() -> None:  # the step ends before the query does: the key is not kept waiting
        rig.terminal.dispatch_key(Key.parse("2"))
        right_after.append(rig.terminal.state.report_lines)

    rig.on_loop(press_2)
    assert right_after == [("Reading journal",)] and rig.phase is Phase.REPORT
    assert rig.settle_until(lambda: rig.terminal.state.report_lines != ("Reading journal",))
    assert rig.terminal.state.report_lines[2] == "Cash 1 2.00"

"""Echo STANs come from the sales' counter: the Terminal's take_stan (the client's StanSource)
takes the next seq, the journal keeps it taken and the core moves past it, so no STAN is used
twice for different messages of the terminal. A real Terminal and SQLite journal (ShellRig)."""

from __future__ import annotations

from pathlib import Path

from shell_kit import GOOD, TODAY, ShellRig

from pitill.core.events import CardSwiped
from pitill.core.screens import Screen
from pitill.core.state import Phase
from pitill.core.txn import stan_for
from pitill.core.types import LinkStatus, TxnStatus
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import Journal


def take(rig: ShellRig) -> int:
    stans: list[int] = []
    rig.on_loop(lambda: stans.append(rig.terminal.take_stan()))  # as the monitor does
    return stans[0]


def test_an_echo_and_the_sales_around_it_never_share_a_stan(tmp_path: Path) -> None:
    rig = ShellRig(tmp_path)
    try:
        rig.link(LinkStatus.ONLINE)
        first = take(rig)
        assert first == stan_for(1)
        rig.keys("1", "0", "0", "0", "OK")
        rig.swipe()
        assert rig.phase is Phase.AUTHORIZING
        assert rig.terminal.state.txn is not None and rig.terminal.state.txn.seq == 2
        during = take(rig)  # an echo while the sale waits for its answer
        assert during == stan_for(3)
        rig.answer(2, "approve")
        assert rig.status_of(2) is TxnStatus.APPROVED
        rig.keys("OK")
        rig.keys("2", "0", "0", "OK")
        rig.swipe()
        assert rig.terminal.state.txn is not None and rig.terminal.state.txn.seq == 4
        rig.answer(4, "approve")
    finally:
        rig.close()
    after = Journal.open(tmp_path, Sealer.load_or_create(tmp_path / KEY_FILE_NAME))
    try:
        assert after.next_seq() == 5  # a restart does not hand out an echo's seq again
        stans = {after.get(seq).stan for seq in (2, 4) if after.get(seq) is not None}
        assert stans == {stan_for(2), stan_for(4)} and not stans & {first, during}
    finally:
        after.close()


def test_a_stan_taken_while_a_swipe_waits_in_the_queue_is_not_the_sales(tmp_path: Path) -> None:
    """take_stan called while the terminal drains its queue (a step's effects running) with a
    swipe already queued: its SeqTaken goes ahead of the swipe, so the sale takes the next seq,
    not the 0800's."""
    rig = ShellRig(tmp_path)
    taken: list[int] = []

    def on_screen(screen: Screen, image: object) -> None:
        if rig.terminal.state.phase is Phase.AWAIT_CARD and not taken:
            now_s = rig.terminal.now_s()
            rig.terminal.enqueue(CardSwiped(now_s, GOOD, TODAY))  # queued: a step is running
            taken.append(rig.terminal.take_stan())

    try:
        rig.link(LinkStatus.ONLINE)
        rig.terminal.screen_listeners.append(on_screen)
        rig.keys("1", "0", "0", "0", "OK")
        assert rig.phase is Phase.AUTHORIZING
        sale = rig.terminal.state.txn
        assert sale is not None and taken and sale.stan != taken[0]
        assert sale.seq == taken[0] + 1
    finally:
        rig.close()


def test_two_stans_taken_in_one_step_differ_while_the_journal_refuses_writes(
    tmp_path: Path,
) -> None:
    """A failing journal cannot keep the seq taken: the shell still never hands it out twice,
    even before the core took the first SeqTaken (both taken while a step's effects run)."""
    rig = ShellRig(tmp_path)
    taken: list[int] = []

    def on_screen(screen: Screen, image: object) -> None:
        if rig.terminal.state.phase is Phase.AWAIT_CARD and not taken:
            taken.extend((rig.terminal.take_stan(), rig.terminal.take_stan()))

    try:
        rig.link(LinkStatus.ONLINE)
        rig.terminal.screen_listeners.append(on_screen)
        rig.journal.full = True
        rig.keys("1", "0", "0", "0", "OK")
        assert len(set(taken)) == 2, taken
        assert rig.terminal.state.next_seq == max(taken) + 1
    finally:
        rig.close()

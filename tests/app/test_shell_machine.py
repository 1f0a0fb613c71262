"""A hypothesis state machine over the shell: a real Terminal (FIFO, effects, SQLite journal,
forwarder, dummy display) with keys, swipes, link changes, host answers in any order (late ones
included), fired timers and a disk that fills and recovers, interleaved at random.

Invariants, after every rule:
- no acknowledged sale missing from the journal: every APPROVED / CHANGE screen was drawn while
  its sale's row was durable, and the row still says so;
- no host approval without a kept sale or a reversal (queued, done, or owed in memory);
- no event taken from inside an effect (the FIFO's guard raises) and nothing left queued; no
  background task died.
At the end the disk recovers and the host comes back: every owed reversal lands, no restart.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from shell_kit import ACKNOWLEDGED_TITLES, GOOD, OTHER, ShellRig

from pitill.card.model import Card
from pitill.core.types import LinkStatus, TxnStatus

KEPT = frozenset(
    {
        TxnStatus.APPROVED,
        TxnStatus.PENDING,
        TxnStatus.FORWARDED,
        TxnStatus.DECLINED_AFTER,
        TxnStatus.COMPLETED,
    }
)
REVERSAL = frozenset({TxnStatus.REVERSAL_PENDING, TxnStatus.REVERSED})
EXPIRED = Card(pan="4000056655665556", expiry_yymm="2001")
KEYS = ("1", "2", "5", "0", "0", "OK", "OK", "CLEAR", "CANCEL", "FN")


class ShellMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="pitill-shell-"))
        self.rig = ShellRig(self.tmp)
        self.errors: list[dict[str, Any]] = []
        self.rig.loop.set_exception_handler(lambda loop, context: self.errors.append(context))
        self.acked: set[int] = set()

    # --- what happens to the terminal ----------------------------------------------------------

    @rule(key=st.sampled_from(KEYS))
    def press(self, key: str) -> None:
        self.rig.keys(key)

    @rule(digits=st.integers(min_value=1, max_value=9999))
    def key_in_an_amount(self, digits: int) -> None:
        self.rig.keys(*str(digits), "OK")

    @rule(digits=st.integers(min_value=1, max_value=3000), card=st.sampled_from((GOOD, OTHER)))
    def card_sale(self, digits: int, card: Card) -> None:
        """The common case, in one rule: an amount, OK and a swipe (from wherever it is)."""
        self.rig.keys(*str(digits), "OK")
        self.rig.swipe(card)

    @rule(card=st.sampled_from((GOOD, OTHER, EXPIRED)))
    def swipe(self, card: Card) -> None:
        self.rig.swipe(card)

    @rule(status=st.sampled_from((LinkStatus.ONLINE, LinkStatus.DEGRADED, LinkStatus.OFFLINE)))
    def link(self, status: LinkStatus) -> None:
        self.rig.link(status)

    @precondition(lambda self: bool(self.rig.upstream.waiting))
    @rule(
        pick=st.integers(min_value=0, max_value=3),
        how=st.sampled_from(("approve", "approve", "decline", "retry", "timeout", "unreachable")),
        fault=st.sampled_from(("", "", "full", "write 1", "write 2")),
    )
    def host_answers(self, pick: int, how: str, fault: str) -> None:
        """Any request in flight, in any order (an answer after the sale moved on is late),
        sometimes with the disk failing just before: a full disk or the next writes-th write."""
        if fault == "full":
            self.rig.journal.full = True
        elif fault:
            self.rig.journal.fail_in = int(fault.split()[1])
        waiting = sorted(self.rig.upstream.waiting)
        self.rig.answer(waiting[pick % len(waiting)], how)

    @rule()
    def time_passes(self) -> None:
        self.rig.fire_timer()

    @rule(full=st.booleans())
    def disk(self, full: bool) -> None:
        self.rig.journal.full = full

    @rule(writes=st.integers(min_value=1, max_value=3))
    def disk_fails_once(self, writes: int) -> None:
        """The writes-th journal write from now fails, once (an EIO, a transient ENOSPC)."""
        self.rig.journal.fail_in = writes

    @rule(reachable=st.booleans())
    def host(self, reachable: bool) -> None:
        self.rig.upstream.reachable = reachable

    # --- what must always hold -------------------------------------------------------------

    @invariant()
    def no_acknowledged_sale_missing_from_the_journal(self) -> None:
        for shown in self.rig.shown:
            if shown.screen.title in ACKNOWLEDGED_TITLES:
                assert shown.status in KEPT, (
                    f"{shown.screen.text()!r} was drawn while seq {shown.seq} was {shown.status}"
                )
                self.acked.add(shown.seq)
        self.rig.shown.clear()
        for seq in self.acked:
            assert self.rig.status_of(seq) in KEPT, f"acknowledged seq {seq} is not kept"

    @invariant()
    def no_host_approval_without_a_kept_sale_or_a_reversal(self) -> None:
        for seq in self.rig.upstream.approved:
            status = self.rig.status_of(seq)
            assert (
                status is TxnStatus.APPROVED or status in REVERSAL or seq in self.rig.terminal.owed
            ), f"the host charged seq {seq}; the journal says {status} and no reversal is owed"

    @invariant()
    def every_event_taken_outside_any_effect(self) -> None:
        assert not self.rig.terminal._draining and not self.rig.terminal._queue
        assert self.errors == [], self.errors

    def teardown(self) -> None:
        try:
            self.rig.journal.full = False
            self.rig.upstream.reachable = True
            self.rig.link(LinkStatus.ONLINE)
            for _ in range(20):  # the owed-reversal retries (no restart)
                if not self.rig.terminal.owed:
                    break
                self.rig.fire_timer()
            assert not self.rig.terminal.owed, f"still owed: {sorted(self.rig.terminal.owed)}"
            for seq in self.rig.upstream.approved:
                assert self.rig.status_of(seq) in (TxnStatus.APPROVED, *REVERSAL)
        finally:
            self.rig.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


ShellMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    derandomize=True,  # the same interleavings in every run: CI's verdict does not depend on luck
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestShellMachine = ShellMachine.TestCase

"""The forwarder against an in-process host: order, exactly once, backoff, offline, cancellation."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from journal_helpers import OpenJournal, offline_sale, online_sale, row_of

from pitill.config import UpstreamConfig
from pitill.core.responses import ResponseClass, advice_class, is_response_code
from pitill.core.types import TxnStatus
from pitill.errors import SealError, UpstreamError, UpstreamTimeout
from pitill.journal.forwarder import (
    Forwarder,
    ForwardFailure,
    ForwardReport,
    WindowSize,
    heal_delay_s,
)
from pitill.journal.store import Journal
from pitill.records import ForwardItem, ForwardKind

RETRY_S = 0.001
RETRY_MAX_S = 0.008
FAST = UpstreamConfig(
    forward_retry_s=RETRY_S, forward_retry_max_s=RETRY_MAX_S, forward_jitter_s=0.0
)
SERIAL = dataclasses.replace(FAST, forward_window=1)  # one in flight: the order is exact

# What the host does with one message (consumed per seq, in order; "00" once a script runs out):
UNREACHABLE = "unreachable"  # never reaches the host: UpstreamError
LOST_ANSWER = "lost answer"  # the host applies it, the answer is lost: UpstreamTimeout
HANG = "hang"  # no answer ever (until cancelled)


class FakeHost:
    """An AdviceSender that behaves like the acquirer: applies each STAN once, flags duplicates."""

    def __init__(self, script: dict[int, list[str]] | None = None) -> None:
        self.script = {seq: list(steps) for seq, steps in (script or {}).items()}
        self.received: list[tuple[ForwardKind, int, bool]] = []  # (kind, seq, repeat flag)
        self.applied: Counter[int] = Counter()  # financial effect per seq: must end at 1 each
        self.unflagged_duplicates: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.on_message: Callable[[int], None] = lambda seq: None

    async def send_advice(self, item: ForwardItem) -> str:
        assert item.kind is ForwardKind.ADVICE and item.card is not None
        assert item.card.pan.isdigit()  # the card arrives unsealed for the 0220
        return await self._handle(item)

    async def send_reversal(self, item: ForwardItem) -> str:
        assert item.kind is ForwardKind.REVERSAL
        assert item.card is None or item.card.pan.isdigit()  # the 0420's card, unsealed
        return await self._handle(item)

    async def _handle(self, item: ForwardItem) -> str:
        seq = item.row.seq
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # give a second sender the chance to (wrongly) start
            self.on_message(seq)
            steps = self.script.get(seq)
            outcome = steps.pop(0) if steps else "00"
            if outcome == UNREACHABLE:
                raise UpstreamError(f"connection refused sending seq {seq}")
            if outcome == HANG:
                await asyncio.Event().wait()
            self.received.append((item.kind, seq, item.repeat))
            if self.applied[seq] and not item.repeat:
                self.unflagged_duplicates.append(seq)
            if is_response_code(outcome) and advice_class(outcome) is ResponseClass.RETRY:
                return outcome  # not applied: the issuer was not reached
            self.applied[seq] = 1  # dedup on STAN: a repeat never applies twice
            if outcome == LOST_ANSWER:
                raise UpstreamTimeout(f"no answer to seq {seq}")
            return outcome
        finally:
            self.in_flight -= 1

    def first_seen(self) -> list[int]:
        order: list[int] = []
        for _, seq, _ in self.received:
            if seq not in order:
                order.append(seq)
        return order


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the loop run until `condition` holds; bounded, not timed."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never happened: {what}")


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


class Recorder:
    def __init__(self) -> None:
        self.backlog: list[int] = []
        self.failures: list[ForwardFailure] = []


def make_forwarder(
    journal: Journal, host: FakeHost, seed: int = 7, upstream: UpstreamConfig = SERIAL
) -> tuple[Forwarder, Recorder]:
    seen = Recorder()
    forwarder = Forwarder(
        journal,
        host,
        upstream,
        rng=random.Random(seed),
        on_backlog=seen.backlog.append,
        on_failure=seen.failures.append,
    )
    return forwarder, seen


def final_entries(journal: Journal, seq: int) -> int:
    finals = {TxnStatus.FORWARDED, TxnStatus.DECLINED_AFTER, TxnStatus.REVERSED}
    return sum(entry.status in finals for entry in journal.history(seq))


def test_drains_reversals_first_then_advices_exactly_once_through_failures(
    journal: Journal,
) -> None:
    for seq in (1, 3, 4, 6, 8):
        journal.record(offline_sale(seq))
    for seq in (2, 5, 7):
        journal.record(online_sale(seq).with_status(TxnStatus.REVERSAL_PENDING))
    host = FakeHost({3: [UNREACHABLE, LOST_ANSWER, "91", "00"], 5: [LOST_ANSWER], 6: ["05"]})

    async def scenario() -> None:
        forwarder, seen = make_forwarder(journal, host)
        forwarder.start()
        forwarder.set_online(True)
        await until(lambda: journal.pending_count() == 0, "backlog drained")
        await forwarder.stop()

        assert host.first_seen() == [2, 5, 7, 1, 3, 4, 6, 8]
        assert host.max_in_flight == 1
        assert host.applied == dict.fromkeys((1, 2, 3, 4, 5, 6, 7, 8), 1)
        assert host.unflagged_duplicates == []
        repeats = [(seq, repeat) for _, seq, repeat in host.received if seq in (3, 5)]
        assert repeats == [(5, False), (5, True), (3, True), (3, True), (3, True)]
        for seq in range(1, 9):
            assert final_entries(journal, seq) == 1, seq
        assert row_of(journal, 6).status is TxnStatus.DECLINED_AFTER
        assert row_of(journal, 2).status is TxnStatus.REVERSED
        stats = forwarder.stats
        assert (stats.sent, stats.acknowledged, stats.retries) == (12, 8, 4)
        assert stats.repeats == 4
        # Reported after each batch's commit: it only ever falls, and ends at zero.
        assert seen.backlog[0] == 8 and seen.backlog[-1] == 0
        assert seen.backlog == sorted(seen.backlog, reverse=True)
        assert [(f.seq, f.link_failure, f.response_code) for f in seen.failures] == [
            (5, True, ""),
            (3, True, ""),
            (3, True, ""),
            (3, False, "91"),
        ]

    run(scenario())


def test_advice_answers_are_read_with_the_response_table(journal: Journal) -> None:
    """68 goes again later; 08 and 94 (a repeat the host already holds) are taken; 05 is final."""
    for seq in (1, 2, 3):
        journal.record(offline_sale(seq))
    host = FakeHost({1: ["68", "08"], 2: ["94"], 3: ["05"]})

    async def scenario() -> None:
        forwarder, seen = make_forwarder(journal, host)
        forwarder.start()
        forwarder.set_online(True)
        await until(lambda: journal.pending_count() == 0, "backlog drained")
        await forwarder.stop()
        assert [(f.seq, f.link_failure, f.response_code) for f in seen.failures] == [
            (1, False, "68")
        ]
        statuses = [row_of(journal, seq).status for seq in (1, 2, 3)]
        assert statuses == [TxnStatus.FORWARDED, TxnStatus.FORWARDED, TxnStatus.DECLINED_AFTER]
        assert [row_of(journal, seq).response_code for seq in (1, 2, 3)] == ["08", "94", "05"]

    run(scenario())


def test_backoff_doubles_with_jitter_and_stays_within_bounds(journal: Journal) -> None:
    forwarder, _ = make_forwarder(journal, FakeHost())
    for failures in range(1, 12):
        cap_s = min(RETRY_MAX_S, RETRY_S * 2 ** (failures - 1))
        delay_s = forwarder.backoff_s(failures)
        assert max(RETRY_S, cap_s / 2) <= delay_s <= cap_s
    twin, _ = make_forwarder(journal, FakeHost())
    again, _ = make_forwarder(journal, FakeHost())
    assert [twin.backoff_s(n) for n in range(1, 9)] == [again.backoff_s(n) for n in range(1, 9)]
    assert forwarder.backoff_s(10_000) <= RETRY_MAX_S  # no overflow after a very long outage


def test_retries_back_off_growing_then_capped(journal: Journal) -> None:
    journal.record(offline_sale(1))
    host = FakeHost({1: ["96"] * 7})

    async def scenario() -> None:
        forwarder, seen = make_forwarder(journal, host)
        forwarder.start()
        forwarder.set_online(True)
        await until(lambda: journal.pending_count() == 0, "sale forwarded after 7 retries")
        await forwarder.stop()
        delays = [f.retry_in_s for f in seen.failures]
        assert len(delays) == 7
        assert delays[0] == RETRY_S
        assert all(RETRY_S <= d <= RETRY_MAX_S for d in delays)
        assert min(delays[4:]) >= RETRY_MAX_S / 2 > delays[0]  # grown to the cap, jittered
        assert host.applied == {1: 1} and host.received[-1] == (ForwardKind.ADVICE, 1, True)

    run(scenario())


def test_going_offline_stops_the_drain_and_coming_back_resumes_it(journal: Journal) -> None:
    journal.record(offline_sale(1))
    journal.record(offline_sale(2))
    host = FakeHost({1: [UNREACHABLE]})

    async def scenario() -> None:
        forwarder, seen = make_forwarder(journal, host)
        host.on_message = lambda seq: forwarder.set_online(False)  # the link drops mid-send
        forwarder.start()
        forwarder.set_online(True)
        await until(lambda: len(seen.failures) == 1, "first send failed")
        for _ in range(20):  # many backoff periods: an online forwarder would have resent
            await asyncio.sleep(RETRY_MAX_S)
        assert forwarder.stats.sent == 1 and not forwarder.online
        forwarder.kick()  # a new sale while offline: still nothing is sent
        await asyncio.sleep(RETRY_MAX_S)
        assert forwarder.stats.sent == 1

        host.on_message = lambda seq: None
        forwarder.set_online(True)
        await until(lambda: journal.pending_count() == 0, "drained after the link came back")
        await forwarder.stop()
        assert host.first_seen() == [1, 2] and host.applied == {1: 1, 2: 1}

    run(scenario())


def test_kick_wakes_an_idle_forwarder_and_reports_the_backlog(journal: Journal) -> None:
    host = FakeHost()

    async def scenario() -> None:
        forwarder, seen = make_forwarder(journal, host)
        forwarder.set_online(True)
        forwarder.start()
        await until(lambda: seen.backlog == [0], "initial backlog reported")
        journal.record(offline_sale(1))
        forwarder.kick()
        await until(lambda: forwarder.stats.acknowledged == 1, "kicked sale forwarded")
        await forwarder.stop()
        assert seen.backlog == [0, 1, 0]

    run(scenario())


def test_cancelled_mid_send_the_next_run_sends_a_repeat(open_journal: OpenJournal) -> None:
    journal = open_journal()
    journal.record(offline_sale(1))
    hanging = FakeHost({1: [HANG]})

    async def first_boot() -> None:
        forwarder, _ = make_forwarder(journal, hanging)
        task = forwarder.start()
        forwarder.set_online(True)
        await until(lambda: hanging.in_flight == 1, "send in flight")
        await forwarder.stop()
        assert task.cancelled()

    run(first_boot())
    assert hanging.received == []
    journal.close()  # power cut after the attempt was counted

    rebooted = open_journal()
    host = FakeHost()

    async def second_boot() -> None:
        forwarder, _ = make_forwarder(rebooted, host)
        forwarder.set_online(True)
        forwarder.start()
        await until(lambda: rebooted.pending_count() == 0, "forwarded after reboot")
        await forwarder.stop()

    run(second_boot())
    assert host.received == [(ForwardKind.ADVICE, 1, True)]  # 0221: the host may have seen it
    assert row_of(rebooted, 1).attempts == 2


def test_unopenable_card_data_is_reported_not_skipped(journal: Journal) -> None:
    journal.record(offline_sale(1))
    journal.record(offline_sale(2))
    with sqlite3.connect(journal.path) as raw:  # someone altered the sealed blob of seq 1
        raw.execute("UPDATE txns SET sealed_card = ? WHERE seq = 1", (b"\x07" * 61,))
    raw.close()
    host = FakeHost()

    async def scenario() -> None:
        forwarder, seen = make_forwarder(journal, host)
        forwarder.set_online(True)
        forwarder.start()
        await until(lambda: len(seen.failures) >= 3, "failures reported")
        await forwarder.stop()
        assert host.received == []  # seq 2 never overtakes seq 1
        failure = seen.failures[0]
        assert isinstance(failure.error, SealError) and not failure.link_failure
        assert "malformed" in failure.reason

    run(scenario())
    assert journal.pending_count() == 2


@pytest.mark.parametrize("online", [False, True])
def test_nothing_is_sent_before_the_link_is_up(journal: Journal, online: bool) -> None:
    journal.record(offline_sale(1))
    host = FakeHost()

    async def scenario() -> None:
        forwarder, _ = make_forwarder(journal, host)
        forwarder.start()
        forwarder.set_online(online)
        for _ in range(10):
            await asyncio.sleep(0)
        if online:
            await until(lambda: forwarder.stats.acknowledged == 1, "forwarded")
        await forwarder.stop()
        assert forwarder.stats.sent == (1 if online else 0)
        assert len(host.received) == forwarder.stats.sent

    run(scenario())


def test_reports_each_batch_once_as_sent_and_once_as_answered(journal: Journal) -> None:
    for seq in (1, 3, 4):
        journal.record(offline_sale(seq))
    journal.record(online_sale(2).with_status(TxnStatus.REVERSAL_PENDING))
    host = FakeHost({4: ["05"]})
    reports: list[ForwardReport] = []

    async def scenario() -> None:
        forwarder = Forwarder(journal, host, FAST, on_report=reports.append)
        forwarder.start()
        forwarder.set_online(True)
        await until(lambda: journal.pending_count() == 0, "backlog drained")
        await forwarder.stop()

    run(scenario())
    assert [r.stage for r in reports] == ["sending", "answered"]  # one batch, not one per message
    sending, answered = reports
    reversal, advice = ForwardKind.REVERSAL, ForwardKind.ADVICE
    assert sending.items == (
        (2, reversal, False, ""),
        (1, advice, False, ""),
        (3, advice, False, ""),
        (4, advice, False, ""),
    )
    assert answered.items == (
        (2, reversal, False, "00"),
        (1, advice, False, "00"),
        (3, advice, False, "00"),
        (4, advice, False, "05"),
    )
    assert answered.left == 0


def test_a_batch_stopped_at_its_first_message_reports_no_answers(journal: Journal) -> None:
    for seq in (1, 2):
        journal.record(offline_sale(seq))
    host = FakeHost({1: ["91"]})
    reports: list[ForwardReport] = []
    failures: list[ForwardFailure] = []

    async def scenario() -> None:
        forwarder = Forwarder(
            journal, host, SERIAL, on_report=reports.append, on_failure=failures.append
        )
        forwarder.start()
        forwarder.set_online(True)
        await until(lambda: journal.pending_count() == 0, "backlog drained")
        await forwarder.stop()

    run(scenario())
    assert [r.stage for r in reports] == ["sending", "sending", "answered"]
    assert [r.items[0][3] for r in reports if r.stage == "answered"] == ["00"]
    assert failures[0].seq == 1 and failures[0].response_code == "91"


def test_stop_during_a_backoff_ends_even_when_a_kick_comes_at_the_same_moment(
    journal: Journal,
) -> None:
    # Python 3.11's asyncio.wait_for drops a cancel that arrives with the awaited event: the
    # backoff then waited out its whole delay and the terminal's stop hung for up to that long.
    journal.record(offline_sale(1))
    host = FakeHost({1: [UNREACHABLE] * 10})
    slow = UpstreamConfig(forward_retry_s=3600.0, forward_retry_max_s=3600.0)

    async def scenario() -> None:
        forwarder = Forwarder(journal, host, slow)
        task = forwarder.start()
        forwarder.set_online(True)
        await until(lambda: forwarder.stats.retries == 1, "in its backoff")
        forwarder.kick()  # the wake and the cancel land in the same turn of the loop
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5.0)
        assert task in done, "the forwarder ignored its cancellation"

    run(scenario())


def test_a_window_keeps_that_many_in_flight_and_commits_each_answer_once(
    journal: Journal,
) -> None:
    for seq in range(1, 41):
        journal.record(offline_sale(seq))
    host = FakeHost({7: [LOST_ANSWER], 20: ["91"]})
    window = dataclasses.replace(FAST, forward_window=8)

    async def scenario() -> None:
        forwarder, seen = make_forwarder(journal, host, upstream=window)
        forwarder.start()
        forwarder.set_online(True)
        await until(lambda: journal.pending_count() == 0, "backlog drained")
        await forwarder.stop()
        assert host.max_in_flight == forwarder.stats.max_in_flight == 8
        assert host.applied == dict.fromkeys(range(1, 41), 1)
        assert host.unflagged_duplicates == []
        # The two that failed went again, as repeats; nothing else was sent twice.
        sends = Counter(seq for _, seq, _ in host.received)
        assert {seq for seq, n in sends.items() if n > 1} == {7, 20}
        assert [(seq, rep) for _, seq, rep in host.received if seq in (7, 20)] == [
            (7, False),
            (7, True),
            (20, False),
            (20, True),
        ]
        for seq in range(1, 41):
            assert final_entries(journal, seq) == 1, seq
        assert forwarder.stats.acknowledged == 40
        assert [f.seq for f in seen.failures] == [7, 20]

    run(scenario())


def test_no_advice_leaves_while_a_reversal_is_unanswered(journal: Journal) -> None:
    for seq in (1, 3, 4, 6):
        journal.record(offline_sale(seq))
    for seq in (2, 5):
        journal.record(online_sale(seq).with_status(TxnStatus.REVERSAL_PENDING))
    host = FakeHost({5: [LOST_ANSWER, UNREACHABLE]})
    reversals_done: list[bool] = []
    answered: set[int] = set()
    send_reversal = host.send_reversal

    async def answered_reversal(item: ForwardItem) -> str:
        code = await send_reversal(item)
        answered.add(item.row.seq)
        return code

    host.send_reversal = answered_reversal  # type: ignore[method-assign]

    async def scenario() -> None:
        forwarder, _ = make_forwarder(journal, host, upstream=FAST)  # a window of 32

        def check(seq: int) -> None:
            if seq not in (2, 5):  # an advice: both reversals already answered for good
                reversals_done.append(answered == {2, 5})

        host.on_message = check
        forwarder.start()
        forwarder.set_online(True)
        await until(lambda: journal.pending_count() == 0, "backlog drained")
        await forwarder.stop()

    run(scenario())
    assert reversals_done == [True] * 4
    assert host.first_seen() == [2, 5, 1, 3, 4, 6]


class Highest(random.Random):
    """Draws the top of every range: the longest heal wait."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_after_a_heal_the_drain_waits_its_jitter_but_not_at_boot(journal: Journal) -> None:
    journal.record(offline_sale(1))
    journal.record(offline_sale(2))
    host = FakeHost()
    slow_heal = dataclasses.replace(FAST, forward_jitter_s=3600.0)
    waits_s: list[float] = []

    async def scenario() -> None:
        forwarder = Forwarder(journal, host, slow_heal, rng=Highest(), on_heal_wait=waits_s.append)
        forwarder.start()
        forwarder.set_online(True)  # the first link at boot: at once
        await until(lambda: forwarder.stats.acknowledged == 2, "boot backlog drained")
        assert forwarder.stats.heal_waits == 0
        forwarder.set_online(False)
        journal.record(offline_sale(3))
        forwarder.kick()
        forwarder.set_online(True)  # a heal: waits up to an hour (this rng: the hour)
        for _ in range(50):
            await asyncio.sleep(0.001)
        assert forwarder.stats.heal_waits == 1 and forwarder.stats.sent == 2
        assert waits_s == [3600.0]  # said once, so the log can tell why nothing is sent yet
        forwarder.kick()  # a new sale does not cut the wait short
        for _ in range(20):
            await asyncio.sleep(0.001)
        assert forwarder.stats.sent == 2
        await forwarder.stop()

    run(scenario())


def test_heal_delay_is_uniform_up_to_the_jitter_reproducible_and_off_at_zero() -> None:
    draws = [heal_delay_s(random.Random(5), 4.0) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]  # the same seed, the same wait
    spread = [heal_delay_s(random.Random(seed), 4.0) for seed in range(200)]
    assert all(0.0 <= d <= 4.0 for d in spread)
    assert min(spread) < 0.5 and max(spread) > 3.5  # spread over the whole range
    assert heal_delay_s(random.Random(5), 0.0) == 0.0


def test_the_window_grows_by_one_per_prompt_answer_and_halves_per_slow_one() -> None:
    size = WindowSize(limit=16, prompt_s=0.5)
    assert size.size == 1
    for n in range(20):  # prompt answers: one more each, up to the limit
        size.answered(sent_at=n, now=n + 0.03)
    assert size.size == 16
    size.answered(sent_at=100.0, now=100.5)  # exactly the threshold is still prompt
    assert size.size == 16
    size.answered(sent_at=100.0, now=101.0)  # a slow one: halved
    assert size.size == 8
    size.answered(sent_at=100.1, now=101.1)
    assert size.size == 4
    for n in range(5):
        size.answered(sent_at=200.0 + n, now=201.5 + n)
    assert size.size == 1  # never below one
    size.size = 9
    size.restart()
    assert size.size == 1


def test_a_host_answering_slowly_keeps_the_window_small(journal: Journal) -> None:
    for seq in range(1, 41):
        journal.record(offline_sale(seq))
    host = FakeHost()
    slow = dataclasses.replace(FAST, forward_window=16, slow_threshold_s=0.001)

    async def scenario() -> None:
        forwarder, _ = make_forwarder(journal, host, upstream=slow)
        original = host._handle

        async def slowly(item: ForwardItem) -> str:
            time.sleep(0.002)  # the host's queue: each answer takes longer than slow_threshold_s
            return await original(item)

        host._handle = slowly  # type: ignore[method-assign]
        forwarder.start()
        forwarder.set_online(True)
        await until(lambda: journal.pending_count() == 0, "backlog drained")
        await forwarder.stop()
        assert host.applied == dict.fromkeys(range(1, 41), 1)
        assert forwarder.stats.max_in_flight <= 2  # never opened up to 16

    run(scenario())


def test_a_backlog_of_many_batches_streams_each_attempt_durable_first_answers_once(
    journal: Journal,
) -> None:
    # A window of 8: batches of 32. The next batch is read ahead and its attempts committed
    # while the last ones are on the wire, so the window does not drain between batches.
    for seq in range(1, 101):
        journal.record(offline_sale(seq))
    host = FakeHost()
    reports: list[ForwardReport] = []
    durable_first: list[bool] = []
    before_committed: dict[int, TxnStatus] = {}

    def check(seq: int) -> None:
        row = journal.get(seq)  # what a crash now would leave: the attempt is committed
        durable_first.append(row is not None and row.attempts >= 1)
        before = journal.get(seq - 1)
        before_committed[seq] = before.status if before is not None else TxnStatus.FORWARDED

    host.on_message = check
    window = dataclasses.replace(FAST, forward_window=8)

    async def scenario() -> None:
        forwarder = Forwarder(journal, host, window, on_report=reports.append)
        forwarder.start()
        forwarder.set_online(True)
        await until(lambda: journal.pending_count() == 0, "backlog drained")
        await forwarder.stop()
        assert forwarder.stats.acknowledged == 100 and forwarder.stats.repeats == 0

    run(scenario())
    assert durable_first == [True] * 100
    # The first of each later batch left before the batch before it was answered and committed.
    assert [before_committed[seq] for seq in (33, 65, 97)] == [TxnStatus.PENDING] * 3
    batches = [list(range(1, 33)), list(range(33, 65)), list(range(65, 97)), [97, 98, 99, 100]]
    sent = [[item[0] for item in r.items] for r in reports if r.stage == "sending"]
    answered = [[item[0] for item in r.items] for r in reports if r.stage == "answered"]
    assert sent == answered == batches  # one commit per batch for each, in order
    assert host.applied == dict.fromkeys(range(1, 101), 1) and host.unflagged_duplicates == []
    assert [final_entries(journal, seq) for seq in range(1, 101)] == [1] * 100
    assert all(row.attempts == 1 for row in journal.rows())


def test_a_reversal_queued_while_advices_stream_goes_before_the_next_batch(
    journal: Journal,
) -> None:
    for seq in range(1, 65):
        journal.record(offline_sale(seq))
    host = FakeHost()
    reversal_answered: list[bool] = []
    answered_before: list[bool] = []  # per advice past the first batch
    send_reversal = host.send_reversal

    async def answered_reversal(item: ForwardItem) -> str:
        code = await send_reversal(item)
        reversal_answered.append(True)
        return code

    host.send_reversal = answered_reversal  # type: ignore[method-assign]

    def reversal_during_the_first_batch(seq: int) -> None:
        if seq == 10:  # a sale times out meanwhile: its reversal is owed
            journal.record(online_sale(65).with_status(TxnStatus.REVERSAL_PENDING))
        if 33 <= seq <= 64:
            answered_before.append(reversal_answered == [True])

    host.on_message = reversal_during_the_first_batch
    window = dataclasses.replace(FAST, forward_window=8)

    async def scenario() -> None:
        forwarder = Forwarder(journal, host, window)
        forwarder.start()
        forwarder.set_online(True)
        await until(lambda: journal.pending_count() == 0, "backlog drained")
        await forwarder.stop()

    run(scenario())
    order = host.first_seen()
    # What is on the wire (a window) finishes; the reversal goes before any advice not started.
    assert order.index(65) <= 10 + window.forward_window
    assert order.index(65) < min(order.index(seq) for seq in range(33, 65))
    assert answered_before == [True] * 32  # and was answered before any of them left
    assert host.applied == dict.fromkeys(range(1, 66), 1)


@pytest.mark.parametrize("at_send", [26, 100])
@pytest.mark.parametrize("other_connection", [False, True])
def test_a_reversal_recorded_after_the_read_ahead_goes_before_the_queued_advices(
    open_journal: OpenJournal, at_send: int, other_connection: bool
) -> None:
    """Advices already read ahead (up to a window plus a batch) do not go before a reversal
    recorded meanwhile, by the forwarder's connection or another one (the app's)."""
    journal = open_journal()
    recorder = open_journal() if other_connection else journal
    total = 300
    for seq in range(1, total + 1):
        journal.record(offline_sale(seq))
    host = FakeHost()
    sends: list[int] = []
    reversal = total + 1

    def reversal_at_a_late_send(seq: int) -> None:
        sends.append(seq)
        if len(sends) == at_send:  # a sale times out meanwhile: its reversal is owed
            recorder.record(online_sale(reversal).with_status(TxnStatus.REVERSAL_PENDING))

    host.on_message = reversal_at_a_late_send
    window = dataclasses.replace(FAST, forward_window=32)  # batches of 128, read ahead

    async def scenario() -> None:
        forwarder = Forwarder(journal, host, window)
        forwarder.start()
        forwarder.set_online(True)
        await until(lambda: journal.pending_count() == 0, "backlog drained")
        await forwarder.stop()

    run(scenario())
    order = host.first_seen()
    # Only what was already on the wire (one window at most) goes before the reversal.
    assert order.index(reversal) <= at_send + window.forward_window
    assert host.applied == dict.fromkeys(range(1, reversal + 1), 1)
    assert host.unflagged_duplicates == []

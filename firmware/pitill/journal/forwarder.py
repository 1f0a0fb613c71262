"""Store-and-forward: drains the journal's backlog upstream, in order, exactly once.

One asyncio task. Every reversal goes before any advice, each by seq (the journal decides the
order), and no advice leaves while a reversal of the batch is unanswered. Up to
upstream.forward_window messages are in flight at once (each in its own task; the sender matches
answers by STAN, upstream/window.py), started in that order and acknowledged in whatever order
the host answers; the window opens one more per prompt answer and halves when answers come
slowly (WindowSize), so a fleet healing together does not fill the host's queue. Before a send
the attempt is counted durably, so after a timeout, a reset or a
crash the next send is flagged as a repeat (0221 / 0421, same STAN) and the host deduplicates it:
resending can never charge twice. Each answer is committed once, with its batch.

After a heal (online, offline, online again; not the first link at boot) the drain starts after
a random wait in [0, forward_jitter_s] (heal_delay_s), so a fleet healing at once does not reach
the host all in one second.

A retry-later answer (core/responses.py: 19, 68, 90, 91, 96) or an upstream error backs off
exponentially with jitter, from forward_retry_s up to forward_retry_max_s, and is reported as a
passive signal for the connectivity monitor. Going offline stops the drain; coming online (or
kick()) resumes it.

It lives beside the store it drains and reaches the host only through the AdviceSender protocol
(app.py hands it the UpstreamClient): journal/ imports no upstream/, upstream/ no journal/, and
the records both use (ForwardItem, JournalRow) are in pitill/records.py.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pitill.config import UpstreamConfig
from pitill.core.responses import ResponseClass, advice_class
from pitill.errors import SealError, StorageError, UpstreamError
from pitill.journal.store import Journal
from pitill.records import ForwardItem, ForwardKind

BATCH_SIZE = 32  # messages whose attempts and answers share one commit


class AdviceSender(Protocol):
    """The upstream client as the forwarder uses it; each returns the host's response code.

    Raise UpstreamError when the message was not sent, UpstreamTimeout when it was sent and no
    answer came (outcome unknown). `item.repeat` says to use the repeat MTI (0221 / 0421).
    Called for up to forward_window items at once, each a distinct STAN.
    """

    async def send_advice(self, item: ForwardItem) -> str: ...

    async def send_reversal(self, item: ForwardItem) -> str: ...


@dataclass(frozen=True)
class ForwardFailure:
    """A failed forwarding attempt, reported to the connectivity monitor as a passive signal."""

    seq: int  # 0 when the journal failed before an item was chosen
    reason: str
    error: Exception | None  # UpstreamError / UpstreamTimeout, or a journal error
    response_code: str  # the retry code the host answered, "" when it did not answer
    retry_in_s: float

    @property
    def link_failure(self) -> bool:
        """True when the upstream link itself failed (the host answering 91 is not that)."""
        return isinstance(self.error, UpstreamError)


@dataclass(frozen=True)
class ForwardReport:
    """One batch, for the logs: about to be sent (codes "") or answered (each final code)."""

    stage: str  # "sending" or "answered"
    items: tuple[tuple[int, ForwardKind, bool, str], ...]  # (seq, kind, repeat, response code)
    left: int = 0  # answered stage: items of the batch not sent (the link went down)


@dataclass
class _Batch:
    """Items whose attempts are counted in one commit and whose answers share another."""

    items: list[ForwardItem]
    answers: dict[int, str] = field(default_factory=dict)  # final answers, by seq
    started: set[int] = field(default_factory=set)  # seqs handed to the sender

    @property
    def complete(self) -> bool:
        return len(self.answers) == len(self.items)


@dataclass
class ForwarderStats:
    sent: int = 0  # messages handed to the sender, repeats included
    repeats: int = 0  # of those, sent flagged as a repeat
    acknowledged: int = 0  # final answers recorded in the journal
    retries: int = 0  # failed attempts (retry code, upstream or journal error), each backed off
    max_in_flight: int = 0  # the most messages that were in flight at once
    heal_waits: int = 0  # heals whose drain waited its jitter first


@dataclass
class WindowSize:
    """How many messages may be in flight now, from 1 up to `limit` (upstream.forward_window).

    A prompt answer (round trip <= prompt_s, the link's slow_threshold_s) lets one more go: the
    window doubles every round trip while the host keeps up. A slow one halves it, and a failure
    or a heal starts it again from 1. So one terminal over a 30 ms WAN is at 32 within a few
    round trips, while 200 terminals healing at once shrink back as soon as the host's queue
    makes answers slow, instead of queueing 200 x 32 advices there, each past its timeout.
    `pitill host load` sizes its windows with this same rule.
    """

    limit: int
    prompt_s: float
    size: int = 1

    def answered(self, sent_at: float, now: float) -> None:
        if now - sent_at <= self.prompt_s:
            self.size = min(self.limit, self.size + 1)
        else:
            self.size = max(1, self.size // 2)

    def restart(self) -> None:
        self.size = 1


def heal_delay_s(rng: random.Random, jitter_s: float) -> float:
    """How long a terminal waits after a heal before it drains its backlog: uniform in
    [0, jitter_s] (0 disables). `pitill host load` spreads its fleet with this same rule."""
    return rng.uniform(0.0, jitter_s) if jitter_s > 0 else 0.0


class Forwarder:
    """Drains `journal` through `sender` while the link is up. Use from the event loop only.

    Backoff bounds come from upstream.forward_retry_s / forward_retry_max_s, the window from
    forward_window, the heal's wait from forward_jitter_s; `rng` makes the jitter reproducible in
    tests.
    """

    def __init__(
        self,
        journal: Journal,
        sender: AdviceSender,
        upstream: UpstreamConfig,
        *,
        rng: random.Random | None = None,
        on_backlog: Callable[[int], None] = lambda pending: None,
        on_failure: Callable[[ForwardFailure], None] = lambda failure: None,
        on_report: Callable[[ForwardReport], None] = lambda report: None,
        on_heal_wait: Callable[[float], None] = lambda delay_s: None,
    ) -> None:
        self._journal = journal
        self._sender = sender
        self._retry_s = upstream.forward_retry_s
        self._retry_max_s = max(upstream.forward_retry_max_s, upstream.forward_retry_s)
        limit = max(1, upstream.forward_window)
        self.window = WindowSize(limit, upstream.slow_threshold_s)
        self._batch = max(BATCH_SIZE, 4 * limit)  # two fsyncs per batch: amortized
        self._jitter_s = upstream.forward_jitter_s
        self._rng = rng or random.Random()
        self._on_backlog = on_backlog
        self._on_failure = on_failure
        self._on_report = on_report
        self._on_heal_wait = on_heal_wait
        self._online = False
        self._was_online = False  # the first link (at boot) is not a heal: no jitter
        self._healed = False  # online again since the last drain began: wait the jitter first
        self._link_epoch = 0  # bumped at every link change: cuts a backoff short
        self._wake = asyncio.Event()
        self._last_backlog: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.stats = ForwarderStats()

    @property
    def online(self) -> bool:
        return self._online

    def set_online(self, online: bool) -> None:
        """The monitor's verdict: drain while True; stop after the message in flight when False."""
        if online != self._online:
            self._online = online
            self._healed = online and self._was_online
            self._was_online = self._was_online or online
            self._link_epoch += 1
            self._wake.set()

    def kick(self) -> None:
        """A new item was recorded: report the backlog and wake the drain if it is idle."""
        self._report_backlog()
        self._wake.set()

    def backoff_s(self, failures: int) -> float:
        """Delay after `failures` consecutive failures: doubling, capped, jittered in [cap/2, cap].

        The jitter spreads the retries of many terminals coming back after the same outage.
        """
        cap_s = min(self._retry_max_s, self._retry_s * 2 ** min(failures - 1, 64))
        return self._rng.uniform(max(self._retry_s, cap_s / 2), cap_s)

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="forwarder")
        return self._task

    async def stop(self) -> None:
        """Cancel the task and wait for it; an attempt cut short is already counted (a repeat)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                if (current := asyncio.current_task()) is not None and current.cancelling():
                    raise  # we are being cancelled ourselves, not only the forwarder
            self._task = None

    async def run(self) -> None:
        """Forward until cancelled."""
        failures = 0
        self._report_backlog()
        while True:
            if not self._online:
                failures = 0  # a fresh link starts from the shortest delay
                await self._sleep_until_woken()
                continue
            if self._healed:  # online again after an outage (not the first link at boot)
                self._healed = False
                await self._heal_wait()
                continue
            self._wake.clear()  # before the query: a kick() from here on is not lost
            try:
                items = self._journal.next_forward_items(self._batch)
            except (StorageError, SealError) as exc:
                failures += 1
                await self._back_off(failures, seq=0, error=exc, response_code="")
                continue
            if not items:
                failures = 0
                await self._sleep_until_woken()
                continue
            failure = await self._forward(items)
            if failure is None:
                failures = 0
                continue
            failures += 1
            seq, error, response_code = failure
            await self._back_off(failures, seq, error, response_code)

    async def _forward(self, items: list[ForwardItem]) -> tuple[int, Exception | None, str] | None:
        """Send from `items` on; None when every item sent got its final answer, else (seq,
        error, retry code) of the first item that stopped the drain.

        A batch that holds a reversal is sent alone (its reversals answered before any advice
        leaves). A batch of advices is streamed: the next batches are read ahead."""
        if any(item.kind is ForwardKind.REVERSAL for item in items):
            return await self._forward_batch(items)
        return await self._stream(items)

    async def _forward_batch(
        self, items: list[ForwardItem]
    ) -> tuple[int, Exception | None, str] | None:
        """Send a batch, up to a window in flight; None when every item got its final answer,
        else (seq, error, retry code) of the first item that stopped the batch.

        Attempts are counted durably for the whole batch BEFORE the first send, and the answers
        are committed together after the last (or once the batch stopped and what was in flight
        came back): two fsyncs per batch instead of two per message. A crash in between only
        makes some messages go again, as repeats with the same key, which the host answers
        without charging twice. Items never started have their attempt taken back.
        """
        batch = _Batch(items)
        if (stopped := self._take(batch)) is not None:
            return stopped
        # Reversals first, all answered before any advice leaves: two windows, one after the other.
        reversals = [item for item in items if item.kind is ForwardKind.REVERSAL]
        advices = [item for item in items if item.kind is not ForwardKind.REVERSAL]
        stopped = await self._send_window(reversals, batch.answers, batch.started)
        if stopped is None and len(batch.answers) == len(reversals):
            stopped = await self._send_window(advices, batch.answers, batch.started)
        return self._settle(batch) or stopped

    async def _stream(self, first: list[ForwardItem]) -> tuple[int, Exception | None, str] | None:
        """Advices, batch after batch, with the window kept full across batches.

        Once the queue holds less than a window, the next batch is read (its cards unsealed)
        and its attempts counted durably, while the last ones are still on the wire; a batch
        whose every item is answered is committed at once, while the next ones are in flight
        (one commit per batch; make bench P4). The rules are those of a batch: no item leaves
        before its attempt is durable; answers are committed once, per batch; when the drain
        stops, what was answered is committed and what never left is taken back. A reversal
        recorded meanwhile (checked before advices are started, on the journal's cached count,
        which sees other connections' commits) ends the stream: no more advices start, those in
        flight are answered and committed, the queued ones are taken back, and run() sends the
        reversal before any further advice.
        """
        batches: deque[_Batch] = deque()
        queue: deque[tuple[_Batch, ForwardItem]] = deque()
        in_flight: dict[asyncio.Task[str], tuple[_Batch, ForwardItem]] = {}
        sent_at: dict[int, float] = {}
        loop = asyncio.get_running_loop()
        stopped: tuple[int, Exception | None, str] | None = None
        batch: _Batch | None = _Batch(first)
        more = len(first) == self._batch  # a full batch: the journal may hold more
        after = 0  # the last seq taken
        reversal_waiting = False  # a reversal was recorded: start no more advices
        try:
            while True:
                if batch is not None:  # a batch to take: its attempts counted, then queued
                    stopped = self._take(batch)
                    if stopped is None:
                        batches.append(batch)
                        queue.extend((batch, item) for item in batch.items)
                        after = batch.items[-1].row.seq
                    batch = None
                if stopped is None and queue and not reversal_waiting:
                    reversal_waiting, stopped = self._reversal_waiting()
                while (
                    stopped is None
                    and not reversal_waiting
                    and self._online
                    and len(in_flight) < self.window.size
                ):
                    if not queue:
                        break
                    owner, item = queue.popleft()
                    in_flight[asyncio.ensure_future(self._send(item))] = (owner, item)
                    sent_at[item.row.seq] = loop.time()
                    owner.started.add(item.row.seq)
                    self.stats.max_in_flight = max(self.stats.max_in_flight, len(in_flight))
                if (
                    more
                    and stopped is None
                    and not reversal_waiting
                    and self._online
                    and len(queue) < self.window.limit
                ):
                    items, stopped = self._read_ahead(after)
                    more = len(items) == self._batch
                    if items:
                        batch = _Batch(items)
                        continue  # taken before waiting: its first items fill the window
                if not in_flight:
                    break
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: in_flight[t][1].row.seq):
                    owner, item = in_flight.pop(task)
                    seq = item.row.seq
                    code, failed = self._answer(task, seq)
                    if code is None:
                        stopped = stopped or failed
                    else:
                        owner.answers[seq] = code
                        self.window.answered(sent_at.pop(seq), loop.time())
                while batches and batches[0].complete:  # in order, as they were taken
                    stopped = self._settle(batches.popleft()) or stopped
        finally:
            for task in in_flight:  # cancelled ourselves: what is in flight goes again later
                task.cancel()
            if in_flight:
                await asyncio.wait(in_flight)
        while batches:  # stopped, offline or done: answers committed, unsent taken back
            stopped = self._settle(batches.popleft()) or stopped
        return stopped

    def _reversal_waiting(self) -> tuple[bool, tuple[int, Exception | None, str] | None]:
        """Whether a reversal is waiting to go (it must not wait behind the advices read ahead);
        a journal error stops the stream."""
        try:
            return self._journal.reversals_pending_count() > 0, None
        except StorageError as exc:
            return False, (0, exc, "")

    def _read_ahead(
        self, after: int
    ) -> tuple[list[ForwardItem], tuple[int, Exception | None, str] | None]:
        """Up to a batch of the advices past seq `after`, none when a reversal is waiting (the
        stream ends: run() sends it first); a journal error stops the stream."""
        try:
            items = self._journal.next_forward_items(self._batch, advices_after=after)
        except (StorageError, SealError) as exc:
            return [], (0, exc, "")
        if any(item.kind is ForwardKind.REVERSAL for item in items):
            return [], None
        return items, None

    def _take(self, batch: _Batch) -> tuple[int, Exception | None, str] | None:
        """Count the batch's attempts durably (before any of it is sent) and report it."""
        seqs = [item.row.seq for item in batch.items]
        try:
            self._journal.mark_attempts(seqs)
        except StorageError as exc:
            return seqs[0], exc, ""
        self._on_report(ForwardReport("sending", _report_items(batch.items, {})))
        return None

    def _settle(self, batch: _Batch) -> tuple[int, Exception | None, str] | None:
        """Commit a batch's answers, in one transaction, and take back the attempts of its items
        never sent; the failure when the commit failed (they all go again, as repeats)."""
        seqs = [item.row.seq for item in batch.items]
        in_order = [(seq, batch.answers[seq]) for seq in seqs if seq in batch.answers]
        unsent = [seq for seq in seqs if seq not in batch.started]
        if not in_order and not unsent:
            return None
        try:
            self._journal.mark_forwarded_many(in_order, unsent, read_back=False)
        except StorageError as exc:
            return seqs[0], exc, ""  # they go again, as repeats the host deduplicates
        self.stats.acknowledged += len(in_order)
        if in_order:  # nothing answered: the failure report says why
            answered = [item for item in batch.items if item.row.seq in batch.answers]
            self._on_report(
                ForwardReport("answered", _report_items(answered, batch.answers), len(unsent))
            )
        self._report_backlog()
        return None

    async def _send_window(
        self, items: list[ForwardItem], answers: dict[int, str], started: set[int]
    ) -> tuple[int, Exception | None, str] | None:
        """Send `items` in order with up to forward_window in flight, until all are answered or
        one fails, answers a retry code, or the link goes down: then no more are started and
        those in flight are waited for. Final answers go into `answers`, by seq."""
        in_flight: dict[asyncio.Task[str], ForwardItem] = {}
        sent_at: dict[int, float] = {}
        loop = asyncio.get_running_loop()
        stopped: tuple[int, Exception | None, str] | None = None
        queue = iter(items)
        try:
            while True:
                while stopped is None and self._online and len(in_flight) < self.window.size:
                    item = next(queue, None)
                    if item is None:
                        break
                    in_flight[asyncio.ensure_future(self._send(item))] = item
                    sent_at[item.row.seq] = loop.time()
                    started.add(item.row.seq)
                    self.stats.max_in_flight = max(self.stats.max_in_flight, len(in_flight))
                if not in_flight:
                    return stopped
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: in_flight[t].row.seq):
                    seq = in_flight.pop(task).row.seq
                    code, failed = self._answer(task, seq)
                    if code is None:
                        stopped = stopped or failed
                    else:
                        answers[seq] = code
                        self.window.answered(sent_at[seq], loop.time())
        finally:
            for task in in_flight:  # cancelled ourselves: what is in flight goes again later
                task.cancel()
            if in_flight:
                await asyncio.wait(in_flight)

    def _answer(
        self, task: asyncio.Task[str], seq: int
    ) -> tuple[str | None, tuple[int, Exception | None, str] | None]:
        """What a finished send means, for the stream and the window alike: (final code, None),
        or (None, (seq, error, retry code)) when the link failed or the host said retry later
        (the window starts again from 1). Any other exception is a bug and is raised."""
        error = task.exception()
        if isinstance(error, UpstreamError):
            self.window.restart()
            return None, (seq, error, "")
        if error is not None:
            raise error  # a bug, not the link
        if advice_class(code := task.result()) is ResponseClass.RETRY:
            self.window.restart()
            return None, (seq, None, code)
        return code, None

    async def _send(self, item: ForwardItem) -> str:
        self.stats.sent += 1
        self.stats.repeats += item.repeat
        if item.kind is ForwardKind.REVERSAL:
            return await self._sender.send_reversal(item)
        return await self._sender.send_advice(item)

    async def _heal_wait(self) -> None:
        """After a heal: a random wait in [0, forward_jitter_s], cut short by a link change."""
        self.window.restart()
        delay_s = heal_delay_s(self._rng, self._jitter_s)
        if delay_s > 0:
            self.stats.heal_waits += 1
            self._on_heal_wait(delay_s)  # the log says why nothing is sent yet
            await self._wait_for_link_change(delay_s, self._link_epoch)

    async def _back_off(
        self, failures: int, seq: int, error: Exception | None, response_code: str
    ) -> None:
        delay_s = self.backoff_s(failures)
        self.stats.retries += 1
        # A link change ends the wait early, even one the report below causes at once; a kick()
        # does not (a busy shop must not defeat the backoff).
        epoch = self._link_epoch
        reason = f"host answered {response_code}" if response_code else str(error)
        self._on_failure(ForwardFailure(seq, reason, error, response_code, delay_s))
        await self._wait_for_link_change(delay_s, epoch)

    async def _wait_for_link_change(self, delay_s: float, epoch: int) -> None:
        """Sleep delay_s unless the link changed since `epoch`; a kick() does not end it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay_s
        while self._link_epoch == epoch and (remaining_s := deadline - loop.time()) > 0:
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining_s):
                    await self._wake.wait()
            except TimeoutError:
                return

    async def _sleep_until_woken(self) -> None:
        await self._wake.wait()
        self._wake.clear()

    def _report_backlog(self) -> None:
        try:
            pending = self._journal.pending_count()
        except StorageError:
            return  # the next change reports again
        if pending != self._last_backlog:
            self._last_backlog = pending
            self._on_backlog(pending)


def _report_items(
    items: list[ForwardItem], codes: dict[int, str]
) -> tuple[tuple[int, ForwardKind, bool, str], ...]:
    return tuple((i.row.seq, i.kind, i.repeat, codes.get(i.row.seq, "")) for i in items)

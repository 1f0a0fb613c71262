"""Store-and-forward: drains the journal's backlog upstream, strictly in order, exactly once.

One asyncio task, one message in flight. Every reversal goes before any advice, each by seq
(the journal decides the order). Before a send the attempt is counted durably, so after a
timeout or a crash the next send is flagged as a repeat (0221 / 0421, same STAN) and the host
deduplicates it: resending can never charge twice.

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
from collections.abc import Callable
from dataclasses import dataclass
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
class ForwarderStats:
    sent: int = 0  # messages handed to the sender, repeats included
    repeats: int = 0  # of those, sent flagged as a repeat
    acknowledged: int = 0  # final answers recorded in the journal
    retries: int = 0  # failed attempts (retry code, upstream or journal error), each backed off


class Forwarder:
    """Drains `journal` through `sender` while the link is up. Use from the event loop only.

    Backoff bounds come from upstream.forward_retry_s / forward_retry_max_s; `rng` makes the
    jitter reproducible in tests.
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
    ) -> None:
        self._journal = journal
        self._sender = sender
        self._retry_s = upstream.forward_retry_s
        self._retry_max_s = max(upstream.forward_retry_max_s, upstream.forward_retry_s)
        self._rng = rng or random.Random()
        self._on_backlog = on_backlog
        self._on_failure = on_failure
        self._on_report = on_report
        self._online = False
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
            self._wake.clear()  # before the query: a kick() from here on is not lost
            try:
                items = self._journal.next_forward_items(BATCH_SIZE)
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
        """Send a batch in order, one message in flight; None when every item got its final
        answer, else (seq, error, retry code) of the item that stopped the batch.

        Attempts are counted durably for the whole batch BEFORE the first send, and the answers
        are committed together after the last (or at the first failure): two fsyncs per batch
        instead of two per message. A crash in between only makes some messages go again, as
        repeats with the same key, which the host answers without charging twice.
        """
        seqs = [item.row.seq for item in items]
        try:
            self._journal.mark_attempts(seqs)
        except StorageError as exc:
            return seqs[0], exc, ""
        by_seq = {item.row.seq: item for item in items}
        self._on_report(ForwardReport("sending", _report_items(items, {})))
        answers: list[tuple[int, str]] = []
        stopped: tuple[int, Exception | None, str] | None = None
        sent = 0
        for item in items:
            sent += 1
            self.stats.sent += 1
            self.stats.repeats += item.repeat
            send = (
                self._sender.send_reversal
                if item.kind is ForwardKind.REVERSAL
                else self._sender.send_advice
            )
            try:
                code = await send(item)
            except UpstreamError as exc:
                stopped = (item.row.seq, exc, "")
                break
            if advice_class(code) is ResponseClass.RETRY:
                stopped = (item.row.seq, None, code)
                break
            answers.append((item.row.seq, code))
            if not self._online:
                break  # the link went down under us: keep what we have, stop sending
        unsent = seqs[sent:]
        if answers or unsent:
            try:
                self._journal.mark_forwarded_many(answers, unsent)
            except StorageError as exc:
                return seqs[0], exc, ""  # they go again, as repeats the host deduplicates
            self.stats.acknowledged += len(answers)
            if answers:  # nothing answered: the failure report says why
                answered = [by_seq[seq] for seq, _ in answers]
                self._on_report(
                    ForwardReport("answered", _report_items(answered, dict(answers)), len(unsent))
                )
            self._report_backlog()
        return stopped

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

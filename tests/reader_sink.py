"""A card reader's sink for tests: what the reader says, queued in order, and bounded waits on it.

Every reader (serial stripe, USB keyboard-wedge stripe, PN532 NFC) reports to a CardSink; tests
that start one give it a QueueSink instead of writing a sink of their own.
"""

from __future__ import annotations

import queue
import time

from pitill.card.model import Card

WAIT_S = 10.0  # the most a test waits for the reader thread; never reached when things work


class QueueSink:
    """Queues ("card", Card), ("unreadable", reason) and ("status", (connected, detail))."""

    def __init__(self) -> None:
        self.got: queue.Queue[tuple[str, object]] = queue.Queue()

    def card(self, card: Card) -> None:
        self.got.put(("card", card))

    def unreadable(self, reason: str) -> None:
        self.got.put(("unreadable", reason))

    def reader_status(self, connected: bool, detail: str) -> None:
        self.got.put(("status", (connected, detail)))

    def next(self) -> tuple[str, object]:
        """The next thing the reader said (AssertionError-free: queue.Empty after WAIT_S)."""
        return self.got.get(timeout=WAIT_S)

    def next_card(self) -> Card:
        kind, card = self.next()
        assert kind == "card" and isinstance(card, Card), (kind, card)
        return card

    def until_connected(self) -> str:
        """Skips statuses until the reader says it is connected (a busy machine can make a reader
        retry its first contact); the detail it gave."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            kind, status = self.next()
            assert kind == "status" and isinstance(status, tuple), (kind, status)
            connected, detail = status
            if connected:
                return str(detail)
        raise AssertionError(f"the reader did not connect within {WAIT_S} s")

"""LinkTracker: the monitor's hysteresis, driven by hand with a fake clock (no I/O, no sleeps)."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pitill.core.types import LinkStatus
from pitill.upstream.failures import LinkReason
from pitill.upstream.tracker import Change, LinkTracker, ProbeResult

ONLINE, OFFLINE, DEGRADED = LinkStatus.ONLINE, LinkStatus.OFFLINE, LinkStatus.DEGRADED
GOOD = ProbeResult.answered(0.01)
SLOW = ProbeResult.answered(0.9)
RETRY = ProbeResult.answered(0.01, "91")
REFUSED = ProbeResult.failed(LinkReason.REFUSED)
DNS = ProbeResult.failed(LinkReason.DNS)
TIMEOUT = ProbeResult.failed(LinkReason.TIMEOUT)


class Clocked:
    """A tracker fed one probe per 0.5 s of fake time; remembers every change."""

    def __init__(self, fail: int = 2, recover: int = 2) -> None:
        self.tracker = LinkTracker(fail, recover, slow_threshold_s=0.5)
        self.now_s = 0.0
        self.changes: list[tuple[float, Change]] = []

    def feed(self, *results: ProbeResult) -> list[Change]:
        new: list[Change] = []
        for result in results:
            self.now_s += 0.5
            change = self.tracker.observe_probe(self.now_s, result)
            if change is not None:
                new.append(change)
                self.changes.append((self.now_s, change))
        return new

    def passive(self, reason: LinkReason) -> Change | None:
        return self.tracker.observe_passive(self.now_s, reason)


def test_first_good_probe_goes_online_at_once() -> None:
    link = Clocked()
    assert link.tracker.status is LinkStatus.UNKNOWN
    assert link.feed(GOOD) == [(ONLINE, "")]
    assert link.feed(GOOD, GOOD) == []


def test_unknown_needs_the_threshold_to_go_offline() -> None:
    link = Clocked()
    assert link.feed(DNS) == []
    assert link.tracker.status is LinkStatus.UNKNOWN
    assert link.feed(DNS) == [(OFFLINE, "DNS")]


def test_offline_after_consecutive_failures_only() -> None:
    link = Clocked()
    link.feed(GOOD)
    assert link.feed(REFUSED, GOOD, GOOD, GOOD, REFUSED, GOOD) == []  # rare, isolated
    assert link.tracker.status is ONLINE
    link.feed(GOOD, GOOD, GOOD)
    assert link.feed(REFUSED, REFUSED) == [(OFFLINE, "REFUSED")]
    assert link.tracker.since_s == link.now_s


def test_recovery_needs_recover_threshold_good_probes() -> None:
    link = Clocked(fail=2, recover=3)
    link.feed(GOOD, TIMEOUT, TIMEOUT)
    assert link.feed(GOOD, GOOD) == []
    assert link.tracker.status is OFFLINE
    assert link.feed(GOOD) == [(ONLINE, "")]


def test_a_failure_restarts_the_recovery_count() -> None:
    link = Clocked()
    link.feed(GOOD, DNS, DNS)
    assert link.feed(GOOD, DNS, GOOD) == []
    assert link.feed(GOOD) == [(ONLINE, "")]


def test_new_reason_while_offline_is_a_change() -> None:
    link = Clocked()
    link.feed(GOOD, DNS, DNS)
    assert link.feed(DNS) == []
    assert link.feed(REFUSED) == [(OFFLINE, "REFUSED")]  # the name is back, the port is not
    assert link.feed(REFUSED) == []


def test_passive_failure_counts_as_one() -> None:
    link = Clocked()
    link.feed(GOOD)
    assert link.passive(LinkReason.TIMEOUT) is None
    assert link.feed(TIMEOUT) == [(OFFLINE, "TIMEOUT")]


def test_slow_answers_degrade_then_recover() -> None:
    link = Clocked()
    link.feed(GOOD)
    assert link.feed(SLOW) == []
    assert link.feed(SLOW) == [(DEGRADED, "SLOW")]
    assert link.feed(RETRY) == [(DEGRADED, "RETRY")]
    assert link.feed(GOOD) == []
    assert link.feed(GOOD) == [(ONLINE, "")]


def test_passive_retry_code_degrades() -> None:
    link = Clocked()
    link.feed(GOOD)
    link.passive(LinkReason.RETRY)
    assert link.passive(LinkReason.RETRY) == (DEGRADED, "RETRY")


def test_flapping_degrades() -> None:
    """Failures between answers never make two in a row, but the link is not healthy."""
    link = Clocked()
    link.feed(GOOD)
    assert link.feed(REFUSED, GOOD) == []
    assert link.feed(REFUSED) == [(DEGRADED, "REFUSED")]
    assert link.feed(REFUSED) == [(OFFLINE, "REFUSED")]


def test_offline_to_degraded_when_answers_are_slow() -> None:
    link = Clocked()
    link.feed(GOOD, TIMEOUT, TIMEOUT)
    assert link.feed(SLOW) == []
    assert link.feed(GOOD) == [(DEGRADED, "SLOW")]


def test_thresholds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="thresholds"):
        LinkTracker(0, 2)


results = st.sampled_from([GOOD, SLOW, RETRY, REFUSED, DNS, TIMEOUT])


@given(history=st.lists(results, max_size=30), fail=st.integers(1, 4), recover=st.integers(1, 4))
def test_thresholds_always_decide(history: list[ProbeResult], fail: int, recover: int) -> None:
    """Whatever came before, fail consecutive failures mean OFFLINE, and then recover
    consecutive good probes mean ONLINE; every reported change is a real change."""
    link = Clocked(fail, recover)
    link.feed(*history)
    link.feed(*[TIMEOUT] * fail)
    assert link.tracker.status is OFFLINE
    link.feed(*[GOOD] * recover)
    assert link.tracker.status is ONLINE
    pictures = [change for _, change in link.changes]
    assert all(a != b for a, b in pairwise(pictures))

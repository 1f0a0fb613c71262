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
BY_REMEMBERED = ProbeResult.answered(0.01, fallback=LinkReason.DNS)  # the name failed
BY_SECONDARY = ProbeResult.answered(0.01, fallback=LinkReason.REFUSED)  # the primary refused


class Clocked:
    """A tracker fed one probe per 0.5 s of fake time; remembers every change."""

    def __init__(
        self, fail: int = 2, recover: int = 2, request_fail: int = 3, hold_s: float = 5.0
    ) -> None:
        self.tracker = LinkTracker(
            fail,
            recover,
            slow_threshold_s=0.5,
            request_fail_threshold=request_fail,
            failing_hold_s=hold_s,
        )
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
        """A real request failed (or was answered retry-later), between two probes."""
        return self._note(self.tracker.observe_passive(self.now_s, reason))

    def answer(self) -> Change | None:
        """A real request got a useful answer, between two probes."""
        return self._note(self.tracker.observe_answer(self.now_s))

    def _note(self, change: Change | None) -> Change | None:
        if change is not None:
            self.changes.append((self.now_s, change))
        return change


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
    assert link.passive(LinkReason.RESET) is None
    assert link.feed(TIMEOUT) == [(OFFLINE, "TIMEOUT")]


@pytest.mark.parametrize("fail", [1, 2, 5])
def test_a_request_that_waited_its_whole_timeout_is_conclusive(fail: int) -> None:
    """Probes are rare on an idle link: the sale that met a silent host must be the only one
    that waits. Its timeout takes the link OFFLINE at once, whatever fail_threshold is."""
    link = Clocked(fail=fail)
    link.feed(GOOD)
    assert link.passive(LinkReason.TIMEOUT) == (OFFLINE, "TIMEOUT")
    assert link.feed(GOOD, GOOD) == [(ONLINE, "")]  # the echoes that follow may clear it


@pytest.mark.parametrize("fail", [1, 2, 5])
def test_a_conclusive_probe_failure_takes_the_link_offline_at_once(fail: int) -> None:
    """A lookup that asked again within itself (SystemResolver) and still failed is worth
    fail_threshold failures; the same failure not conclusive counts as one."""
    link = Clocked(fail=fail)
    link.feed(GOOD)
    conclusive = ProbeResult.failed(LinkReason.DNS, "no answer", conclusive=True)
    assert link.feed(conclusive) == [(OFFLINE, "DNS")]
    assert link.feed(*[GOOD] * 2) == [(ONLINE, "")]
    plain = Clocked(fail=fail)
    plain.feed(GOOD)
    assert plain.feed(DNS) == ([] if fail > 1 else [(OFFLINE, "DNS")])


def test_slow_answers_to_requests_degrade_but_are_not_failing_requests() -> None:
    """A sale answered slowly is a passive signal (SLOW), but it was answered: however many,
    they never make the request layer hold the link OFFLINE."""
    link = Clocked(request_fail=3)
    link.feed(GOOD)
    assert link.passive(LinkReason.SLOW) is None  # one: no trend yet
    assert link.passive(LinkReason.SLOW) == (DEGRADED, "SLOW")
    assert link.passive(LinkReason.SLOW) is None
    assert not link.tracker.requests_failing and link.tracker.status is DEGRADED


def test_timed_out_requests_still_count_for_the_request_layer() -> None:
    """Echoes answered after each timed-out sale do not hide a host that fails every sale."""
    link = Clocked(request_fail=2, hold_s=60.0)
    link.feed(GOOD)
    link.passive(LinkReason.TIMEOUT)
    link.feed(GOOD, GOOD)
    assert link.passive(LinkReason.TIMEOUT) == (OFFLINE, "TIMEOUT")
    assert link.feed(GOOD, GOOD) == []  # held: the host answers echoes, not sales
    assert link.tracker.requests_failing


def test_slow_answers_degrade_then_recover() -> None:
    link = Clocked()
    link.feed(GOOD)
    assert link.feed(SLOW) == []
    assert link.feed(SLOW) == [(DEGRADED, "SLOW")]
    assert link.feed(RETRY) == [(DEGRADED, "RETRY")]
    assert link.feed(GOOD) == []
    assert link.feed(GOOD) == [(ONLINE, "")]


@pytest.mark.parametrize(("code", "change"), [("68", [(DEGRADED, "RETRY")]), ("11", [])])
def test_an_echo_answer_is_read_with_the_response_table(
    code: str, change: list[tuple[LinkStatus, str]]
) -> None:
    link = Clocked()
    link.feed(GOOD)
    assert link.feed(*[ProbeResult.answered(0.01, code)] * 2) == change


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
    with pytest.raises(ValueError, match="request_fail=0"):
        LinkTracker(2, 2, request_fail_threshold=0)


def test_an_answer_by_fallback_degrades_with_the_fault_ridden_out() -> None:
    """The name vanished but the remembered address answers: DEGRADED DNS, sales go on; OFFLINE
    DNS only when that address stops answering too."""
    link = Clocked()
    link.feed(GOOD)
    assert link.feed(BY_REMEMBERED) == []
    assert link.feed(BY_REMEMBERED) == [(DEGRADED, "DNS")]
    assert link.feed(DNS, DNS) == [(OFFLINE, "DNS")]
    assert link.feed(BY_REMEMBERED, BY_REMEMBERED) == [(DEGRADED, "DNS")]
    assert link.feed(BY_SECONDARY) == [(DEGRADED, "REFUSED")]
    assert link.feed(GOOD, GOOD) == [(ONLINE, "")]


def test_a_retry_code_outranks_a_fallback_and_a_fallback_outranks_slowness() -> None:
    link = Clocked()
    retry_by_secondary = ProbeResult.answered(0.9, "96", fallback=LinkReason.REFUSED)
    slow_by_remembered = ProbeResult.answered(0.9, fallback=LinkReason.DNS)
    assert link.feed(retry_by_secondary) == [(DEGRADED, "RETRY")]
    assert link.feed(slow_by_remembered) == [(DEGRADED, "DNS")]


def test_a_host_up_but_failing_counts_as_down_for_sales() -> None:
    """Echoes answer, sales get 91: after request_fail_threshold of them the link is OFFLINE for
    failing_hold_s, then DEGRADED so one request can try; an answer ends it."""
    link = Clocked(request_fail=3, hold_s=5.0)
    link.feed(GOOD)
    for _ in range(2):
        assert link.passive(LinkReason.RETRY) is None
        link.feed(GOOD, GOOD)
    assert link.tracker.status is ONLINE
    assert link.passive(LinkReason.RETRY) == (OFFLINE, "RETRY")
    assert link.feed(*[GOOD] * 9) == []  # 4.5 s of good echoes: still held
    assert link.feed(GOOD) == [(DEGRADED, "RETRY")]  # 5 s: one request may try
    assert link.passive(LinkReason.RETRY) == (OFFLINE, "RETRY")  # it failed: held again
    assert link.feed(*[GOOD] * 10) == [(DEGRADED, "RETRY")]
    assert link.answer() == (ONLINE, "")  # it was answered: the host works again
    assert link.tracker.requests_failing is False


def test_failed_requests_between_good_echoes_count_too() -> None:
    link = Clocked(request_fail=3)
    link.feed(GOOD)
    for _ in range(2):
        link.passive(LinkReason.TIMEOUT)
        link.feed(GOOD, GOOD)
    assert link.passive(LinkReason.TIMEOUT) == (OFFLINE, "TIMEOUT")


def test_an_answer_restarts_the_request_count() -> None:
    link = Clocked(request_fail=3)
    link.feed(GOOD)
    link.passive(LinkReason.RETRY)
    link.passive(LinkReason.RETRY)
    link.answer()
    link.feed(GOOD, GOOD)
    link.passive(LinkReason.RETRY)
    # Two in a row again, not four: degraded (two bad observations), not held offline.
    assert link.passive(LinkReason.RETRY) == (DEGRADED, "RETRY")
    assert not link.tracker.requests_failing


def test_an_outage_explains_the_failed_requests() -> None:
    """Requests that failed while (or just before) the probes found the host down are the
    outage's, not a failing host's: no hold once the probes heal."""
    link = Clocked(request_fail=2, hold_s=60.0)
    link.feed(GOOD)
    link.passive(LinkReason.REFUSED)
    assert link.feed(REFUSED) == [(OFFLINE, "REFUSED")]
    link.passive(LinkReason.REFUSED)  # the forwarder tried during the outage
    assert link.feed(GOOD, GOOD) == [(ONLINE, "")]
    assert not link.tracker.requests_failing


results = st.sampled_from([GOOD, SLOW, RETRY, REFUSED, DNS, TIMEOUT, BY_REMEMBERED])
Observation = ProbeResult | LinkReason | None  # a probe, a failed request, an answered one
observations = st.one_of(
    results, st.sampled_from([LinkReason.RETRY, LinkReason.TIMEOUT, LinkReason.RESET, None])
)


@given(
    history=st.lists(observations, max_size=30),
    fail=st.integers(1, 4),
    recover=st.integers(1, 4),
    request_fail=st.integers(1, 4),
)
def test_thresholds_always_decide(
    history: list[Observation], fail: int, recover: int, request_fail: int
) -> None:
    """Whatever came before (probes, failed and answered requests), fail consecutive failures
    mean OFFLINE, and then recover consecutive good probes mean ONLINE; every reported change
    is a real change."""
    link = Clocked(fail, recover, request_fail)
    for observation in history:
        if isinstance(observation, ProbeResult):
            link.feed(observation)
        elif observation is None:
            link.answer()
        else:
            link.passive(observation)
    link.feed(*[TIMEOUT] * fail)
    assert link.tracker.status is OFFLINE
    link.feed(*[GOOD] * recover)
    assert link.tracker.status is ONLINE
    pictures = [change for _, change in link.changes]
    assert all(a != b for a, b in pairwise(pictures))

"""LinkTracker: the pure hysteresis behind the connectivity monitor (no I/O, no clock reads).

Fed observations with the time they were made, it returns the new (status, reason) when the
picture changes, else None. Two layers make the picture.

The probe layer: is the host there?
- An observation is GOOD (the echo came back "00" within the slow threshold), DEGRADED (an answer
  came, but slowly, with a retry code, or only by falling back: reason SLOW, RETRY, or the fault
  ridden out, e.g. DNS when the name failed and a remembered address answered, REFUSED when the
  primary refused and the secondary answered) or FAILED (no answer: DNS, REFUSED, TIMEOUT, RESET,
  UNREACHABLE, PROTOCOL, TLS). A passive signal from a real request (a refused connect, a reset,
  a 91) is one observation like a probe. A request that waited its whole timeout for an answer
  (TIMEOUT) is conclusive: it counts as fail_threshold failures, so the link is OFFLINE at once
  and the next customer is served offline without waiting (a host that accepts and never
  answers is seen no other way; the wait was longer than the probes' would have been).
- A conclusive failure (a name whose lookup asked again within itself and got no answer or two
  failures, see resolver.SystemResolver) counts as fail_threshold failures too.
- UNKNOWN (at start): the first answer decides at once (GOOD -> ONLINE, DEGRADED -> DEGRADED);
  fail_threshold consecutive failures -> OFFLINE.
- ONLINE or DEGRADED -> OFFLINE after fail_threshold consecutive failures.
- ONLINE -> DEGRADED after fail_threshold consecutive bad (failed or degraded) observations that
  are not all failures, or when fail_threshold failures fall within the last
  fail_threshold + recover_threshold observations (a flapping link).
- OFFLINE -> ONLINE after recover_threshold consecutive GOOD; -> DEGRADED after recover_threshold
  consecutive answers some of which were degraded.
- DEGRADED -> ONLINE after recover_threshold consecutive GOOD with the flapping window clear.
- While OFFLINE or DEGRADED a new reason (DNS gave way to REFUSED) is a change too.

The request layer: does the host do its job? (an echo answered proves little about sales)
- Real requests (sales, advices, reversals) report failures and retry-later answers (as above)
  and useful answers (approved, or a final decline) through observe_answer.
- request_fail_threshold of them in a row failed or answered retry-later while the probe layer
  is not OFFLINE: the host is up but failing. The link is OFFLINE with that reason for
  failing_hold_s after the latest such request, whatever the echoes say, so sales go offline at
  once instead of each waiting on the host. After the hold it is at best DEGRADED with that
  reason: one request may try the host; a useful answer ends it, another failure holds again.
- Probes going OFFLINE explain the failures (the host is down, not failing): the count restarts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from pitill.core.responses import APPROVED, ResponseClass, advice_class
from pitill.core.types import LinkStatus
from pitill.upstream.failures import LinkReason

Change = tuple[LinkStatus, str]


class Verdict(StrEnum):
    GOOD = "good"
    DEGRADED = "degraded"
    FAILED = "failed"


@dataclass(frozen=True)
class ProbeResult:
    """What one active probe saw: an answer (with its round trip and code) or a failure."""

    reason: LinkReason | None = None  # None when the echo was answered
    rtt_s: float = 0.0
    response_code: str = ""
    detail: str = ""
    fallback: LinkReason | None = None  # answered, but only by riding out this fault
    conclusive: bool = False  # a failure that already asked again (a lookup's queries): OFFLINE

    @classmethod
    def answered(
        cls,
        rtt_s: float,
        response_code: str = APPROVED,
        fallback: LinkReason | None = None,
        detail: str = "",
    ) -> ProbeResult:
        return cls(rtt_s=rtt_s, response_code=response_code, fallback=fallback, detail=detail)

    @classmethod
    def failed(cls, reason: LinkReason, detail: str = "", conclusive: bool = False) -> ProbeResult:
        return cls(reason=reason, detail=detail, conclusive=conclusive)

    @property
    def ok(self) -> bool:
        return self.reason is None


_ANSWER_REASONS = (LinkReason.SLOW, LinkReason.RETRY)


class LinkTracker:
    def __init__(
        self,
        fail_threshold: int = 2,
        recover_threshold: int = 2,
        slow_threshold_s: float = 0.5,
        *,
        request_fail_threshold: int = 3,
        failing_hold_s: float = 10.0,
    ) -> None:
        if min(fail_threshold, recover_threshold, request_fail_threshold) < 1:
            raise ValueError(
                f"thresholds must be >= 1, got fail={fail_threshold} "
                f"recover={recover_threshold} request_fail={request_fail_threshold}"
            )
        self.fail_threshold = fail_threshold
        self.recover_threshold = recover_threshold
        self.slow_threshold_s = slow_threshold_s
        self.request_fail_threshold = request_fail_threshold
        self.failing_hold_s = failing_hold_s
        # What the monitor publishes: both layers combined.
        self.status = LinkStatus.UNKNOWN
        self.reason = ""
        self.since_s: float | None = None  # when the current status began
        # The probe layer.
        self._probe: Change = (LinkStatus.UNKNOWN, "")
        self._fail_streak = 0
        self._bad_streak = 0
        self._good_streak = 0
        self._answer_streak = 0  # consecutive GOOD or DEGRADED
        self._degraded_reason = ""  # the latest degraded reason seen in the answer streak
        self._window: deque[Verdict] = deque(maxlen=fail_threshold + recover_threshold)
        # The request layer.
        self._request_streak = 0  # real requests in a row that failed or were answered 91/96
        self._request_reason = ""
        self._request_failed_s = 0.0  # when the latest of them was seen

    @property
    def requests_failing(self) -> bool:
        """True while the host answers probes but has failed request_fail_threshold requests."""
        return self._request_streak >= self.request_fail_threshold

    @property
    def probe_status(self) -> LinkStatus:
        """The probe layer's status alone (is the host there?), before the request layer."""
        return self._probe[0]

    def observe_probe(self, now_s: float, result: ProbeResult) -> Change | None:
        """Feed one active probe; a conclusive failure counts as fail_threshold of them."""
        weight = self.fail_threshold if result.conclusive and not result.ok else 1
        return self._observe(now_s, *self.verdict(result), weight=weight)

    def verdict(self, result: ProbeResult) -> tuple[Verdict, LinkReason | None]:
        """What one probe says, and why when it is not GOOD."""
        if result.reason is not None:
            return Verdict.FAILED, result.reason
        if advice_class(result.response_code) is not ResponseClass.APPROVED:
            return Verdict.DEGRADED, LinkReason.RETRY
        if result.fallback is not None:
            return Verdict.DEGRADED, result.fallback
        if result.rtt_s > self.slow_threshold_s:
            return Verdict.DEGRADED, LinkReason.SLOW
        return Verdict.GOOD, None

    def observe_passive(self, now_s: float, reason: LinkReason) -> Change | None:
        """Feed what a real request ran into: SLOW / RETRY degrade, anything else is a failure.
        A slow answer is still an answer: it does not count toward requests failing."""
        # An outage explains it otherwise.
        if self._probe[0] is not LinkStatus.OFFLINE and reason is not LinkReason.SLOW:
            self._request_streak += 1
            self._request_reason = str(reason)
            self._request_failed_s = now_s
        verdict = Verdict.DEGRADED if reason in _ANSWER_REASONS else Verdict.FAILED
        if reason is LinkReason.TIMEOUT:  # conclusive; probes that follow may explain it
            return self._observe(now_s, verdict, reason, weight=self.fail_threshold, explains=False)
        return self._observe(now_s, verdict, reason)

    def tick(self, now_s: float) -> Change | None:
        """No observation, only time passing: a request layer's hold may have ended."""
        return self._publish(now_s)

    def observe_answer(self, now_s: float) -> Change | None:
        """Feed a real request that got a useful answer (approved, or a final decline)."""
        self._request_streak = 0
        self._request_reason = ""
        return self._publish(now_s)

    def _observe(
        self,
        now_s: float,
        verdict: Verdict,
        reason: LinkReason | None,
        *,
        weight: int = 1,
        explains: bool = True,
    ) -> Change | None:
        for _ in range(weight):
            self._count(verdict, reason)
        self._probe = self._next(verdict, reason)
        if explains and verdict is Verdict.FAILED and self._probe[0] is LinkStatus.OFFLINE:
            self._request_streak = 0  # the probes found the host down: that explains them
        return self._publish(now_s)

    @property
    def suspect(self) -> bool:
        """The latest observation failed while the link is not (yet) OFFLINE: a fault may be
        starting, worth a quick look."""
        return self._fail_streak > 0 and self._probe[0] is not LinkStatus.OFFLINE

    def _publish(self, now_s: float) -> Change | None:
        status, reason = self._combined(now_s)
        if (status, reason) == (self.status, self.reason):
            return None
        if status != self.status:
            self.since_s = now_s
        self.status, self.reason = status, reason
        return status, reason

    def _combined(self, now_s: float) -> Change:
        """The probe layer's picture, overruled by the request layer while requests fail."""
        status, reason = self._probe
        if not self.requests_failing or status is LinkStatus.OFFLINE:
            return status, reason
        if now_s - self._request_failed_s < self.failing_hold_s:
            return LinkStatus.OFFLINE, self._request_reason
        if status is LinkStatus.UNKNOWN:
            return status, reason
        return LinkStatus.DEGRADED, self._request_reason

    def _count(self, verdict: Verdict, reason: LinkReason | None) -> None:
        self._window.append(verdict)
        if verdict is Verdict.FAILED:
            self._fail_streak += 1
            self._bad_streak += 1
            self._good_streak = self._answer_streak = 0
            self._degraded_reason = ""
        elif verdict is Verdict.DEGRADED:
            self._fail_streak = self._good_streak = 0
            self._bad_streak += 1
            self._answer_streak += 1
            self._degraded_reason = str(reason)
        else:
            self._fail_streak = self._bad_streak = 0
            self._good_streak += 1
            self._answer_streak += 1

    def _flapping(self) -> bool:
        return self._window.count(Verdict.FAILED) >= self.fail_threshold

    def _next(self, verdict: Verdict, reason: LinkReason | None) -> Change:
        """The probe layer's status and reason after an observation, by the rules above."""
        current, current_reason = self._probe
        if verdict is Verdict.FAILED:
            if self._fail_streak >= self.fail_threshold:
                return LinkStatus.OFFLINE, str(reason)
            if current is LinkStatus.ONLINE and (
                self._bad_streak >= self.fail_threshold or self._flapping()
            ):
                return LinkStatus.DEGRADED, str(reason)
            return current, current_reason
        if current is LinkStatus.UNKNOWN:
            if verdict is Verdict.GOOD:
                return LinkStatus.ONLINE, ""
            return LinkStatus.DEGRADED, str(reason)
        if verdict is Verdict.DEGRADED:
            if current is LinkStatus.ONLINE and self._bad_streak >= self.fail_threshold:
                return LinkStatus.DEGRADED, str(reason)
            if current is LinkStatus.DEGRADED:
                return current, str(reason)
            if current is LinkStatus.OFFLINE and self._answer_streak >= self.recover_threshold:
                return LinkStatus.DEGRADED, str(reason)
            return current, current_reason
        # GOOD
        if current is LinkStatus.ONLINE:
            return current, ""
        if self._good_streak >= self.recover_threshold and not (
            current is LinkStatus.DEGRADED and self._flapping()
        ):
            return LinkStatus.ONLINE, ""
        if current is LinkStatus.OFFLINE and self._answer_streak >= self.recover_threshold:
            return LinkStatus.DEGRADED, self._degraded_reason
        return current, current_reason

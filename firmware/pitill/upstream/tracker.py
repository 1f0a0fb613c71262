"""LinkTracker: the pure hysteresis behind the connectivity monitor (no I/O, no clock reads).

Fed observations with the time they were made, it returns the new (status, reason) when the
picture changes, else None. Rules:

- An observation is GOOD (the echo came back "00" within the slow threshold), DEGRADED (an answer
  came, but slowly or with a retry code: reason SLOW or RETRY) or FAILED (no answer: DNS,
  REFUSED, TIMEOUT, RESET, UNREACHABLE, PROTOCOL). A passive signal from a real request (a
  timeout, a refused connect, a 91) is one observation like a probe.
- UNKNOWN (at start): the first answer decides at once (GOOD -> ONLINE, DEGRADED -> DEGRADED);
  fail_threshold consecutive failures -> OFFLINE.
- ONLINE or DEGRADED -> OFFLINE after fail_threshold consecutive failures.
- ONLINE -> DEGRADED after fail_threshold consecutive bad (failed or degraded) observations that
  are not all failures, or when fail_threshold failures fall within the last
  fail_threshold + recover_threshold observations (a flapping link).
- OFFLINE -> ONLINE after recover_threshold consecutive GOOD; -> DEGRADED after recover_threshold
  consecutive answers some of which were slow or retry codes.
- DEGRADED -> ONLINE after recover_threshold consecutive GOOD with the flapping window clear.
- While OFFLINE or DEGRADED a new reason (DNS gave way to REFUSED) is a change too.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from pitill.core.types import LinkStatus
from pitill.upstream.failures import LinkReason
from pitill.upstream.messages import APPROVED

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

    @classmethod
    def answered(cls, rtt_s: float, response_code: str = APPROVED) -> ProbeResult:
        return cls(rtt_s=rtt_s, response_code=response_code)

    @classmethod
    def failed(cls, reason: LinkReason, detail: str = "") -> ProbeResult:
        return cls(reason=reason, detail=detail)

    @property
    def ok(self) -> bool:
        return self.reason is None


_ANSWER_REASONS = (LinkReason.SLOW, LinkReason.RETRY)


class LinkTracker:
    def __init__(
        self, fail_threshold: int = 2, recover_threshold: int = 2, slow_threshold_s: float = 0.5
    ) -> None:
        if fail_threshold < 1 or recover_threshold < 1:
            raise ValueError(
                f"thresholds must be >= 1, got fail={fail_threshold} recover={recover_threshold}"
            )
        self.fail_threshold = fail_threshold
        self.recover_threshold = recover_threshold
        self.slow_threshold_s = slow_threshold_s
        self.status = LinkStatus.UNKNOWN
        self.reason = ""
        self.since_s: float | None = None  # when the current status began
        self._fail_streak = 0
        self._bad_streak = 0
        self._good_streak = 0
        self._answer_streak = 0  # consecutive GOOD or DEGRADED
        self._degraded_reason = ""  # the latest SLOW / RETRY seen in the answer streak
        self._window: deque[Verdict] = deque(maxlen=fail_threshold + recover_threshold)

    def observe_probe(self, now_s: float, result: ProbeResult) -> Change | None:
        """Feed one active probe."""
        if result.reason is not None:
            return self._observe(now_s, Verdict.FAILED, result.reason)
        if result.response_code != APPROVED:
            return self._observe(now_s, Verdict.DEGRADED, LinkReason.RETRY)
        if result.rtt_s > self.slow_threshold_s:
            return self._observe(now_s, Verdict.DEGRADED, LinkReason.SLOW)
        return self._observe(now_s, Verdict.GOOD, None)

    def observe_passive(self, now_s: float, reason: LinkReason) -> Change | None:
        """Feed what a real request ran into: SLOW / RETRY degrade, anything else is a failure."""
        verdict = Verdict.DEGRADED if reason in _ANSWER_REASONS else Verdict.FAILED
        return self._observe(now_s, verdict, reason)

    def _observe(self, now_s: float, verdict: Verdict, reason: LinkReason | None) -> Change | None:
        self._count(verdict, reason)
        status, new_reason = self._next(verdict, reason)
        if (status, new_reason) == (self.status, self.reason):
            return None
        if status != self.status:
            self.since_s = now_s
        self.status, self.reason = status, new_reason
        return status, new_reason

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
        """The status and reason after an observation, by the rules in the module docstring."""
        current = self.status
        if verdict is Verdict.FAILED:
            if self._fail_streak >= self.fail_threshold:
                return LinkStatus.OFFLINE, str(reason)
            if current is LinkStatus.ONLINE and (
                self._bad_streak >= self.fail_threshold or self._flapping()
            ):
                return LinkStatus.DEGRADED, str(reason)
            return current, self.reason
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
            return current, self.reason
        # GOOD
        if current is LinkStatus.ONLINE:
            return current, ""
        if self._good_streak >= self.recover_threshold and not (
            current is LinkStatus.DEGRADED and self._flapping()
        ):
            return LinkStatus.ONLINE, ""
        if current is LinkStatus.OFFLINE and self._answer_streak >= self.recover_threshold:
            return LinkStatus.DEGRADED, self._degraded_reason
        return current, self.reason

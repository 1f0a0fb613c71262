"""Faults the sandbox host can add on top of being up: dropped requests and replies, duplicate
replies, late answers, retry-later codes (a ChaosPlan, drawn per message with its own seed); and
a WAN's latency: every answer leaves latency_s (+ up to latency_jitter_s) after its request came,
while the next requests are read and answered meanwhile (so answers may overtake each other).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from pitill.core.responses import (
    ISSUER_INOPERATIVE,
    RETRY_CODES,
)
from pitill.errors import ConfigError
from pitill.sim.acquirer.policy import FINANCIAL_MTIS
from pitill.upstream.messages import (
    RESPONSE_MTI,
)

log = logging.getLogger("pitill.sim.acquirer")

# --- chaos -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChaosPlan:
    """Faults a healthy host adds to its answers; each a probability from 0 to 1 per message.

    Only messages whose MTI is in `mtis` are touched (echoes are spared by default, so the link
    monitor sees a live host while transactions suffer). A seed makes a run repeatable.
    """

    drop_request: float = 0.0  # read and ignored: never processed, never answered
    drop_reply: float = 0.0  # processed and ledgered, the answer never sent
    duplicate_reply: float = 0.0  # the answer sent twice
    retry: float = 0.0  # answered with retry_code without processing
    retry_code: str = ISSUER_INOPERATIVE
    delay_s: float = 0.0  # every touched answer waits this long first, holding up the next
    latency_s: float = 0.0  # every answer (echoes too) leaves this long after its request came
    latency_jitter_s: float = 0.0  # ...plus a uniform draw up to this: answers out of order
    seed: int = 0
    mtis: frozenset[str] = FINANCIAL_MTIS

    def __post_init__(self) -> None:
        for name in ("drop_request", "drop_reply", "duplicate_reply", "retry"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"chaos {name}: must be a probability 0..1, got {value}")
        for name in ("delay_s", "latency_s", "latency_jitter_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"chaos {name}: must be >= 0, got {getattr(self, name)}")
        if self.retry_code not in RETRY_CODES:
            known = ", ".join(sorted(RETRY_CODES))
            raise ConfigError(f"chaos retry_code: {self.retry_code!r} is not one of {known}")
        unknown = sorted(set(self.mtis) - set(RESPONSE_MTI))
        if unknown:
            raise ConfigError(f"chaos mtis: {unknown} are not requests the host answers")


class _Chaos:
    """A plan with its random stream."""

    def __init__(self, plan: ChaosPlan) -> None:
        self.plan = plan
        self._rng = random.Random(plan.seed)

    def hits(self, probability: float, mti: str) -> bool:
        if probability <= 0.0 or mti not in self.plan.mtis:
            return False  # no draw: a fault left at 0 does not shift the others' sequence
        return self._rng.random() < probability

    def delay_s(self, mti: str) -> float:
        return self.plan.delay_s if mti in self.plan.mtis else 0.0

    def latency_s(self) -> float:
        """The time this answer spends on the emulated WAN (every MTI: it is the network)."""
        if self.plan.latency_jitter_s <= 0.0:
            return self.plan.latency_s  # no draw: the faults' sequence stays as without it
        return self.plan.latency_s + self._rng.uniform(0.0, self.plan.latency_jitter_s)

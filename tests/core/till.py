"""A terminal core driven through `step` with a fake clock, for the core's tests."""

from __future__ import annotations

from pitill.card.model import Card
from pitill.core.effects import Record, Show, StartTimer
from pitill.core.events import (
    Booted,
    CardSwiped,
    Event,
    KeyPressed,
    LinkChanged,
    PinChecked,
    PinSaved,
    TimerFired,
    TimerName,
)
from pitill.core.machine import step
from pitill.core.state import Settings, TerminalState
from pitill.core.types import Key, LinkStatus

GOOD = Card(pan="4111111111111111", expiry_yymm="3012")
EXPIRED = Card(pan="5555555555554444", expiry_yymm="2001")
BAD_LUHN = Card(pan="4111111111111112", expiry_yymm="3012")
TODAY = "2611"


class Till:
    """A terminal driven through `step` with a fake clock, keeping every effect it produced."""

    def __init__(
        self, settings: Settings | None = None, next_seq: int = 1, booted: Booted | None = None
    ) -> None:
        self.now_s = 0.0
        self.state = TerminalState(settings=settings or Settings())
        self.effects: list[object] = []
        self.feed(booted or Booted(self.now_s, next_seq=next_seq))

    @classmethod
    def booted(cls, event: Booted, settings: Settings | None = None) -> Till:
        return cls(settings, booted=event)

    def feed(self, event: Event) -> tuple[object, ...]:
        self.state, effects = step(self.state, event)
        self.effects.extend(effects)
        return effects

    def keys(self, *names: str) -> None:
        for name in names:
            self.feed(KeyPressed(self.now_s, Key.parse(name)))

    def swipe(self, card: Card = GOOD, offline_sales_of_card: int = 0) -> tuple[object, ...]:
        """A swipe; `offline_sales_of_card` is what the shell's journal counts for this card."""
        return self.feed(
            CardSwiped(self.now_s, card, TODAY, offline_sales_of_card=offline_sales_of_card)
        )

    def feed_key(self, name: str) -> tuple[object, ...]:
        """One key; its effects."""
        return self.feed(KeyPressed(self.now_s, Key.parse(name)))

    def open_menu(self) -> tuple[object, ...]:
        """FN and a PIN the shell accepts (or, while none is set, a new one keyed twice and
        saved): the supervisor's menu. The core never checks a PIN itself."""
        if not self.state.pin_set:
            self.keys("FN", "2", "5", "8", "0", "OK", "2", "5", "8", "0", "OK")
            return self.feed(PinSaved(self.now_s, saved=True))
        self.keys("FN", "2", "5", "8", "0", "OK")
        return self.feed(PinChecked(self.now_s, ok=True))

    def link(self, status: LinkStatus, reason: str = "") -> None:
        self.feed(LinkChanged(self.now_s, status, reason))

    def advance(self, seconds: float) -> None:
        """Move the fake clock and fire the phase timer if it is due."""
        self.now_s += seconds
        timers = [e for e in self.effects if isinstance(e, StartTimer)]
        due = timers and timers[-1].token == self.state.timer_token
        if due and seconds >= timers[-1].delay_s:
            self.feed(TimerFired(self.now_s, TimerName.PHASE, timers[-1].token))

    @property
    def screen_text(self) -> str:
        shows = [e for e in self.effects if isinstance(e, Show)]
        return shows[-1].screen.text()

    def records(self) -> list[Record]:
        return [e for e in self.effects if isinstance(e, Record)]

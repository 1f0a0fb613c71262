"""The drill's synthetic shop: seeded customers, and a cashier who serves them on the real terminal.

plan_customers() draws the whole day up front from a seed (so a run is repeatable as far as the
shop goes): arrivals follow an hourly profile of a small all-night shop, amounts a log-normal
spread around a median basket, a share pay by card (a pool of synthetic cards, some regulars,
a few expired ones and the sandbox's always-declined card), the others cash, handing over the
exact money or a note.

Cashier.serve() drives one customer through the Terminal exactly as a cashier would: digits and OK
as key presses, the card swiped over the real pty through the reader emulator, OK to dismiss; a
cash sale (CASH ONLY offered, or chosen) is tendered and the change checked. The terminal has no
cash key while it can take a card, so a cash customer at that moment pays at the till without the
terminal ("cash, not rung"). A card customer offered CASH ONLY pays cash or walks away (refused).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from pitill.card.model import luhn_ok, mask_pan
from pitill.core.responses import ResponseClass, sale_class
from pitill.core.state import Phase
from pitill.core.types import Key
from pitill.drill.timeline import Timeline
from pitill.sim.acquirer import TEST_CARD_DECLINED
from pitill.sim.driver import Driver, amount_keys
from pitill.sim.world import SimWorld

# Customers per hour by hour of day: an all-night corner shop, busy mornings and lunchtimes.
HOURLY_CUSTOMERS = (
    3,
    2,
    2,
    1,
    1,
    3,
    8,
    18,
    24,
    20,
    18,
    22,
    28,
    26,
    18,
    16,
    18,
    24,
    26,
    20,
    14,
    10,
    6,
    4,
)
NOTES_MINOR = (500, 1000, 2000, 5000, 10000)
EXPIRED_YYMM = "2401"
_SETTLE_S = 2.0  # how long a key's or a swipe's effect may take to show in the phase
_RESULT_PHASES = frozenset(
    {Phase.APPROVED, Phase.OFFLINE_APPROVED, Phase.DECLINED, Phase.CHANGE, Phase.STORAGE_FAULT}
)
_BUSY_PHASES = frozenset({Phase.AWAIT_CARD, Phase.AUTHORIZING})


@dataclass(frozen=True)
class ShopProfile:
    """What kind of shop: how busy, how people pay, what they buy."""

    hourly_customers: tuple[float, ...] = HOURLY_CUSTOMERS
    card_share: float = 0.7
    median_basket_minor: int = 1200
    basket_sigma: float = 0.9  # of the log-normal: most baskets 3 to 50, a few far more
    max_basket_minor: int = 40_000
    accepts_cash_share: float = 0.85  # card customers who pay cash when told CASH ONLY
    exact_money_share: float = 0.3  # cash customers who hand over the exact amount
    card_pool: int = 400
    regulars_skew: float = 0.5  # Zipf exponent of how often each card comes back
    expired_share: float = 0.01
    declined_card_share: float = 0.005
    card_tries: int = 2  # swipes a card customer allows after "issuer unavailable"


@dataclass(frozen=True)
class ShopCard:
    pan: str = field(repr=False)
    expiry_yymm: str

    @property
    def masked_pan(self) -> str:
        return mask_pan(self.pan)


@dataclass(frozen=True)
class Customer:
    number: int
    arrival_s: float  # simulated seconds from the start of the timeline
    amount_minor: int
    card: ShopCard | None  # None: pays cash
    accepts_cash: bool  # a card customer told CASH ONLY pays cash (else walks away)
    tendered_minor: int  # what they hand over when they pay cash

    def __repr__(self) -> str:  # never a full PAN, even in a test failure
        paying = self.card.masked_pan if self.card else "cash"
        return f"Customer({self.number}, t={self.arrival_s:.0f}s, {self.amount_minor}, {paying})"


def make_pan(rng: random.Random) -> str:
    """A Luhn-valid 16-digit Visa or Mastercard number that is none of the sandbox's test cards."""
    while True:
        body = rng.choice(("4", f"5{rng.randint(1, 5)}"))
        body += "".join(str(rng.randrange(10)) for _ in range(15 - len(body)))
        pan = body + str(next(d for d in range(10) if luhn_ok(f"{body}{d}")))
        if pan != TEST_CARD_DECLINED:
            return pan


def tender_for(amount_minor: int, exact_share: float, rng: random.Random) -> int:
    """What a customer hands over: the exact money, or the smallest note that covers it."""
    if rng.random() < exact_share:
        return amount_minor
    for note in NOTES_MINOR:
        if note >= amount_minor:
            return note
    top = NOTES_MINOR[-1]
    return math.ceil(amount_minor / top) * top


def _basket(profile: ShopProfile, rng: random.Random) -> int:
    amount = round(profile.median_basket_minor * math.exp(rng.gauss(0.0, profile.basket_sigma)))
    return max(100, min(profile.max_basket_minor, amount))


def plan_customers(timeline: Timeline, profile: ShopProfile, seed: int) -> list[Customer]:
    """Every customer of the timeline, in arrival order; the same seed gives the same list."""
    rng = random.Random(seed)
    pool = [
        ShopCard(make_pan(rng), f"{rng.randint(27, 31)}{rng.randint(1, 12):02d}")
        for _ in range(profile.card_pool)
    ]
    weights = [1 / (rank + 1) ** profile.regulars_skew for rank in range(len(pool))]
    peak = max(profile.hourly_customers)
    customers: list[Customer] = []
    at_s = 0.0
    while True:
        # Thinning: a Poisson process at the peak rate, each arrival kept at its hour's share.
        at_s += rng.expovariate(peak / 3600)
        if at_s >= timeline.total_s:
            return customers
        hour = (timeline.start + timedelta(seconds=at_s)).hour
        if rng.random() >= profile.hourly_customers[hour] / peak:
            continue
        amount = _basket(profile, rng)
        card: ShopCard | None = None
        if rng.random() < profile.card_share:
            card = rng.choices(pool, weights)[0]
            roll = rng.random()
            if roll < profile.expired_share:
                card = ShopCard(card.pan, EXPIRED_YYMM)
            elif roll < profile.expired_share + profile.declined_card_share:
                card = ShopCard(TEST_CARD_DECLINED, "3012")
        customers.append(
            Customer(
                number=len(customers) + 1,
                arrival_s=at_s,
                amount_minor=amount,
                card=card,
                accepts_cash=rng.random() < profile.accepts_cash_share,
                tendered_minor=tender_for(amount, profile.exact_money_share, rng),
            )
        )


class Outcome(StrEnum):
    ONLINE = "approved online"
    OFFLINE = "approved offline"
    CASH = "cash"
    DECLINED = "declined"
    REFUSED = "refused"  # CASH ONLY, and the customer would not pay cash
    FAILED = "failed"  # the terminal never got through the sale: a finding of the drill


@dataclass
class Sale:
    """What happened to one customer."""

    customer: Customer
    outcome: Outcome = Outcome.FAILED
    started_s: float = 0.0  # real seconds from the start of the timeline
    wait_s: float = 0.0  # real seconds from the first key to the end of the sale
    late_s: float = 0.0  # real seconds the customer queued behind earlier ones
    seqs: list[int] = field(default_factory=list)  # journal rows shown to them as paid
    declines: int = 0
    rung: bool = True  # a cash sale journaled by the terminal (False: paid at the till)
    cash_reason: str = ""  # why the terminal said CASH ONLY
    note: str = ""  # what went wrong, for FAILED


class Cashier:
    """Serves customers on the world's terminal, one at a time, with keys and swipes."""

    def __init__(self, world: SimWorld, profile: ShopProfile) -> None:
        assert world.terminal is not None
        self.world = world
        self.terminal = world.terminal
        self.profile = profile
        self.drive = Driver(world)  # keys, swipes and waits: the one way to drive a terminal
        timeouts = world.config.timeouts
        self._outcome_wait_s = timeouts.authorizing_s + world.config.upstream.request_timeout_s

    def _press(self, *keys: Key) -> Phase:
        return self.drive.press(*keys)

    def _press_digits(self, amount_minor: int) -> None:
        self._press(*amount_keys(amount_minor))

    async def to_idle(self) -> bool:
        """Back to the idle screen, whatever is showing; False if the terminal will not go."""
        for _ in range(10):
            phase = self.drive.phase
            if phase is Phase.IDLE:
                return True
            if phase is Phase.AUTHORIZING:
                await self.drive.until_phase(
                    lambda p: p is not Phase.AUTHORIZING, self._outcome_wait_s
                )
            elif phase in _RESULT_PHASES:
                self._press(Key.OK)
            else:
                self._press(Key.CANCEL)
            await asyncio.sleep(0)
        return self.drive.phase is Phase.IDLE

    async def serve(self, customer: Customer, started_s: float) -> Sale:
        sale = Sale(customer, started_s=started_s)
        loop = asyncio.get_running_loop()
        begin = loop.time()
        try:
            await self._serve(customer, sale)
        finally:
            sale.wait_s = loop.time() - begin
        return sale

    async def _serve(self, customer: Customer, sale: Sale) -> None:
        for attempt in range(1, self.profile.card_tries + 1):
            if not await self.to_idle():
                sale.note = f"the terminal stayed in {self.drive.phase} and never went idle"
                return
            self._press_digits(customer.amount_minor)
            phase = self._press(Key.OK)
            if phase is Phase.CASH_ONLY:
                await self._cash_only(customer, sale)
                return
            if phase is not Phase.AWAIT_CARD:
                sale.note = f"after the amount and OK the terminal showed {phase}"
                return
            if customer.card is None:
                await self._cash_while_card_wanted(customer, sale)
                return
            phase = await self._swipe(customer.card, sale)
            if phase in (Phase.APPROVED, Phase.OFFLINE_APPROVED):
                sale.outcome = Outcome.ONLINE if phase is Phase.APPROVED else Outcome.OFFLINE
                sale.seqs.append(self._txn_seq())
                self._press(Key.OK)
                return
            if phase is Phase.CASH_ONLY:
                await self._cash_only(customer, sale)
                return
            if phase is not Phase.DECLINED:
                sale.note = sale.note or f"after the swipe the terminal stayed in {phase}"
                self._press(Key.CANCEL)
                return
            sale.declines += 1
            txn = self.terminal.state.txn
            self._press(Key.OK)
            if txn is None or sale_class(txn.response_code) is not ResponseClass.RETRY:
                break  # a real decline: the card will not do
            if attempt == self.profile.card_tries:
                break
        sale.outcome = Outcome.DECLINED

    def _txn_seq(self) -> int:
        txn = self.terminal.state.txn
        return txn.seq if txn is not None else 0

    async def _swipe(self, card: ShopCard, sale: Sale) -> Phase:
        """Swipe (again if the terminal did not take it) and wait for the outcome."""
        for _ in range(3):
            answer = await self.drive.swipe(card.pan, card.expiry_yymm)
            phase = await self.drive.until_phase(lambda p: p is not Phase.AWAIT_CARD, _SETTLE_S)
            if phase is not Phase.AWAIT_CARD:
                return await self.drive.until_phase(
                    lambda p: p not in _BUSY_PHASES, self._outcome_wait_s
                )
            sale.note = f"swipe not taken (reader answered {answer})"
        return self.drive.phase

    async def _cash_while_card_wanted(self, customer: Customer, sale: Sale) -> None:
        """A cash customer while the terminal wants a card: FN if it offers cash, else the till."""
        phase = self._press(Key.FN)
        if phase in (Phase.CASH_ONLY, Phase.TENDER):
            await self._cash_only(customer, sale)
            return
        self._press(Key.CANCEL)
        sale.outcome = Outcome.CASH
        sale.rung = False

    async def _cash_only(self, customer: Customer, sale: Sale) -> None:
        """CASH ONLY (or TENDER) is showing: pay cash with change, or walk away."""
        sale.cash_reason = self.terminal.state.cash_reason
        if customer.card is not None and not customer.accepts_cash:
            self._press(Key.CANCEL)
            sale.outcome = Outcome.REFUSED
            return
        if self.drive.phase is Phase.CASH_ONLY:
            self._press(Key.OK)
        if customer.tendered_minor != customer.amount_minor:
            self._press_digits(customer.tendered_minor)  # OK alone means the exact money
        phase = self._press(Key.OK)
        txn = self.terminal.state.txn
        expected = customer.tendered_minor - customer.amount_minor
        if phase is not Phase.CHANGE or txn is None or txn.change_minor != expected:
            got = txn.change_minor if txn is not None else None
            sale.note = f"cash sale ended in {phase}, change {got}, expected {expected}"
            self._press(Key.CANCEL)
            return
        sale.outcome = Outcome.CASH
        sale.seqs.append(txn.seq)
        self._press(Key.OK)


class Shop:
    """Lets customers in at their (compressed) arrival times and has the cashier serve them."""

    def __init__(self, cashier: Cashier, customers: Sequence[Customer]) -> None:
        self.cashier = cashier
        self.customers = list(customers)
        self.sales: list[Sale] = []

    async def run(self, real_at: Callable[[float], float], now_s: Callable[[], float]) -> None:
        """Serve everyone; real_at maps a simulated time to the real time (drill clock) it plays."""
        for customer in self.customers:
            due_s = real_at(customer.arrival_s)
            if (early_s := due_s - now_s()) > 0:
                await asyncio.sleep(early_s)
            started_s = now_s()
            sale = await self.cashier.serve(customer, started_s)
            sale.late_s = max(0.0, started_s - due_s)
            self.sales.append(sale)

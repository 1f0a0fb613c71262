"""The synthetic shop's day: seeded, realistic in shape, never a full PAN in sight."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

from pitill.card.model import luhn_ok
from pitill.drill.shop import (
    EXPIRED_YYMM,
    NOTES_MINOR,
    ShopProfile,
    make_pan,
    plan_customers,
    tender_for,
)
from pitill.drill.timeline import built_in
from pitill.sim.acquirer import TEST_CARD_DECLINED

AWS = built_in("aws-2025-10")
PROFILE = ShopProfile()


def test_the_same_seed_plans_the_same_day() -> None:
    assert plan_customers(AWS, PROFILE, 7) == plan_customers(AWS, PROFILE, 7)
    assert plan_customers(AWS, PROFILE, 7) != plan_customers(AWS, PROFILE, 8)


def test_customers_arrive_in_order_within_the_timeline_busier_by_day() -> None:
    customers = plan_customers(AWS, PROFILE, 1)
    arrivals = [c.arrival_s for c in customers]
    assert arrivals == sorted(arrivals)
    assert arrivals[0] >= 0 and arrivals[-1] < AWS.total_s
    assert [c.number for c in customers] == list(range(1, len(customers) + 1))
    hours = Counter((AWS.start + timedelta(seconds=c.arrival_s)).hour for c in customers)
    night = sum(hours[h] for h in (1, 2, 3, 4))
    morning = sum(hours[h] for h in (8, 9, 10, 11))
    assert morning > 4 * night


def test_amounts_payments_and_cards_have_a_realistic_spread() -> None:
    busy = ShopProfile(hourly_customers=tuple(r * 10 for r in PROFILE.hourly_customers))
    customers = plan_customers(AWS, busy, 3)
    assert len(customers) > 1000
    amounts = sorted(c.amount_minor for c in customers)
    median = amounts[len(amounts) // 2]
    assert 900 <= median <= 1500
    assert amounts[0] >= 100 and amounts[-1] <= busy.max_basket_minor
    over_floor = sum(a > 2500 for a in amounts) / len(amounts)
    assert 0.1 < over_floor < 0.35
    cards = [c.card for c in customers if c.card is not None]
    assert 0.65 < len(cards) / len(customers) < 0.75
    assert all(luhn_ok(card.pan) for card in cards)
    assert any(card.expiry_yymm == EXPIRED_YYMM for card in cards)
    assert any(card.pan == TEST_CARD_DECLINED for card in cards)
    _pan, visits = Counter(card.pan for card in cards).most_common(1)[0]
    assert 3 <= visits < len(cards) / 10  # regulars come back, nobody is every customer


def test_cash_is_tendered_exactly_or_with_a_note() -> None:
    rng = random.Random(1)
    for amount in (100, 499, 500, 1234, 2500, 7731, 12_000, 33_333):
        for _ in range(20):
            tendered = tender_for(amount, 0.3, rng)
            assert tendered >= amount
            assert tendered == amount or tendered in NOTES_MINOR or tendered % 10_000 == 0


def test_pans_are_luhn_valid_and_never_the_declined_test_card() -> None:
    rng = random.Random(5)
    pans = [make_pan(rng) for _ in range(500)]
    assert all(len(p) == 16 and luhn_ok(p) and p != TEST_CARD_DECLINED for p in pans)
    assert {p[0] for p in pans} == {"4", "5"}


def test_a_customer_prints_only_the_masked_pan() -> None:
    customer = next(c for c in plan_customers(AWS, PROFILE, 1) if c.card is not None)
    assert customer.card is not None
    assert customer.card.pan not in repr(customer)
    assert customer.card.masked_pan in repr(customer)

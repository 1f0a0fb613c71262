"""Cards by tier: UID-only NFC cards are online only by default, SUN counters must only go up."""

from __future__ import annotations

from till import Till

from pitill.card.model import Card, CardTier, SunMessage
from pitill.core.effects import Authorize, Record
from pitill.core.events import CardSwiped
from pitill.core.state import OfflineLimits, Phase, Settings
from pitill.core.types import LinkStatus

UID_CARD = Card.from_uid("04A1B2C3D4E5F6")
SUN = SunMessage(bytes(16), bytes(8))


def sun_card(counter: int) -> Card:
    return Card.from_sun("04DE5F1EACC040", counter, SUN)


def tap(
    till: Till, card: Card, amount: str = "100", last: int | None = None, offline_sales: int = 0
) -> tuple[object, ...]:
    till.keys(*amount, "OK")
    assert till.state.phase is Phase.AWAIT_CARD
    return till.feed(
        CardSwiped(
            till.now_s, card, "2601", last_sun_counter=last, offline_sales_of_card=offline_sales
        )
    )


def test_uid_only_card_goes_online_and_its_tier_is_in_the_record() -> None:
    till = Till()
    effects = tap(till, UID_CARD)
    assert till.state.phase is Phase.AUTHORIZING
    record = next(e for e in effects if isinstance(e, Record))
    assert record.txn.card is not None and record.txn.card.tier is CardTier.UID_ONLY
    assert any(isinstance(e, Authorize) for e in effects)
    assert "04********E5F6" in record.txn.masked_pan


def test_uid_only_card_is_refused_offline_by_default() -> None:
    till = Till()
    till.link(LinkStatus.OFFLINE, "DNS")
    tap(till, UID_CARD)
    assert till.state.phase is Phase.CASH_ONLY
    assert "UID card: online only" in till.screen_text


def test_uid_only_offline_limit_when_the_program_allows_one() -> None:
    till = Till(Settings(limits=OfflineLimits(uid_only_floor_limit_minor=500)))
    till.link(LinkStatus.OFFLINE, "DNS")
    tap(till, UID_CARD, "600")
    assert till.state.phase is Phase.CASH_ONLY and "UID card: over EUR 5.00" in till.screen_text
    till.keys("CANCEL")
    tap(till, UID_CARD, "500")
    assert till.state.phase is Phase.OFFLINE_APPROVED


def test_sun_card_is_approved_offline_within_the_usual_limits() -> None:
    till = Till()
    till.link(LinkStatus.OFFLINE, "DNS")
    tap(till, sun_card(8), last=7)
    assert till.state.phase is Phase.OFFLINE_APPROVED


def test_replayed_sun_counter_is_declined_before_anything_is_journaled() -> None:
    for link in (LinkStatus.ONLINE, LinkStatus.OFFLINE):
        till = Till()
        till.link(link, "DNS")
        effects = tap(till, sun_card(7), last=7)
        assert till.state.phase is Phase.DECLINED and "CARD REPLAYED" in till.screen_text
        assert not any(isinstance(e, Record | Authorize) for e in effects)


def test_per_card_offline_count_applies_to_a_sun_card() -> None:
    """The journal counts by the card's identity (the UID for NFC cards: see the journal's
    tests); the core refuses once the count the tap carries reaches the limit."""
    till = Till(Settings(limits=OfflineLimits(max_per_card=1)))
    till.link(LinkStatus.OFFLINE, "DNS")
    tap(till, sun_card(1))
    till.keys("OK")
    tap(till, sun_card(2), last=1, offline_sales=1)
    assert till.state.phase is Phase.CASH_ONLY and "card 1x offline" in till.screen_text


def test_bad_uid_is_a_read_error() -> None:
    till = Till()
    tap(till, Card.from_uid("04A1B2"))
    assert till.state.phase is Phase.DECLINED and "CARD READ ERROR" in till.screen_text

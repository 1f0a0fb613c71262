"""The journal keeps each card's tier and reader, seals NFC cards, answers the replay check."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from journal_helpers import offline_sale, online_sale

from pitill.card.model import Card, CardTier, ReadBy, SunMessage
from pitill.core.types import TxnStatus
from pitill.journal.seal import Sealer
from pitill.journal.store import Journal

SUN = SunMessage(bytes(range(16)), bytes(range(8)))


def test_every_card_row_has_its_tier_and_reader(journal: Journal) -> None:
    stripe = journal.record(online_sale(1))
    uid = journal.record(replace(online_sale(2), card=Card.from_uid("04A1B2C3D4E5F6")))
    assert (stripe.card_tier, stripe.card_read_by) == ("stripe", "serial-stripe")
    assert (uid.card_tier, uid.card_read_by) == ("uid_only", "pn532")
    assert uid.masked_pan == "04********E5F6"


def test_last_sun_counter_is_the_highest_journaled_for_that_uid(journal: Journal) -> None:
    assert journal.last_sun_counter("uid:04DE5F1EACC040") is None
    # Approvals carry the card's fingerprint (for its limits) within the window: so does the
    # replay check. A decline does not count; the host checks every counter anyway.
    for seq, counter in ((1, 5), (2, 9), (3, 7)):
        card = Card.from_sun("04DE5F1EACC040", counter, SUN)
        journal.record(replace(online_sale(seq, TxnStatus.APPROVED), card=card))
    declined = Card.from_sun("04DE5F1EACC040", 11, SUN)
    journal.record(replace(online_sale(4, TxnStatus.DECLINED), card=declined))
    other = Card.from_sun("04AAAAAAAAAAAA", 30, SUN)
    journal.record(replace(online_sale(5, TxnStatus.APPROVED), card=other))
    assert journal.last_sun_counter("uid:04DE5F1EACC040") == 9
    assert journal.last_sun_counter("uid:04BBBBBBBBBBBB") is None
    with sqlite3.connect(journal.path) as raw:  # the UID itself is nowhere in the row
        assert raw.execute("SELECT count(*) FROM txns WHERE sun_uid != ''").fetchone() == (0,)
    raw.close()


def test_offline_nfc_sale_is_sealed_and_forwarded_with_its_sun_message(journal: Journal) -> None:
    card = Card.from_sun("04DE5F1EACC040", 12, SUN)
    journal.record(replace(offline_sale(1), card=card))
    item = journal.next_forward_item()
    assert item is not None and item.card == card
    assert item.card.tier is CardTier.SUN and item.card.read_by is ReadBy.PN532
    with sqlite3.connect(journal.path) as raw:
        (blob,) = raw.execute("SELECT sealed_card FROM txns").fetchone()
    raw.close()
    assert b"04DE5F1EACC040" not in blob and SUN.picc_data not in blob


def test_stripe_blobs_keep_their_format(tmp_path: object) -> None:
    from pathlib import Path

    sealer = Sealer.load_or_create(Path(str(tmp_path)) / "seal.key")
    stripe = Card(pan="4111111111111111", expiry_yymm="3012")
    assert sealer.open(1, sealer.seal(1, stripe)) == stripe
    uid = Card.from_uid("04A1B2C3D4E5F6", ReadBy.PN532)
    assert sealer.open(2, sealer.seal(2, uid)) == uid

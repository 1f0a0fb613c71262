"""The terminal's copy of the program's hotlist: entries only, durable, versioned."""

from __future__ import annotations

from journal_helpers import OpenJournal

from pitill.card.hotlist import hotlist_entry, program_card
from pitill.card.model import Card
from pitill.host.cards import parse_card
from pitill.records import HotlistPage

KEY = bytes(range(32))
CARD = Card("4111111111111111", "3012")
TAG = Card.from_uid("04a1b2c3d4e5f6")


def entry(card: Card) -> str:
    return hotlist_entry(KEY, program_card(card))


def page(version: int, *changes: tuple[str, bool], key: bytes = KEY) -> HotlistPage:
    return HotlistPage(key.hex(), version, False, changes)


def test_the_terminal_names_a_card_as_the_host_does() -> None:
    for card, written in ((CARD, "4111111111111111"), (TAG, "uid:04A1B2C3D4E5F6")):
        assert program_card(card) == parse_card(written).canonical


def test_changes_apply_in_order_and_outlive_a_restart(open_journal: OpenJournal) -> None:
    journal = open_journal()
    assert not journal.is_hotlisted(CARD) and journal.hotlist_version() == 0
    assert journal.apply_hotlist(page(3, (entry(CARD), True), (entry(TAG), True)), 0)
    assert journal.apply_hotlist(page(4, (entry(TAG), False)), 3)
    journal.close()
    again = open_journal()
    assert again.is_hotlisted(CARD) and not again.is_hotlisted(TAG)
    assert (again.hotlist_version(), again.hotlist_count()) == (4, 1)
    raw = (again.path).read_bytes()
    assert b"4111111111111111" not in raw and b"411111" not in raw  # entries only


def test_a_new_program_key_or_a_version_gone_back_drops_the_list(open_journal: OpenJournal) -> None:
    journal = open_journal()
    journal.apply_hotlist(page(3, (entry(CARD), True)), 0)
    other = bytes(32)
    assert not journal.apply_hotlist(page(5, key=other), 3)  # another program (new secret)
    assert (journal.hotlist_count(), journal.hotlist_version()) == (0, 0)
    assert journal.apply_hotlist(
        page(1, (hotlist_entry(other, program_card(CARD)), True), key=other), 0
    )
    assert journal.is_hotlisted(CARD)
    assert not journal.apply_hotlist(page(0, key=other), 1)  # the host's store went back
    assert (journal.hotlist_count(), journal.hotlist_version()) == (0, 0)

"""The host's hotlist: blocked, lost and replaced cards on, unblocked off, sent to terminals as
changes after the version they have, in pages (SQLite and a real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from host_messages import OTHER, PAN, request
from pitill.card.hotlist import hotlist_entry
from pitill.card.model import luhn_ok
from pitill.host.cards import parse_card
from pitill.records import HotlistPage
from pitill.upstream import messages as m

from .test_host import Host, run


def ask(version: int, stan: int = 1) -> m.Message:
    return m.build_hotlist_request(stan, "1130120000", "PITILL01", version)


def pages(answers: list[m.Message]) -> list[HotlistPage]:
    found = [m.parse_hotlist(answer) for answer in answers]
    assert all(page is not None for page in found)
    return [page for page in found if page is not None]


def test_blocks_unblocks_and_replacements_reach_terminals_as_changes(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            store = host.store
            card, other = parse_card(PAN), parse_card(OTHER)
            store.add_account(card, 100)
            store.add_account(other, 100)
            [empty] = pages(await host.send(ask(0)))
            assert (empty.version, empty.more, empty.changes) == (0, False, ())
            store.set_status(card, "blocked")
            store.set_status(card, "lost")  # still on the list: no change
            [first] = pages(await host.send(ask(0)))
            mine = hotlist_entry(store.hotlist_key, card.canonical)
            assert first.key_hex == store.hotlist_key.hex() and first.changes == ((mine, True),)
            store.set_status(card, "active")
            store.replace(other, parse_card("uid:04A1B2C3D4E5F6"))
            [later] = pages(await host.send(ask(first.version)))
            theirs = hotlist_entry(store.hotlist_key, other.canonical)
            assert later.changes == ((mine, False), (theirs, True))
            assert store.hotlisted() == [theirs]
            [same] = pages(await host.send(ask(later.version)))
            assert (same.version, same.changes) == (later.version, ())
            [sale] = await host.send(request("0200", 9, 100, pan=OTHER))
            assert sale["39"] == "62"  # online the host declines a listed card itself

    run(main())


def test_a_long_list_comes_in_pages_and_an_unknown_version_starts_over(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            store = host.store
            count = m.HOTLIST_PAGE_ENTRIES + 3
            for i in range(count):
                pan = f"627{i:012d}"
                pan += str(next(d for d in range(10) if luhn_ok(pan + str(d))))
                store.add_account(parse_card(pan), 0)
                store.set_status(parse_card(pan), "blocked")
            first, second = pages(await host.send(ask(0), ask(0)))
            assert first == second and first.more and len(first.changes) == count - 3
            [rest] = pages(await host.send(ask(first.version)))
            assert not rest.more and len(rest.changes) == 3
            [gone_back] = pages(await host.send(ask(rest.version + 1000)))
            assert (gone_back.version, gone_back.changes) == (0, ())

    run(main())

"""The shell keeps the program's hotlist: fetched after each (re)connect, page by page, into the
journal, and read for every card; asked again on a timer; nothing is asked while offline, and a
failed fetch keeps the list as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from shell_kit import ShellRig

from pitill import app
from pitill.card.hotlist import hotlist_entry, program_card
from pitill.card.model import Card
from pitill.core.state import Phase
from pitill.core.types import LinkStatus, TxnStatus
from pitill.errors import UpstreamError
from pitill.records import HotlistPage

KEY = bytes(range(32))
CARD = Card("4111111111111111", "3012")
ENTRY = hotlist_entry(KEY, program_card(CARD))


class FakeHost:
    """The host's list of changes, served `page` at a time; records every version asked."""

    def __init__(self, page: int = 2) -> None:
        self.changes: list[tuple[str, bool]] = []
        self.page = page
        self.asked: list[int] = []
        self.down = False

    async def fetch_hotlist(self, version: int, timeout_s: float | None = None) -> HotlistPage:
        self.asked.append(version)
        if self.down:
            raise UpstreamError("no route")
        after = self.changes[version : version + self.page]
        more = version + len(after) < len(self.changes)
        return HotlistPage(KEY.hex(), version + len(after), more, tuple(after))


def test_the_list_comes_after_each_reconnect_and_a_listed_card_is_refused_offline(
    tmp_path: Path,
) -> None:
    host = FakeHost()
    host.changes = [(f"{i:016x}", True) for i in range(3)] + [(ENTRY, True)]
    rig = ShellRig(tmp_path, hotlist=host)
    try:
        rig.link(LinkStatus.ONLINE)
        assert rig.settle_until(lambda: rig.journal.hotlist_version() == 4)
        assert host.asked == [0, 2] and rig.journal.hotlist_count() == 4
        rig.link(LinkStatus.OFFLINE)
        host.changes.append(("0000000000000000", False))
        rig.keys("5", "0", "0", "OK")
        rig.swipe(CARD)
        assert rig.phase is Phase.DECLINED and "CARD BLOCKED" in rig.terminal.screen.text()
        assert rig.status_of(1) is TxnStatus.DECLINED
        assert host.asked == [0, 2]  # nothing asked while offline
        rig.keys("OK")
        rig.link(LinkStatus.ONLINE)  # reconnected: only what changed since version 4
        assert rig.settle_until(lambda: rig.journal.hotlist_version() == 5)
        assert host.asked == [0, 2, 4] and rig.journal.hotlist_count() == 3
    finally:
        rig.close()


def test_a_failed_fetch_keeps_the_list(tmp_path: Path) -> None:
    host = FakeHost()
    host.changes = [(ENTRY, True)]
    rig = ShellRig(tmp_path, hotlist=host)
    try:
        rig.link(LinkStatus.ONLINE)
        assert rig.settle_until(lambda: rig.journal.hotlist_version() == 1)
        rig.link(LinkStatus.OFFLINE)
        host.down = True
        rig.link(LinkStatus.ONLINE)
        assert rig.settle_until(lambda: len(host.asked) == 2)
        assert rig.journal.is_hotlisted(CARD) and rig.journal.hotlist_version() == 1
    finally:
        rig.close()


def test_the_list_is_asked_again_on_a_timer_while_online(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app, "HOTLIST_REFRESH_S", 0.05)
    host = FakeHost()
    rig = ShellRig(tmp_path, hotlist=host)
    try:
        rig.link(LinkStatus.ONLINE)
        assert rig.settle_until(lambda: len(host.asked) >= 1)
        host.changes.append((ENTRY, True))  # blocked meanwhile; the link never changed
        assert rig.settle_until(lambda: rig.journal.is_hotlisted(CARD))
    finally:
        rig.close()


class NoHotlistHost:
    """A host that keeps no hotlist (the sandbox acquirer, a bank): answers every ask with None."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    async def fetch_hotlist(self, version: int, timeout_s: float | None = None) -> None:
        self.asked.append(version)
        return None


def test_a_host_that_keeps_no_hotlist_is_not_asked_at_every_reconnect(tmp_path: Path) -> None:
    """Each 0800 costs the host, and one swallowed by a dead link delays the sale behind it: once
    the host said it keeps none, only the timer asks again."""
    host = NoHotlistHost()
    rig = ShellRig(tmp_path, hotlist=host)
    try:
        rig.link(LinkStatus.ONLINE)
        assert rig.settle_until(lambda: host.asked == [0])
        for _ in range(3):
            rig.link(LinkStatus.OFFLINE)
            rig.link(LinkStatus.ONLINE)
        rig.settle_until(lambda: len(host.asked) > 1, limit=30)
        assert host.asked == [0]  # the timer still asks (HOTLIST_REFRESH_S)
    finally:
        rig.close()

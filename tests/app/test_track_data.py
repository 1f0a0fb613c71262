"""A swipe's track data lives only until the sale's 0200 takes it, or the sale is decided without
one: it is never journaled, and nothing keeps it afterwards (card/sealed_track.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from shell_kit import GOOD, ShellRig

from pitill.card.model import Card
from pitill.card.sealed_track import SealedTrack
from pitill.core.state import Phase
from pitill.core.types import LinkStatus, TxnStatus

TRACK2 = f"{GOOD.pan}={GOOD.expiry_yymm}1015550123"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[ShellRig]:
    rig = ShellRig(tmp_path)
    yield rig
    rig.close()


def swiped() -> tuple[SealedTrack, Card]:
    track = SealedTrack(2, TRACK2)
    return track, dataclasses.replace(GOOD, track=track)


def test_an_offline_sale_drops_the_track_it_never_sent(rig: ShellRig) -> None:
    rig.link(LinkStatus.OFFLINE)
    track, card = swiped()
    rig.keys("1", "0", "0", "0", "OK")
    rig.swipe(card)
    assert rig.status_of(1) is TxnStatus.PENDING
    assert not track.held
    assert TRACK2.encode() not in b"".join(
        p.read_bytes() for p in rig.journal.path.parent.iterdir() if p.is_file()
    )


def test_the_track_stays_sealed_until_the_0200_is_built(rig: ShellRig) -> None:
    rig.link(LinkStatus.ONLINE)
    track, card = swiped()
    rig.keys("1", "0", "0", "0", "OK")
    rig.swipe(card)
    assert rig.phase is Phase.AUTHORIZING and track.held  # the 0200 is the shell's to build
    rig.answer(1, "approve")
    assert not track.held  # the answer came: nothing of the track is left

"""The sandbox program's host and NFC cards: UID-only approved, SUN verified, replays declined."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pitill.card.model import Card
from pitill.card.sun import card_file_key, make_sun
from pitill.core.responses import APPROVED, SECURITY_VIOLATION
from pitill.sim.acquirer import AcquirerHost
from pitill.sim.sun_program import SANDBOX_MASTER_KEY, SANDBOX_META_KEY, virtual_uid
from pitill.upstream.messages import Message, decode, encode, nfc_card_data

UID = virtual_uid("alice")


def sun_card(counter: int, master_key: bytes = SANDBOX_MASTER_KEY) -> Card:
    message = make_sun(SANDBOX_META_KEY, card_file_key(master_key, UID), UID, counter, bytes(5))
    return Card.from_sun(UID.hex().upper(), counter, message)


def request(card: Card, stan: int, mti: str = "0200", when: str = "1128101500") -> Message:
    message: Message = {
        "t": mti,
        "3": "000000",
        "4": "000000000700",
        "7": when,
        "11": f"{stan:06d}",
        "12": when[4:],
        "13": when[:4],
        "22": "072",
        "41": "PITILL01",
        "42": "PITILLSHOP00001",
        "48": nfc_card_data(card),
        "49": "978",
    }
    if mti in ("0220", "0221"):
        message |= {"38": f"OF{stan:04d}", "39": "Y3"}  # the terminal's offline decision
    elif mti in ("0420", "0421"):
        message["39"] = "68"  # reason: the 0200's answer came too late
    return decode(encode(message))  # as it crosses the wire


def answers(tmp_path: Path, *messages: Message) -> list[str]:
    async def run() -> list[str]:
        async with AcquirerHost(tmp_path) as host:
            return [host.process(m)["39"] for m in messages]  # type: ignore[index]

    return asyncio.run(run())


def test_uid_only_cards_are_approved_by_uid(tmp_path: Path) -> None:
    card = Card.from_uid("04A1B2C3D4E5F6")
    assert answers(tmp_path, request(card, 1)) == [APPROVED]


def test_sun_taps_verify_and_a_replayed_counter_is_declined_online(tmp_path: Path) -> None:
    assert answers(
        tmp_path,
        request(sun_card(1), 1),
        request(sun_card(2), 2),
        request(sun_card(1), 3),  # a clone replaying the first tap
    ) == [APPROVED, APPROVED, SECURITY_VIOLATION]


def test_a_forged_message_is_declined(tmp_path: Path) -> None:
    forged = sun_card(5, master_key=bytes(16))  # right meta key, wrong card key
    assert answers(tmp_path, request(forged, 1)) == [SECURITY_VIOLATION]


def test_an_offline_replay_is_declined_after_the_fact_but_a_late_genuine_advice_is_not(
    tmp_path: Path,
) -> None:
    # Online at another terminal: counters 3 and 5. Then advices of offline sales arrive: counter
    # 4 (a genuine tap, forwarded late) is accepted; counter 5 again (a clone) is declined.
    assert answers(
        tmp_path,
        request(sun_card(3), 1),
        request(sun_card(5), 2),
        request(sun_card(4), 3, mti="0220"),
        request(sun_card(5), 4, mti="0220"),
    ) == [APPROVED, APPROVED, APPROVED, SECURITY_VIOLATION]


def test_a_repeated_advice_is_a_duplicate_not_a_replay(tmp_path: Path) -> None:
    first = request(sun_card(7), 1, mti="0220")
    repeat = {**first, "t": "0221"}
    assert answers(tmp_path, first, repeat) == [APPROVED, APPROVED]


def test_a_reversed_sale_frees_its_tap_for_the_offline_advice(tmp_path: Path) -> None:
    reversal: Message = dict(request(sun_card(9), 1))  # with the sale's card (22, 48)
    reversal["t"] = "0420"
    reversal["39"] = "68"  # reason: the 0200's answer came too late
    reversal["90"] = "0200" + "000001" + "1128101500" + "0" * 22
    assert answers(
        tmp_path,
        request(sun_card(9), 1),  # timed out at the terminal: outcome unknown
        reversal,
        request(sun_card(9), 2, mti="0220"),  # the same tap, decided offline
    ) == [APPROVED, APPROVED, APPROVED]


def test_the_ledger_reload_remembers_used_counters(tmp_path: Path) -> None:
    assert answers(tmp_path, request(sun_card(1), 1)) == [APPROVED]
    assert answers(tmp_path, request(sun_card(1), 2)) == [SECURITY_VIOLATION]

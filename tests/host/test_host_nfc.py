"""The closed-loop host and NFC cards: a tap's 0200/0220 carries field 48, not a PAN.

`uid_only:UID` pays from account uid:UID; a SUN tap (NTAG 424 DNA) is decrypted and its SDMMAC
verified with the program's keys (`pitill host sun-keys init`), and its counter must rise above
the last one the host took from that card: a replay or a forgery is declined 63 online, and an
offline one is recorded and declined after the fact (a loss), never dropped.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from host_messages import request, reversal_of, serving_hosts
from pitill.card.model import Card
from pitill.card.sun import SANDBOX_MASTER_KEY, SANDBOX_META_KEY, card_file_key, make_sun
from pitill.core.responses import INVALID_CARD, SECURITY_VIOLATION
from pitill.host.cards import SunKeys, parse_card, write_sun_keys
from pitill.host.settlement import ALL_TIME, Figures, settle
from pitill.host.store import HostStore
from pitill.sim.sun_program import virtual_uid
from pitill.upstream.messages import POS_ENTRY_CONTACTLESS, Message, nfc_card_data
from pitill_cli import PITILL

from .test_host import Host, balance_of, run

UID = "04A1B2C3D4E5F6"
TAG = bytes.fromhex("04112233445566")
TOPUP = {"3": "210000"}
BALANCE = {"3": "310000"}
REFUND = {"3": "200000"}


def tapped(mti: str, stan: int, amount_minor: int, card_data: str, **extra: str) -> Message:
    """An NFC card's request: fields 2 and 14 gone, 22 contactless, 48 the card's data."""
    message = request(mti, stan, amount_minor, **extra)
    del message["2"], message["14"]
    message.update({"22": POS_ENTRY_CONTACTLESS, "48": card_data})
    return message


def sun(counter: int, uid: bytes = TAG, master_key: bytes = SANDBOX_MASTER_KEY) -> str:
    """Field 48 of the tap of a card of the sandbox program (made with `master_key`)."""
    message = make_sun(SANDBOX_META_KEY, card_file_key(master_key, uid), uid, counter, bytes(5))
    return nfc_card_data(Card.from_sun(uid.hex().upper(), counter, message))


def sandbox_keys(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    write_sun_keys(data_dir, SunKeys(SANDBOX_META_KEY, SANDBOX_MASTER_KEY))


def test_a_uid_only_tap_pays_tops_up_and_is_refunded_on_the_uid_account(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(f"uid:{UID}"), 2000)
            sale, unknown, topup, inquiry = await host.send(
                tapped("0200", 1, 1250, f"uid_only:{UID}"),
                tapped("0200", 2, 100, "uid_only:04FFFFFFFFFFFF"),
                tapped("0200", 3, 500, f"uid_only:{UID}", **TOPUP),
                tapped("0200", 4, 0, f"uid_only:{UID}", **BALANCE),
            )
            assert sale["39"] == "00" and sale["54"].endswith("000000000750")
            assert unknown["39"] == INVALID_CARD
            assert topup["39"] == "00" and inquiry["54"].endswith("000000001250")
            assert balance_of(host.store, f"uid:{UID}") == 1250
            (refund,) = await host.send(tapped("0200", 5, 250, f"uid_only:{UID}", **REFUND))
            assert refund["39"] == "00" and balance_of(host.store, f"uid:{UID}") == 1500

    run(main())


def test_sun_taps_pay_once_per_counter_online_and_offline(
    tmp_path: Path, database: str | None
) -> None:
    sandbox_keys(tmp_path)

    async def main() -> None:
        async with Host(tmp_path, database) as host:
            card = f"uid:{TAG.hex().upper()}"
            host.store.add_account(parse_card(card), 5000)
            first = tapped("0200", 1, 1000, sun(7))
            answers = await host.send(
                first,
                first,  # the same message again: its stored answer, nothing charged twice
                tapped("0200", 2, 100, sun(7)),  # the same tap in a new sale: a replay
                tapped("0200", 3, 100, sun(5)),  # an older counter: a replay
                tapped("0200", 4, 200, sun(8)),  # the card's next tap
                tapped("0220", 5, 300, sun(8)),  # offline, replayed: taken, declined after
                tapped("0220", 6, 400, sun(9)),  # offline, fresh
                tapped("0200", 7, 100, sun(10, master_key=bytes(16))),  # a clone: wrong MAC
                tapped("0220", 8, 100, sun(11, master_key=bytes(16))),  # a clone offline
            )
            codes = [a["39"] for a in answers]
            assert codes == ["00", "00", "63", "63", "00", "63", "00", "63", "63"]
            assert answers[0] == answers[1]
            assert balance_of(host.store, card) == 5000 - 1000 - 200 - 400
            # the declined advices are the program's losses, recorded, never dropped
            assert settle(host.store, *ALL_TIME)[0].losses == Figures(2, 400)
            # the clone's counters were never taken: the real card's tap 10 still pays
            (real,) = await host.send(tapped("0200", 9, 100, sun(10)))
            assert real["39"] == "00"

    run(main())


def test_a_sun_tap_without_the_programs_keys_is_refused(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(f"uid:{TAG.hex().upper()}"), 5000)
            (answer,) = await host.send(tapped("0200", 1, 100, sun(1)))
            assert answer["39"] == INVALID_CARD

    run(main())


def test_sun_keys_init_writes_keys_once(tmp_path: Path) -> None:
    data = tmp_path / "host"
    made = subprocess.run(
        [*PITILL, "host", "sun-keys", "init", "--data-dir", str(data)],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    meta = (data / "sun-meta.key").read_text().strip()
    assert len(bytes.fromhex(meta)) == 16 and bytes.fromhex(meta) != SANDBOX_META_KEY
    assert (data / "sun-master.key").stat().st_mode & 0o777 == 0o600
    again = subprocess.run(
        [*PITILL, "host", "sun-keys", "init", "--data-dir", str(data), "--sandbox"],
        capture_output=True,
        text=True,
    )
    assert again.returncode != 0 and "exists already" in again.stderr
    assert (data / "sun-meta.key").read_text().strip() == meta
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize("name", ["sun-meta.key", "sun-master.key"])
def test_a_broken_key_file_is_named(tmp_path: Path, name: str) -> None:
    sandbox_keys(tmp_path)
    (tmp_path / name).write_text("not hex\n")
    shown = subprocess.run(
        [*PITILL, "host", "account", "show", f"uid:{UID}", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert shown.returncode != 0 and name in shown.stderr and "Traceback" not in shown.stderr


def test_two_hosts_never_both_take_one_counter(tmp_path: Path, database: str | None) -> None:
    """Two host servers on one store, each sent the same tap at once by another terminal: one
    sale is approved, the other refused as a replay, for every counter."""
    sandbox_keys(tmp_path)
    rounds = 12

    async def main() -> None:
        async with Host(tmp_path, database) as one, Host(tmp_path, database) as two:
            card = f"uid:{TAG.hex().upper()}"
            one.store.add_account(parse_card(card), 100_000)
            for counter in range(1, rounds + 1):
                first, second = await asyncio.gather(
                    one.send(tapped("0200", counter, 100, sun(counter), terminal_id="PITILL01")),
                    two.send(tapped("0200", counter, 100, sun(counter), terminal_id="PITILL02")),
                )
                assert sorted([first[0]["39"], second[0]["39"]]) == ["00", SECURITY_VIOLATION]
            assert balance_of(one.store, card) == 100_000 - 100 * rounds

    run(main())


def test_a_reversed_sun_sale_frees_its_tap_for_the_same_sales_advice(
    tmp_path: Path, database: str | None
) -> None:
    """A sale timed out at the terminal: it reverses the 0200 and approves the same tap offline.
    The reversal gives back the money and the counter, so that advice is taken; a later tap's
    counter is never given back."""
    sandbox_keys(tmp_path)

    async def main() -> None:
        async with Host(tmp_path, database) as host:
            card = f"uid:{TAG.hex().upper()}"
            host.store.add_account(parse_card(card), 5000)
            timed_out = tapped("0200", 1, 1000, sun(3))
            reversal = reversal_of({**timed_out, "2": ""}, 2)
            del reversal["2"]
            answers = await host.send(
                timed_out,
                reversal,
                tapped("0220", 3, 1000, sun(3)),  # the same tap, approved offline
                tapped("0220", 4, 1000, sun(3)),  # and again: a replay
            )
            assert [a["39"] for a in answers] == ["00", "00", "00", SECURITY_VIOLATION]
            assert balance_of(host.store, card) == 4000
            sale = tapped("0200", 5, 100, sun(4))
            later = tapped("0200", 6, 100, sun(5))
            reversal = reversal_of({**sale, "2": ""}, 7)
            del reversal["2"]
            answers = await host.send(sale, later, reversal, tapped("0220", 8, 100, sun(4)))
            assert [a["39"] for a in answers] == ["00", "00", "00", SECURITY_VIOLATION]
            assert balance_of(host.store, card) == 3900

    run(main())


SIM_SCRIPT = """expect link online
press 5 0 0 OK
tap ntag424 alice
expect screen "APPROVED"
press OK
press 1 2 5 OK
tap uid 04A1B2C3D4E5F6
expect screen "APPROVED"
press OK
press 3 0 0 OK
tap ntag424 alice
expect screen "APPROVED"
press OK
"""
# Another terminal whose virtual alice starts again at the same counters: a copy of her card.
CLONE_SCRIPT = """expect link online
press 2 0 0 OK
tap ntag424 alice
expect screen "NOT GENUINE"
press OK
"""


def test_a_terminal_taps_cards_at_a_real_host(tmp_path: Path) -> None:
    """`pitill sim --upstream` against `pitill host serve` with the sandbox program's keys: alice's
    NTAG 424 DNA pays twice and a UID-only tag pays; at another terminal a copy of alice replaying
    her first counter is declined by the host (that terminal never saw the counter)."""
    data = tmp_path / "host"
    for argv in (
        ["sun-keys", "init", "--sandbox"],
        ["account", "add", f"uid:{virtual_uid('alice').hex().upper()}", "--balance", "20"],
        ["account", "add", f"uid:{UID}", "--balance", "5"],
    ):
        made = subprocess.run(
            [*PITILL, "host", *argv, "--data-dir", str(data)], capture_output=True, text=True
        )
        assert made.returncode == 0, made.stderr
    with serving_hosts("--data-dir", str(data)) as (port,):
        for name, script in (("terminal", SIM_SCRIPT), ("other", CLONE_SCRIPT)):
            (tmp_path / f"{name}.pitill").write_text(script, encoding="utf-8")
            result = subprocess.run(
                [*PITILL, "sim", "--upstream", f"127.0.0.1:{port}", "--script",
                 str(tmp_path / f"{name}.pitill"), "--data-dir", str(tmp_path / name),
                 "--expect-timeout", "20"],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stdout + result.stderr
    store = HostStore.open(data)
    try:
        assert balance_of(store, f"uid:{virtual_uid('alice').hex().upper()}") == 2000 - 500 - 300
        assert balance_of(store, f"uid:{UID}") == 500 - 125
    finally:
        store.close()

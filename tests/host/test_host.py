"""The program's host: accounts, the rules for sales, offline sales and reversals, exactly once,
over real TCP connections on loopback (several at once), against SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from host_messages import OTHER, PAN, request, reversal_of, serving_hosts
from pitill.errors import ConfigError
from pitill.host.cards import parse_card
from pitill.host.server import HostServer
from pitill.host.settlement import ALL_TIME, Figures, settle
from pitill.host.store import HostStore
from pitill.upstream.framing import frame, read_frame
from pitill.upstream.messages import Message, decode, encode
from pitill_cli import PITILL

from .conftest import db_args


class Host:
    """A HostServer on an ephemeral loopback port, and terminals' connections to it."""

    def __init__(self, data_dir: Path, database: str | None) -> None:
        self.store = HostStore.open(data_dir, database)
        self.server = HostServer(self.store, "127.0.0.1", 0)

    async def __aenter__(self) -> Host:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()
        self.store.close()

    async def send(self, *messages: Message) -> list[Message]:
        """One connection: each message in turn, each answer read before the next is sent."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        answers = []
        try:
            for message in messages:
                writer.write(frame(encode(message)))
                await writer.drain()
                data = await read_frame(reader)
                assert data is not None, "the host closed the connection"
                answers.append(decode(data))
        finally:
            writer.close()
        return answers


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def balance_of(store: HostStore, pan: str = PAN) -> int:
    return store.require(parse_card(pan)).balance_minor


def test_sales_spend_the_balance_and_carry_it_back(tmp_path: Path, database: str | None) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 2000)
            first, second, third = await host.send(
                request("0200", 1, 1250), request("0200", 2, 800), request("0200", 3, 700)
            )
            assert (first["39"], first["54"]) == ("00", "0002978C000000000750")
            assert first["4"] == "000000001250" and first["11"] == "000001"  # echoed
            assert second["39"] == "51" and second["54"].endswith("000000000750")
            assert third["39"] == "00" and third["54"].endswith("000000000050")
            assert "2" not in first  # the answer never carries the card number
            assert balance_of(host.store) == 50

    run(main())


def test_unknown_blocked_lost_cards_are_refused(tmp_path: Path, database: str | None) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 5000)
            host.store.add_account(parse_card(OTHER), 5000)
            host.store.set_status(parse_card(PAN), "blocked")
            host.store.set_status(parse_card(OTHER), "lost")
            answers = await host.send(
                request("0200", 1, 100),
                request("0200", 2, 100, pan=OTHER),
                request("0200", 3, 100, pan="4000000000000002"),
            )
            assert [a["39"] for a in answers] == ["62", "41", "14"]
            assert balance_of(host.store) == 5000

    run(main())


def test_offline_sales_are_always_taken_a_debt_first_paid_by_the_next_topup(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            card = parse_card(PAN)
            host.store.add_account(card, 1000)
            answers = await host.send(request("0220", 1, 700), request("0220", 2, 700))
            assert [a["39"] for a in answers] == ["00", "00"]  # the sales happened
            account = host.store.require(card)
            assert (account.balance_minor, account.debt_minor) == (-400, 400)
            assert [m.flag for m in host.store.history(account)][:2] == ["debt", ""]
            after, paid = host.store.topup(card, 1000)
            assert (after.balance_minor, paid) == (600, 400)

    run(main())


def test_an_offline_sale_on_a_blocked_card_is_a_loss_never_dropped(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 1000)
            host.store.set_status(parse_card(PAN), "blocked")
            (answer,) = await host.send(request("0220", 1, 300))
            assert answer["39"] == "62"  # declined after the fact: the terminal flags it
            assert settle(host.store, *ALL_TIME)[0].losses == Figures(1, 300)
            assert balance_of(host.store) == 1000

    run(main())


def test_every_message_exactly_once_across_repeats_and_connections(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 5000)
            sale, advice = request("0200", 1, 1000), request("0220", 2, 500)
            repeat = dict(advice, t="0221")
            first = await host.send(sale, advice)
            again = await host.send(sale, repeat, advice)  # another connection, the same keys
            assert [a["39"] for a in first + again] == ["00"] * 5
            assert again[0]["38"] == first[0]["38"]  # the stored answer, not a new charge
            assert balance_of(host.store) == 3500
            # a reversal gives back exactly what its sale took, once, however often it comes
            reversal = reversal_of(sale, 3)
            answers = await host.send(reversal, dict(reversal, t="0421"), reversal_of(sale, 4))
            assert [a["39"] for a in answers] == ["00", "00", "00"]
            assert balance_of(host.store) == 4500
            # a reversal of a sale the host declined or never saw moves nothing
            declined = request("0200", 5, 999_999)
            (no,) = await host.send(declined)
            assert no["39"] == "51"
            await host.send(reversal_of(declined, 6), reversal_of(request("0200", 77, 100), 7))
            assert balance_of(host.store) == 4500

    run(main())


def test_concurrent_sales_on_one_card_never_spend_more_than_it_holds(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 1000)
            terminals = [f"TERM{n:04d}" for n in range(8)]
            results = await asyncio.gather(
                *(
                    host.send(*(request("0200", s, 100, terminal_id=t) for s in range(1, 6)))
                    for t in terminals
                )
            )
            approved = sum(a["39"] == "00" for answers in results for a in answers)
            assert approved == 10 and balance_of(host.store) == 0  # 40 tries, 10 x 1.00 held

    run(main())


def test_a_malformed_request_is_answered_30(tmp_path: Path, database: str | None) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            broken = request("0200", 1, 100)
            del broken["41"]  # no terminal id
            (answer,) = await host.send(broken)
            assert answer["t"] == "0210" and answer["39"] == "30"

    run(main())


def test_cards_are_checked_and_stored_only_as_keyed_hashes(
    tmp_path: Path, database: str | None
) -> None:
    with pytest.raises(ConfigError, match="check digit"):
        parse_card("4111111111111112")
    with pytest.raises(ConfigError, match="uid:"):
        parse_card("uid:12345")
    store = HostStore.open(tmp_path, database)
    store.add_account(parse_card(PAN), 100)
    store.add_account(parse_card("uid:04a1b2c3d4e5f6"))
    store.close()
    if database is None:
        raw = (tmp_path / "host.sqlite3").read_bytes() + b"".join(
            p.read_bytes() for p in tmp_path.glob("host.sqlite3-*")
        )
    else:
        import psycopg

        with psycopg.connect(database) as conn:
            raw = repr(conn.execute("SELECT * FROM accounts").fetchall()).encode()
    assert PAN.encode() not in raw and b"411111******1111" in raw


def test_the_account_commands(tmp_path: Path, database: str | None) -> None:
    def host(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PITILL, "host", *args, "--data-dir", str(tmp_path), *db_args(database)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert host("account", "add", PAN, "--balance", "12.50").stdout.strip().endswith("12.50")
    assert "balance 22.50" in host("account", "topup", PAN, "10").stdout
    refused = host("account", "payout", PAN, "99")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "pay out at most the balance" in refused.stderr
    assert "blocked" in host("account", "block", PAN).stdout
    moved = host("account", "replace", PAN, "uid:04A1B2C3D4E5F6")
    assert "uid:04A1B2C3D4E5F6: active, balance 22.50" in moved.stdout
    assert "no account" in host("account", "show", "5555555555554444").stderr
    for holder in ("A\x1b[2JB", "two\nlines", "x" * 81):  # escapes would reach the terminal
        odd = host("account", "add", "5555555555554444", "--holder", holder)
        assert odd.returncode == 2 and odd.stderr.count("\n") == 1, odd.stderr
        assert "printable characters, one line" in odd.stderr


def test_two_host_processes_on_one_store_take_turns_on_one_card(
    tmp_path: Path, database: str | None
) -> None:
    """Two `pitill host serve` processes share one store: SQLite's write lock (BEGIN IMMEDIATE)
    or PostgreSQL's serializable transactions (retried on a conflict) make their sales on one
    card take turns, so the balance is never overspent."""
    store = HostStore.open(tmp_path, database)
    store.add_account(parse_card(PAN), 1500)
    store.close()
    with serving_hosts("--data-dir", str(tmp_path), *db_args(database), count=2) as ports:

        async def terminal(port: int, name: str) -> list[str]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            codes = []
            for stan in range(1, 11):
                writer.write(frame(encode(request("0200", stan, 100, terminal_id=name))))
                await writer.drain()
                data = await read_frame(reader)
                assert data is not None
                codes.append(decode(data)["39"])
            writer.close()
            return codes

        async def main() -> list[list[str]]:
            return await asyncio.gather(*(terminal(ports[n % 2], f"TERM{n:04d}") for n in range(4)))

        results = asyncio.run(main())
    assert sum(code == "00" for codes in results for code in codes) == 15
    store = HostStore.open(tmp_path, database)
    assert balance_of(store) == 0
    store.close()


def test_backup_and_csv_while_serving(tmp_path: Path, database: str | None) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 1000)
            await host.send(request("0200", 1, 250))
            if database is None:  # SQLite: an online copy while the host serves
                assert host.store.backup(tmp_path / "copy.db") == 1
            else:
                with pytest.raises(ConfigError, match="pg_dump"):
                    host.store.backup(tmp_path / "copy.db")
            rows = list(host.store.movements_csv())
            assert rows[0][:3] == ["at", "card", "kind"]
            assert [r[1:4] for r in rows[1:]] == [
                ["411111******1111", "topup", "1000"],
                ["411111******1111", "sale", "-250"],
            ]

    run(main())
    if database is None:
        import sqlite3

        with sqlite3.connect(tmp_path / "copy.db") as copy:
            assert copy.execute("SELECT balance_minor FROM accounts").fetchone() == (750,)


def test_a_reversal_by_stan_alone_gives_back_the_latest_sale_since_its_bound(
    tmp_path: Path, database: str | None
) -> None:
    """After a power cut took a sale's row, the terminal reverses the STAN with ten zeros for
    the original time and the reserved block's start as its own local time (journal/store.py)."""

    def by_stan_alone(stan: int, since: str, own_stan: int) -> Message:
        message = request("0420", own_stan, 0)
        message.update({"7": since, "12": since[4:], "13": since[:4]})
        message["90"] = "0200" + f"{stan:06d}" + "0" * 10 + "0" * 22
        return message

    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 5000)
            later = {"7": "1130120000", "12": "120000", "13": "1130"}
            old, lost = request("0200", 5, 700), request("0200", 5, 1200, **later)
            await host.send(old, lost)
            assert balance_of(host.store) == 3100
            answers = await host.send(
                by_stan_alone(5, lost["7"], 900),  # gives back the lost sale, not the old one
                by_stan_alone(5, lost["7"], 901),  # nothing left to give back
                by_stan_alone(6, old["7"], 902),  # a STAN never seen: harmless
            )
            assert [a["39"] for a in answers] == ["00", "00", "00"]
            assert balance_of(host.store) == 4300

    run(main())


def test_a_mistyped_data_dir_is_an_error_not_a_new_program(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    for command in (["report"], ["account", "show", PAN], ["terminal", "list"]):
        done = subprocess.run(
            [*PITILL, "host", *command, "--data-dir", str(missing)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2 and "no host data here" in done.stderr, done.stderr
    assert not missing.exists()

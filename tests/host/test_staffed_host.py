"""A staffed terminal's messages at the host: a cash top-up (0200, processing code 21) and a
balance inquiry (code 31), exactly once, reversible, on SQLite and a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from host_messages import OTHER, PAN, request, reversal_of
from pitill.host.cards import parse_card
from pitill.host.settlement import outstanding, period, settle

from .test_host import Host, balance_of, run

TOPUP = {"3": "210000"}
BALANCE = {"3": "310000"}


def test_a_top_up_pays_the_debt_first_and_answers_the_balance_once(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 500)
            host.store.execute("UPDATE accounts SET balance_minor = -250")  # an offline debt
            topup = request("0200", 1, 2000, **TOPUP)
            first, again = await host.send(topup, topup)
            assert (first["39"], first["54"]) == ("00", "0002978C000000001750")
            assert again == first and balance_of(host.store) == 1750  # once
            [spend] = await host.send(request("0200", 2, 1750))
            assert spend["39"] == "00" and spend["54"].endswith("C000000000000")
            movements = host.store.history(host.store.require(parse_card(PAN)))
            kinds = [(m.kind, m.amount_minor, m.terminal_id, m.stan) for m in movements[:2]]
            assert kinds == [("sale", -1750, "PITILL01", 2), ("topup", 2000, "PITILL01", 1)]

    run(main())


def test_a_top_up_whose_answer_was_lost_is_reversed_once(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 100)
            topup = request("0200", 7, 2000, **TOPUP)
            reversal = reversal_of(topup, 7)
            await host.send(topup)
            first, again = await host.send(reversal, {**reversal, "t": "0421"})
            assert first["39"] == again["39"] == "00"
            assert balance_of(host.store) == 100

    run(main())


def test_the_program_refuses_a_top_up_of_a_card_it_would_refuse_a_sale(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 100)
            host.store.set_status(parse_card(PAN), "lost")
            lost, unknown, nothing = await host.send(
                request("0200", 1, 500, **TOPUP),
                request("0200", 2, 500, pan=OTHER, **TOPUP),
                request("0200", 3, 0, **TOPUP),
            )
            assert (lost["39"], unknown["39"], nothing["39"]) == ("41", "14", "13")
            assert balance_of(host.store) == 100

    run(main())


def test_a_balance_inquiry_moves_nothing(tmp_path: Path, database: str | None) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            account = host.store.add_account(parse_card(PAN), 1234)
            asked, unknown = await host.send(
                request("0200", 1, 0, **BALANCE), request("0200", 2, 0, pan=OTHER, **BALANCE)
            )
            assert (asked["39"], asked["54"]) == ("00", "0002978C000000001234")
            assert unknown["39"] == "14" and "54" not in unknown
            assert len(host.store.history(account)) == 1  # the opening top-up only

    run(main())


def test_a_spent_top_up_reversed_leaves_a_debt_once_that_the_next_top_up_pays_first(
    tmp_path: Path, database: str | None
) -> None:
    """The top-up's answer was lost, so its terminal reverses it (0420, then 0421); meanwhile the
    card spent the money at another terminal. The reversal takes the balance below zero: that
    shortfall is a debt of the account, counted once, shown in the settlement and the accounts
    owing, and the next top-up pays it first."""

    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 100)
            topup = request("0200", 7, 2000, **TOPUP)
            reversal = {**reversal_of(topup, 7), **TOPUP}  # a reversal carries its 0200's code
            await host.send(topup)
            [spend] = await host.send(request("0200", 1, 1500, terminal_id="PITILL02"))
            assert spend["39"] == "00"
            first, again = await host.send(reversal, {**reversal, "t": "0421"})
            assert first["39"] == again["39"] == "00"
            assert balance_of(host.store) == 100 + 2000 - 1500 - 2000
            program, _ = settle(host.store, *period(None, None, None, datetime.now(UTC).date()))
            assert (program.debts.count, program.debts.amount_minor) == (1, 1400)
            assert outstanding(host.store)["debts_minor"] == 1400
            owing, _ = host.store.accounts_to_watch()
            assert [(a.card_shown, a.debt_minor) for a in owing] == [("411111******1111", 1400)]
            account, paid = host.store.topup(parse_card(PAN), 1000)
            assert (paid, account.balance_minor) == (1000, -400)
            program, _ = settle(host.store, *period(None, None, None, datetime.now(UTC).date()))
            assert (program.debts.count, program.debts.amount_minor) == (1, 1400)  # made once

    run(main())

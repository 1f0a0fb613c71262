"""End of day at the closed-loop host: the 0500 of a terminal's day is answered from the host's
own tables (sales, offline sales, top-ups, balance inquiries, void reversals), 00 when they equal
the terminal's totals and 95 with the host's own figures when they do not; over real TCP on
loopback, against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from host_messages import PAN, request, reversal_of
from pitill.config import TerminalConfig
from pitill.core.settlement import Reconciliation
from pitill.host.cards import parse_card
from pitill.upstream import messages as m

from .test_host import Host

TERMINAL = TerminalConfig()


def end_of_day(totals: Reconciliation, first: int, last: int) -> m.Message:
    batch = m.Batch(1, first, last)  # the 0500's own STAN follows the day's last
    return m.build_reconciliation(batch, totals, "EUR", last + 1, "1130235959", TERMINAL)


def test_the_host_checks_a_day_from_its_own_tables(tmp_path: Path, database: str | None) -> None:
    sale = request("0200", 1, 1250)
    voided = request("0200", 2, 300)
    lost = request("0200", 3, 400)
    held = Reconciliation(
        debits=3,  # 1, 2 (voided: counted, and reversed) and the offline sale 4
        debits_minor=1250 + 300 + 700,
        debit_reversals=1,
        debit_reversals_minor=300,
        credits=1,  # the top-up
        credits_minor=2000,
        inquiries=1,
    )

    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 5000)
            answers = await host.send(
                sale,
                voided,
                {**reversal_of(voided, 2), "39": "17"},  # the supervisor voided it
                lost,
                {**reversal_of(lost, 3), "39": "68"},  # its answer was lost: on neither side
                request("0220", 4, 700, **{"38": "OF0004", "39": "Y3"}),
                request("0200", 5, 2000, **{"3": "210000"}),  # a top-up: a credit
                request("0200", 6, 0, **{"3": "310000"}),  # a balance inquiry
                request("0200", 7, 99, terminal_id="PITILL02"),  # another terminal's
                end_of_day(held, 1, 7),
                end_of_day(Reconciliation(debits=2, debits_minor=1550), 1, 7),
            )
            assert [a["39"] for a in answers[:9]] == ["00"] * 9
            agreed, disagreed = answers[9], answers[10]
            assert agreed["t"] == "0510" and agreed["39"] == "00"
            assert agreed["48"] == "day=1 stan=000001-000007"
            assert m.reconciliation_of(agreed) == held
            assert disagreed["39"] == "95" and m.reconciliation_of(disagreed) == held
            assert host.server.counts["day_agreed"] == 1
            assert host.server.counts["day_disagreed"] == 1

    asyncio.run(main())


def test_a_day_outside_the_stans_holds_nothing(tmp_path: Path, database: str | None) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 5000)
            answers = await host.send(request("0200", 1, 1250), end_of_day(Reconciliation(), 2, 9))
            assert answers[1]["39"] == "00" and m.reconciliation_of(answers[1]) == Reconciliation()

    asyncio.run(main())

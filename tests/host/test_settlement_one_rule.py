"""One rule for what a sale or advice the host answered was (settlement.classify_message): the
settlement's approvals and losses and the 0510's totals (day_totals) read it alike, on SQLite
and a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from host_messages import PAN, request
from pitill.core.settlement import Reconciliation
from pitill.host.cards import parse_card
from pitill.host.settlement import day_totals, period, settle
from pitill.upstream.messages import Batch

from .test_host import Host, run

T = "TERMA001"


def test_an_advice_taken_with_another_approving_code_is_no_loss(
    tmp_path: Path, database: str | None
) -> None:
    """The settlement counted only 00 as approved, the 0510 every approving code of
    core/responses.py (00, 08, 11...): an advice taken with 08 was a loss in `pitill host
    report` and a debit in the 0510. The host answers 00 today; the rule must be one anyway."""

    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 1000)
            answers = await host.send(
                request("0200", 1, 300, terminal_id=T), request("0220", 2, 400, terminal_id=T)
            )
            assert [a["39"] for a in answers] == ["00", "00"]
            with host.store.transaction():  # honour with identification: approved all the same
                host.store.execute(
                    "UPDATE messages SET response_code = '08' WHERE terminal_id = ? AND stan = 2",
                    (T,),
                )
            program, _ = settle(host.store, *period(None, None, None, datetime.now(UTC).date()))
            assert (program.losses.count, program.losses.amount_minor) == (0, 0)
            assert (program.approved_offline.count, program.approved_offline.amount_minor) == (
                1,
                400,
            )
            assert (program.approved_online.count, program.approved_online.amount_minor) == (
                1,
                300,
            )
            assert day_totals(host.store, T, Batch(1, 1, 2)) == Reconciliation(
                debits=2, debits_minor=700
            )

    run(main())

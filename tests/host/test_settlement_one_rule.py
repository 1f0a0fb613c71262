"""One rule for what a sale or advice the host answered was (settlement.classify_message): the
settlement's approvals and losses and the 0510's totals (day_totals) read it alike, on SQLite
and a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from host_messages import PAN, request
from pitill.core.settlement import Reconciliation
from pitill.host.cards import parse_card
from pitill.host.settlement import ALL_TIME, day_totals, outage_view, period, settle
from pitill.upstream.messages import Batch

from .conftest import db_args
from .test_dashboard import BLOCKED, CARD, today_page
from .test_host import Host, run
from .test_settlement import pitill

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


def test_the_report_and_the_dashboard_show_the_settlement_s_losses(
    tmp_path: Path, database: str | None
) -> None:
    """`HostStore.losses()` kept its own rule (an advice not 00) beside classify_message: over
    a mixed day the report's all-time losses, the settlement's and the dashboard's are one
    figure (here every message is today's)."""

    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(CARD), 1000)
            host.store.add_account(parse_card(BLOCKED), 1000)
            host.store.set_status(parse_card(BLOCKED), "blocked")
            answers = await host.send(
                request("0200", 1, 300, pan=CARD, terminal_id=T),  # online
                request("0220", 2, 400, pan=CARD, terminal_id=T),  # offline, taken
                request("0220", 3, 900, pan=CARD, terminal_id=T),  # offline, overdraws: a debt
                request("0220", 4, 250, pan=BLOCKED, terminal_id=T),  # blocked: a loss
                request("0221", 5, 50, pan="4000056655665556", terminal_id=T),  # unknown: loss
                request("0220", 6, 70, pan=CARD, terminal_id=T),  # taken, then marked 08 below
            )
            assert [a["39"] for a in answers] == ["00", "00", "00", "62", "14", "00"]
            with host.store.transaction():  # honour with identification: approved all the same
                host.store.execute(
                    "UPDATE messages SET response_code = '08' WHERE terminal_id = ? AND stan = 6",
                    (T,),
                )
            program, _ = settle(host.store, *period(None, None, None, datetime.now(UTC).date()))
            assert (program.losses.count, program.losses.amount_minor) == (2, 300)
            assert settle(host.store, *ALL_TIME)[0].losses == program.losses
            [outage] = outage_view(host.store, datetime.now(UTC)).outages  # advices 2-6
            assert (outage.declined.count, outage.declined.amount_minor) == (2, 300)
        done = pitill("report", "--json", "--data-dir", str(tmp_path), *db_args(database))
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["losses"] == report["program"]["losses"] == {"count": 2, "amount_minor": 300}
        page = await today_page(tmp_path, database)
        assert "<td>Losses (declined after the fact)</td><td>2 · 3.00</td>" in page

    run(main())

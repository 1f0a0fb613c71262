"""End of day: settlement per terminal and for the program, the outage view, and `pitill host
report` (text, --json, --csv, --settlement-csv), from messages sent over real TCP to a real
HostServer, checked against the host's own tables, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from host_messages import OTHER, PAN, request, reversal_of
from pitill.host.cards import parse_card
from pitill.host.settlement import (
    HOST_DESK,
    SETTLE_QUIET_S,
    outage_view,
    outstanding,
    period,
    settle,
    terminal_rows,
)
from pitill.host.store import HostStore
from pitill_cli import run_pitill

from .conftest import db_args
from .test_host import Host, run

A, B = "TERMA001", "TERMB001"


async def a_day_of_sales(host: Host) -> None:
    """Two terminals: A sells online (one sale reversed); B sells online, then offline through
    an outage (one advice overdraws, one is on a blocked card), an online decline, and one more
    offline sale."""
    host.store.add_account(parse_card(PAN), 1000)
    host.store.add_account(parse_card(OTHER), 500)
    host.store.set_status(parse_card(OTHER), "blocked")
    sale_a = request("0200", 2, 200, terminal_id=A)
    answers = await host.send(
        request("0200", 1, 300, terminal_id=A), sale_a, reversal_of(sale_a, 3)
    )
    assert [a["39"] for a in answers] == ["00", "00", "00"]
    answers = await host.send(
        request("0200", 1, 100, terminal_id=B),
        request("0220", 2, 400, terminal_id=B),
        request("0220", 3, 500, terminal_id=B),  # 200 left: a debt of 300
        request("0220", 4, 50, pan=OTHER, terminal_id=B),  # blocked: a loss
        request("0200", 5, 10, terminal_id=B),  # online again: 51, the balance is -300
        request("0221", 6, 20, terminal_id=B),  # a second outage: a debt of 20 more
    )
    assert [a["39"] for a in answers] == ["00", "00", "00", "62", "51", "00"]


async def links_closed(store: HostStore) -> None:
    """Wait (bounded) until the host has seen every closed connection go down."""
    for _ in range(500):
        (open_links,) = store.execute("SELECT COUNT(*) FROM links WHERE down_at = ''").fetchone()
        if int(open_links) == 0:
            return
        await asyncio.sleep(0.01)


def test_settlement_per_terminal_and_program_matches_the_tables(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            await a_day_of_sales(host)
            today = datetime.now(UTC).date()
            program, terminals = settle(host.store, *period(None, None, None, today))
            m = program.money
            assert (m["sales_online"].count, m["sales_online"].amount_minor) == (3, 600)
            assert (m["sales_offline"].count, m["sales_offline"].amount_minor) == (3, 920)
            assert (m["reversals"].count, m["reversals"].amount_minor) == (1, 200)
            assert (m["topups"].count, m["topups"].amount_minor) == (2, 1500)
            assert program.net_sales_minor == 600 + 920 - 200
            assert (program.debts.count, program.debts.amount_minor) == (2, 320)
            assert (program.losses.count, program.losses.amount_minor) == (1, 50)
            assert (program.approved_online.count, program.approved_online.amount_minor) == (
                3,
                600,
            )
            assert program.approved_offline.amount_minor == 920
            assert program.offline_share() == {"count": 0.5, "amount": 920 / 1520}
            assert sorted(terminals) == [A, B, HOST_DESK]
            assert terminals[A].net_sales_minor == 300
            assert terminals[A].approved_offline.count == 0
            assert terminals[B].net_sales_minor == 1020
            assert terminals[B].losses.amount_minor == 50
            assert terminals[B].offline_share()["count"] == 0.75
            assert terminals[HOST_DESK].money["topups"].amount_minor == 1500
            # the program's figures are the sum of the terminals', and the tables' own sums
            for name in ("sales_online", "sales_offline", "reversals", "topups"):
                assert m[name].amount_minor == sum(
                    t.money[name].amount_minor for t in terminals.values()
                )
            (taken,) = host.store.execute(
                "SELECT -SUM(amount_minor) FROM movements WHERE kind IN "
                "('sale', 'offline_sale', 'reversal')"
            ).fetchone()
            assert program.net_sales_minor == int(taken)
            (balance,) = host.store.execute("SELECT SUM(balance_minor) FROM accounts").fetchone()
            assert int(balance) == 1500 - program.net_sales_minor
            assert outstanding(host.store) == {
                "held_minor": 500,
                "debts_minor": 320,
                "accounts_owing": 1,
            }

    run(main())


def test_a_period_counts_what_the_host_booked_in_it(tmp_path: Path, database: str | None) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            await a_day_of_sales(host)
            today = datetime.now(UTC).date()
            yesterday = today - timedelta(days=1)
            # the top-ups were booked yesterday
            host.store.execute(
                "UPDATE movements SET at = ? WHERE kind = 'topup'",
                (f"{yesterday}T23:59:59+00:00",),
            )
            program, _ = settle(host.store, *period(None, None, None, today))
            assert program.money["topups"].count == 0
            assert program.money["sales_online"].count == 3
            program, _ = settle(host.store, *period(str(yesterday), None, None, today))
            assert program.money["topups"].count == 2
            assert program.money["sales_online"].count == 0
            program, _ = settle(host.store, *period(None, str(yesterday), str(today), today))
            assert (program.money["topups"].count, program.money["sales_offline"].count) == (2, 3)

    run(main())


def test_outages_from_the_advices_and_the_links(tmp_path: Path, database: str | None) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            await a_day_of_sales(host)
            now = datetime.now(UTC)
            view = outage_view(host.store, now)
            assert [o.terminal_id for o in view.outages] == [B, B]
            first, second = view.outages
            year = now.year if (now.month, now.day) >= (11, 30) else now.year - 1
            assert first.first_sale_at == f"{year}-11-30T00:00:02+00:00"
            assert first.last_sale_at == f"{year}-11-30T00:00:04+00:00"
            assert (first.sales.count, first.sales.amount_minor) == (3, 950)
            assert (first.approved.count, first.declined.amount_minor) == (2, 50)
            assert first.debts == 1
            assert (second.sales.count, second.debts) == (1, 1)
            # advices came in just now: the latest run may still grow, the older one is closed
            assert (first.state, second.state) == ("settled", "arriving")
            tomorrow = (now + timedelta(days=1)).isoformat(timespec="seconds")
            assert outage_view(host.store, now, tomorrow).outages == []  # a window of time
            later = outage_view(host.store, now + timedelta(seconds=SETTLE_QUIET_S + 1))
            assert [o.state for o in later.outages] == ["settled", "settled"]
            # each connection was recorded, up and down: no terminal is connected now
            await links_closed(host.store)
            view = outage_view(host.store, now)
            (open_links,) = host.store.execute(
                "SELECT COUNT(*) FROM links WHERE down_at = ''"
            ).fetchone()
            (links,) = host.store.execute("SELECT COUNT(*) FROM links").fetchone()
            assert (int(links), int(open_links)) == (2, 0)
            assert view.online == {A: False, B: False}
            rows = {r.terminal_id: r for r in terminal_rows(host.store, view)}
            assert rows[B].last_stan == 6 and rows[B].arriving and rows[B].status == "not enrolled"
            assert not rows[A].arriving and rows[A].last_stan == 3

    run(main())


def test_connection_gaps_and_a_terminal_still_away(tmp_path: Path, database: str | None) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            store = host.store
            for terminal_id, up, down in (
                (A, "2026-11-30T08:00:00+00:00", "2026-11-30T09:00:00+00:00"),
                (A, "2026-11-30T09:00:03+00:00", "2026-11-30T10:00:00+00:00"),  # a blip
                (A, "2026-11-30T10:30:00+00:00", ""),  # back after 30 minutes
                (B, "2026-11-30T08:00:00+00:00", "2026-11-30T11:00:00+00:00"),  # still away
            ):
                store.execute(
                    "INSERT INTO links (terminal_id, instance, up_at, down_at) "
                    "VALUES (?, 'x', ?, ?)",
                    (terminal_id, up, down),
                )
            view = outage_view(store, datetime(2026, 11, 30, 12, tzinfo=UTC))
            gaps = [(g.terminal_id, g.down_at[11:16], g.up_at[11:16]) for g in view.gaps]
            assert gaps == [(A, "10:00", "10:30"), (B, "11:00", "")]
            assert view.online == {A: True, B: False}
            # a host restarting on its address closes the links it left open
            store.close_links("x")
            assert outage_view(store, datetime.now(UTC)).online == {A: False, B: False}

    run(main())


def test_an_open_connection_is_online_until_it_closes(tmp_path: Path, database: str | None) -> None:
    from pitill.upstream.framing import frame, read_frame
    from pitill.upstream.messages import encode

    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 1000)
            reader, writer = await asyncio.open_connection("127.0.0.1", host.server.port)
            writer.write(frame(encode(request("0200", 1, 100, terminal_id=A))))
            await writer.drain()
            assert await read_frame(reader) is not None
            assert outage_view(host.store, datetime.now(UTC)).online == {A: True}
            writer.close()
            await writer.wait_closed()
            await links_closed(host.store)  # the host notices the close on its own loop
            assert outage_view(host.store, datetime.now(UTC)).online == {A: False}

    run(main())


def pitill(*args: str) -> subprocess.CompletedProcess[str]:
    return run_pitill("host", *args)


def test_the_report_command_text_json_and_csv(tmp_path: Path, database: str | None) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            await a_day_of_sales(host)

    run(main())
    store = ["--data-dir", str(tmp_path), *db_args(database)]
    as_json = pitill("report", "--json", *store)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["program"]["net_sales_minor"] == 1320
    assert report["program"]["debts"] == {"count": 2, "amount_minor": 320}
    assert report["terminals"][B]["offline_share"]["count"] == 0.75
    assert report["now"]["debts_minor"] == 320
    assert report["debts_minor"] == 320  # the all-time figures stay where they were
    assert [o["terminal_id"] for o in report["outages"]] == [B, B]
    text = pitill("report", *store)
    assert text.returncode == 0, text.stderr
    assert "13.20" in text.stdout.split("net_sales", 1)[1].splitlines()[0]
    assert f"{B}  sold" in text.stdout
    written = pitill(
        "report",
        *store,
        "--settlement-csv",
        str(tmp_path / "s.csv"),
        "--csv",
        str(tmp_path / "m.csv"),
    )
    assert written.returncode == 0, written.stderr
    with (tmp_path / "s.csv").open(newline="") as f:
        rows = {row["terminal"]: row for row in csv.DictReader(f)}
    assert sorted(rows) == [A, B, HOST_DESK, "program"]
    assert rows["program"]["net_sales_minor"] == "1320"
    assert rows[B]["losses_minor"] == "50" and rows[A]["reversals_minor"] == "200"
    with (tmp_path / "m.csv").open(newline="") as f:
        movements = list(csv.reader(f))
    assert len(movements) == 1 + 2 + 3 + 1 + 3  # header, top-ups, A, its reversal, B
    again = pitill("report", *store, "--csv", str(tmp_path / "m.csv"))
    assert again.returncode == 2 and "exists already" in again.stderr
    future = pitill("report", *store, "--day", "2099-01-01", "--json")
    assert json.loads(future.stdout)["program"]["net_sales_minor"] == 0
    bad = pitill("report", *store, "--from", "2026-12-01", "--to", "2026-11-01")
    assert bad.returncode == 2 and "swap them" in bad.stderr


def test_a_staffed_terminals_top_ups_are_no_sales(tmp_path: Path, database: str | None) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 0)
            topup = {"3": "210000"}
            lost = request("0200", 2, 500, terminal_id=A, **topup)
            answers = await host.send(
                request("0200", 1, 2000, terminal_id=A, **topup),
                lost,
                reversal_of(lost, 3),  # its answer was lost: reversed, no cash taken
                request("0200", 4, 0, terminal_id=A, **{"3": "310000"}),  # balance inquiry
                request("0200", 5, 300, terminal_id=A),
            )
            assert [a["39"] for a in answers] == ["00"] * 5
            today = datetime.now(UTC).date()
            program, terminals = settle(host.store, *period(None, None, None, today))
            m = terminals[A].money
            assert (m["topups"].count, m["topups"].amount_minor) == (2, 2500)
            assert (m["topup_reversals"].count, m["topup_reversals"].amount_minor) == (1, 500)
            assert (m["reversals"].count, m["sales_online"].amount_minor) == (0, 300)
            assert (program.approved_online.count, program.approved_online.amount_minor) == (
                1,
                300,
            )
            assert program.net_sales_minor == 300

    run(main())


def test_refunds_and_their_reversals_in_the_settlement(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 5000)
            refund = {"3": "200000"}
            lost = request("0200", 3, 200, terminal_id=A, **refund)
            taken_back = reversal_of(lost, 4)
            taken_back["3"] = "200000"
            answers = await host.send(
                request("0200", 1, 1000, terminal_id=A),
                request("0200", 2, 300, terminal_id=A, **refund),
                lost,
                taken_back,  # its answer was lost: the refund is taken back
                request("0220", 5, 100, terminal_id=A, **refund),  # given offline
            )
            assert [a["39"] for a in answers] == ["00"] * 5
            today = datetime.now(UTC).date()
            program, terminals = settle(host.store, *period(None, None, None, today))
            m = terminals[A].money
            assert (m["refunds"].count, m["refunds"].amount_minor) == (3, 600)
            assert (m["refund_reversals"].count, m["refund_reversals"].amount_minor) == (1, 200)
            assert terminals[A].net_sales_minor == 1000 - 600 + 200
            assert (program.approved_online.count, program.approved_offline.count) == (1, 0)
            assert program.losses.count == 0
            (balance,) = host.store.execute("SELECT balance_minor FROM accounts").fetchone()
            assert int(balance) == 5000 - terminals[A].net_sales_minor

    run(main())

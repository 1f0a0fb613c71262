"""The closed-loop host and refunds (processing code 20): credited once, online and offline, never
more than the card spent at that terminal; and the reversal of an offline sale already advised."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from host_messages import OTHER, PAN, request, reversal_of
from pitill.core.settlement import Reconciliation
from pitill.host.cards import parse_card
from pitill.host.settlement import ALL_TIME, Figures, day_totals, outage_view, period, settle
from pitill.host.store import MIGRATIONS
from pitill.upstream.messages import Batch

from .conftest import db_args
from .test_dashboard import BLOCKED, CARD, today_page
from .test_host import Host, balance_of, run
from .test_host_with_terminals import PAN as TERMINAL_PAN
from .test_host_with_terminals import host, pitill, terminal
from .test_host_with_terminals import sale as terminal_sale

__all__ = ["host"]  # the fixture of the two-terminal tests: two host processes on one store

REFUND = {"3": "200000"}


def test_refunds_credit_the_card_once_never_more_than_it_spent_here(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 2000)
            host.store.add_account(parse_card(OTHER), 2000)
            answers = await host.send(
                request("0200", 1, 1250),  # spent 12.50 here
                request("0200", 2, 500, **REFUND),  # 5.00 back
                request("0200", 2, 500, **REFUND),  # the same refund again: answered, once
                request("0221", 3, 300, **REFUND),  # an offline refund's (repeated) advice
                request("0200", 4, 500, **REFUND),  # 4.50 left to refund: over
                request("0200", 5, 100, pan=OTHER, **REFUND),  # spent nothing here
                request("0200", 6, 100, terminal_id="PITILL02", **REFUND),  # nor there
                request("0220", 7, 9999, **REFUND),  # offline, over: declined after the fact
            )
            assert [a["39"] for a in answers] == ["00", "00", "00", "00", "13", "13", "13", "13"]
            assert answers[1] == answers[2] and answers[1]["3"] == "200000"
            assert balance_of(host.store) == 2000 - 1250 + 500 + 300
            assert balance_of(host.store, OTHER) == 2000
            ever, _ = settle(host.store, *ALL_TIME)
            assert ever.money["refunds"] == Figures(2, 800)
            assert host.store.movements_by_kind()["offline_refund"]["amount_minor"] == 300
            # A refund whose 0200 timed out is reversed: the credit is taken back, once.
            refund = request("0200", 8, 200, **REFUND)
            reversal = {**reversal_of(refund, 9), **REFUND}
            await host.send(refund, reversal, {**reversal, "t": "0421"})
            assert balance_of(host.store) == 2000 - 1250 + 500 + 300

    run(main())


def test_a_reversal_naming_an_advice_gives_the_offline_sale_back_once(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 1000)
            advice = request("0220", 1, 700)
            void = reversal_of(advice, 1)
            void["90"] = "0220" + void["90"][4:]  # it names the advice as sent
            answers = await host.send(advice, void, {**void, "t": "0421"})
            assert [a["39"] for a in answers] == ["00", "00", "00"]
            assert balance_of(host.store) == 1000
            kinds = [m.kind for m in host.store.history(host.store.require(parse_card(PAN)))]
            assert kinds.count("reversal") == 1

    run(main())


MENU = "press FN 2 5 8 0 OK\nexpect state MENU\n"


def test_a_terminal_refunds_online_and_offline_and_the_host_books_each_once(
    tmp_path: Path, host: tuple[list[str], list[int]]
) -> None:
    """`pitill sim --upstream` against `pitill host serve`: the account is credited once per
    refund the journal holds, online (0200/20) and offline (0220/20 after the heal)."""
    store, (port, _) = host
    assert pitill("host", "account", "topup", TERMINAL_PAN, "50", *store).returncode == 0
    script = (
        "expect link online\n"
        + terminal_sale("2 0 0 0", "APPROVED")
        + 'press FN\nexpect screen "NEW PIN"\npress 2 5 8 0 OK 2 5 8 0 OK\nexpect state MENU\n'
        + f"press 4\nexpect state REFUND_PICK\nswipe {TERMINAL_PAN} 3012\n"
        + 'press OK 5 0 0 OK\nexpect state REFUNDED\nexpect screen "Auth"\npress OK\n'
        + "upstream down\nexpect link offline\n"
        + MENU
        + f"press 4\npress OK 3 0 0 OK\nswipe {TERMINAL_PAN} 3012\nexpect state REFUNDED\n"
        + 'expect screen "OFFLINE - queued"\n'  # not the status bar's OFFLINE: the refund's own
        + "press OK\nupstream up\nexpect link online\nexpect pending 0\n"
        # end of day: the host's own tables agree (refunds are credits, fields 74/86)
        + MENU
        + 'press 5\nexpect screen "END OF DAY?"\npress OK\nexpect screen "Host agrees"\n'
    )
    terminal(tmp_path, "TERMA001", port, script)
    shown = json.loads(pitill("host", "account", "show", TERMINAL_PAN, "--json", *store).stdout)
    kinds = [(m["kind"], m["amount_minor"]) for m in reversed(shown["history"])]
    assert kinds == [("topup", 5000), ("sale", -2000), ("refund", 500), ("offline_refund", 300)]
    assert shown["balance_minor"] == 5000 - 2000 + 500 + 300
    with sqlite3.connect(tmp_path / "TERMA001" / "journal.sqlite3") as conn:
        refunds = conn.execute(
            "SELECT status, amount_minor FROM txns WHERE kind = 'refund' ORDER BY seq"
        ).fetchall()
    assert refunds == [("APPROVED", 500), ("FORWARDED", 300)]  # the journal agrees
    report = json.loads(pitill("host", "report", "--json", *store).stdout)
    assert report["refunds"] == {"count": 2, "amount_minor": 800}


def test_a_refund_the_host_refused_is_the_terminals_own_z_line_and_the_day_agrees(
    tmp_path: Path, host: tuple[list[str], list[int]]
) -> None:
    """`pitill sim --upstream` against `pitill host serve`: an offline refund whose card is
    blocked before its advice arrives is refused (62). The terminal's Z report shows it as
    refunds refused by host, not as declined after; the host has it as a refused refund, not
    a loss; neither counts it in fields 74-89, so the end of day agrees."""
    store, (port, _) = host
    assert pitill("host", "account", "topup", TERMINAL_PAN, "50", *store).returncode == 0
    offline = (
        "expect link online\n"
        + terminal_sale("2 0 0 0", "APPROVED")
        + "upstream down\nexpect link offline\n"
        + 'press FN\nexpect screen "NEW PIN"\npress 2 5 8 0 OK 2 5 8 0 OK\nexpect state MENU\n'
        + f"press 4\npress OK 3 0 0 OK\nswipe {TERMINAL_PAN} 3012\nexpect state REFUNDED\n"
        + 'expect screen "OFFLINE - queued"\npress OK\nexpect pending 1\n'
    )
    terminal(tmp_path, "TERMA001", port, offline)  # it stops with the refund still queued
    assert pitill("host", "account", "block", TERMINAL_PAN, *store).returncode == 0
    back = (
        "expect link online\nexpect pending 0\n"
        + MENU
        + 'press 5\nexpect screen "END OF DAY?"\npress OK\nexpect screen "Host agrees"\n'
        + 'expect screen "Refunds refused by host 1 3.00"\n'
    )
    terminal(tmp_path, "TERMA001", port, back)
    with sqlite3.connect(tmp_path / "TERMA001" / "journal.sqlite3") as conn:
        rows = conn.execute("SELECT kind, status, response_code FROM txns ORDER BY seq").fetchall()
        (checked,) = conn.execute("SELECT host_status FROM days").fetchone()
    assert [r for r in rows if r[0] in ("card", "refund")] == [
        ("card", "APPROVED", "00"),
        ("refund", "DECLINED_AFTER", "62"),
    ]
    assert checked == "agreed"
    data = ["--data-dir", str(tmp_path / "TERMA001")]
    [z] = json.loads(pitill("report", *data, "--day", "1", "--json").stdout)
    assert z["totals"]["refunds_refused"] == {"count": 1, "amount_minor": 300}
    assert z["totals"]["declined_after"] == {"count": 0, "amount_minor": 0}
    assert z["totals"]["by_kind"]["refund card"] == {"count": 1, "amount_minor": 300}
    assert (z["host_totals"]["credits"], z["host_totals"]["debits"]) == (0, 1)
    printed = pitill("report", *data, "--day", "1").stdout
    assert "refunds refused" in printed and "credited and no cash left the" in printed
    assert f"{'  host refused':16} {1:>6} {'3.00':>12} EUR" in pitill("report", *data).stdout
    program = json.loads(pitill("host", "report", "--json", *store).stdout)["program"]
    assert program["refused_refunds"] == {"count": 1, "amount_minor": 300}
    assert program["losses"] == {"count": 0, "amount_minor": 0}


def test_a_refused_offline_refund_is_no_loss_and_has_its_own_heading(
    tmp_path: Path, database: str | None
) -> None:
    """An offline refund (0220/20) the host refuses after the fact was counted as a loss, like an
    offline sale it could not charge. The terminal promised the card a credit the host did not
    make: no money of the program's is lost, the holder may be owed. Its own figure in the
    settlement, the report and the dashboard; not a loss, not an outage's sale, not in the 0510."""

    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(CARD), 2000)
            host.store.add_account(parse_card(BLOCKED), 2000)
            host.store.set_status(parse_card(BLOCKED), "blocked")
            answers = await host.send(
                request("0200", 1, 1000, pan=CARD),  # spent 10.00 here
                request("0220", 2, 300, pan=CARD, **REFUND),  # taken
                request("0220", 3, 5000, pan=CARD, **REFUND),  # over what it spent: refused
                request("0221", 4, 200, pan=BLOCKED, **REFUND),  # a blocked card: refused
                request("0220", 5, 400, pan=BLOCKED),  # an offline sale on it: a loss
            )
            assert [a["39"] for a in answers] == ["00", "00", "13", "62", "62"]
            program, _ = settle(host.store, *period(None, None, None, datetime.now(UTC).date()))
            assert (program.losses.count, program.losses.amount_minor) == (1, 400)
            assert (program.refused_refunds.count, program.refused_refunds.amount_minor) == (
                2,
                5200,
            )
            assert settle(host.store, *ALL_TIME)[0].losses == Figures(1, 400)
            [outage] = outage_view(host.store, datetime.now(UTC)).outages
            assert (outage.sales, outage.declined) == (Figures(1, 400), Figures(1, 400))
            assert day_totals(host.store, "PITILL01", Batch(1, 1, 5)) == Reconciliation(
                credits=1, credits_minor=300, debits=1, debits_minor=1000
            )
        done = pitill("host", "report", "--json", "--data-dir", str(tmp_path), *db_args(database))
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["losses"] == report["program"]["losses"] == {"count": 1, "amount_minor": 400}
        assert report["program"]["refused_refunds"] == {"count": 2, "amount_minor": 5200}
        text = pitill("host", "report", "--data-dir", str(tmp_path), *db_args(database)).stdout
        assert "refused_refunds   2 x 52.00" in text
        page = await today_page(tmp_path, database)
        assert "<td>Losses (declined after the fact)</td><td>1 · 4.00</td>" in page
        assert "not credited: see the holder)</td><td>2 · 52.00</td>" in page

    run(main())


def test_an_older_store_learns_its_refunds_processing_code(
    tmp_path: Path, database: str | None
) -> None:
    """A host database from before the processing code was kept (schema 6) is migrated in
    place: the refunds it booked are marked 20; a refusal it kept cannot be told from a sale's
    and stays counted as a loss; what arrives after the upgrade is classified by its code."""

    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 2000)
            answers = await host.send(
                request("0200", 1, 1000),
                request("0220", 2, 300, **REFUND),  # taken
                request("0220", 3, 5000, **REFUND),  # refused
            )
            assert [a["39"] for a in answers] == ["00", "00", "13"]
            with host.store.transaction():  # the store as schema 6 left it
                host.store.execute("ALTER TABLE messages DROP COLUMN processing_code")
                host.store.execute("UPDATE meta SET value = '6' WHERE key = 'schema'")
        assert len(MIGRATIONS) == 7
        async with Host(tmp_path, database) as host:
            (schema,) = host.store.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            codes = host.store.execute(
                "SELECT stan, processing_code FROM messages ORDER BY stan"
            ).fetchall()
            assert (schema, codes) == ("7", [(1, ""), (2, "200000"), (3, "")])
            [refused] = await host.send(request("0220", 4, 6000, **REFUND))
            assert refused["39"] == "13"
            program, _ = settle(host.store, *period(None, None, None, datetime.now(UTC).date()))
            assert (program.losses.count, program.losses.amount_minor) == (1, 5000)
            assert (program.refused_refunds.count, program.refused_refunds.amount_minor) == (
                1,
                6000,
            )

    run(main())

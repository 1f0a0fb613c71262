"""End of day as a shop runs it: `pitill sim --script` (a real process, journal, pty reader and
the sandbox host on loopback), then the journal, the host's ledger and `pitill report --day`.

The Z report's totals are checked against the journal's rows (counted here, in SQL) and the host
check against the sandbox host's own ledger (its day_totals); a host holding a sale the terminal
never recorded disagrees, and the disagreement is on screen, in the journal and in the report.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from pitill.config import Config
from pitill.core.settlement import Reconciliation
from pitill.core.state import Phase
from pitill.core.types import Key, LinkStatus
from pitill.sim.acquirer import LEDGER_NAME, read_ledger
from pitill.sim.acquirer.ledger import day_totals
from pitill.sim.acquirer.policy import decide_sale
from pitill.sim.driver import Driver, amount_keys
from pitill.sim.world import SimWorld
from pitill.upstream.messages import Batch
from pitill_cli import PITILL, SCENARIOS, run_scenario


def ledger(data_dir: Path) -> list[dict[str, Any]]:
    return read_ledger(data_dir / LEDGER_NAME)


def report(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PITILL, "report", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def days(data: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data / "journal.sqlite3") as conn:
        return conn.execute(
            "SELECT day, first_seq, last_seq, host_status, host_code, host_note FROM days"
        ).fetchall()


def test_an_end_of_day_the_host_agrees_with(tmp_path: Path) -> None:
    data, receipts = tmp_path / "data", tmp_path / "receipts"
    result = run_scenario("end_of_day.pitill", data, "--receipts", str(receipts))
    assert result.returncode == 0, result.stdout + result.stderr
    # The day's last seq: its sales' seqs follow the monitor's echoes (one counter).
    [(_, _, last, *verdict)] = days(data)
    assert verdict == ["agreed", "00", ""]

    # The Z report's totals are the journal's: counted here from the rows of the day.
    with sqlite3.connect(data / "journal.sqlite3") as conn:
        sold = dict(
            conn.execute(
                "SELECT kind || ' ' || mode, SUM(amount_minor) FROM txns WHERE seq <= ? AND"
                " status IN ('APPROVED', 'COMPLETED', 'PENDING', 'FORWARDED') GROUP BY 1",
                (last,),
            ).fetchall()
        )
        voids = conn.execute("SELECT SUM(amount_minor) FROM txns WHERE status = 'VOID'").fetchone()
    assert sold == {"card online": 1200, "card offline": 800, "cash online": 500}
    z = json.loads(report(data, "--day", "1", "--json").stdout)[0]
    assert z["totals"]["by_kind"] == {
        "card online": {"count": 1, "amount_minor": 1200},
        "card offline": {"count": 1, "amount_minor": 800},
        "cash": {"count": 1, "amount_minor": 500},
    }
    assert z["totals"]["voids"] == {"count": 1, "amount_minor": voids[0]}
    # ... and what the terminal told the host equals the host's own ledger.
    host = day_totals(ledger(data), "PITILL01", Batch(1, 1, last))
    assert host == Reconciliation(
        debits=3, debits_minor=1200 + 900 + 800, debit_reversals=1, debit_reversals_minor=900
    )
    assert Reconciliation(**z["host_totals"]) == host

    text = report(data, "--day", "1").stdout
    assert "Z REPORT day 1" in text and "Host agrees" in text
    assert "card online                   1      12.00" in text
    [reprint] = receipts.glob("*-completed-reprint.txt")  # day 2's cash sale
    assert "REPRINT" in reprint.read_text(encoding="utf-8")
    original = reprint.with_name(reprint.name.replace("-reprint", ""))
    assert "REPRINT" not in original.read_text(encoding="utf-8")
    printed = (receipts / "z-day-0001.txt").read_text(encoding="utf-8")
    assert "Host agrees" in printed and "debit reversals     1       9.00" in printed
    # The next sale opened day 2: its report so far, open.
    day2 = report(data, "--day", "2").stdout
    assert "open: not closed yet" in day2 and "cash                          1       3.00" in day2
    # By date: the days closed that day (today, on the trusted clock).
    closed_on = json.loads(report(data, "--day", "1", "--json").stdout)[0]["day"]["closed_at"]
    assert "Z REPORT day 1" in report(data, "--day", closed_on[:10]).stdout


def test_a_host_that_holds_another_sale_disagrees_and_it_is_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    stray = {  # an approved 0200 of this terminal, STAN 1, that the terminal never recorded
        "mti": "0200",
        "stan": 1,
        "terminal_id": "PITILL01",
        "local_datetime": "0101000000",
        "transmission": "0101000000",
        "amount_minor": 4400,
        "currency": "978",
        "duplicate": False,
        "processing_code": "000000",
        "response_code": "00",
        "auth_code": "000001",
        "rrn": "000000000001",
    }
    (data / LEDGER_NAME).write_text(json.dumps(stray) + "\n", encoding="utf-8")
    result = run_scenario("end_of_day_mismatch.pitill", data)
    assert result.returncode == 0, result.stdout + result.stderr
    [(day, first, _, *verdict)] = days(data)  # its one sale's seq follows an echo's
    assert (day, first, *verdict) == (1, 1, "disagreed", "95", "debits 1/2; debits minor 1200/5600")
    text = report(data, "--day", "1").stdout
    assert "HOST DISAGREES (95)" in text and "ours/host:" in text and "debits 1/2" in text
    overall = report(data).stdout  # the plain report names it too: never hidden
    assert "HOST DISAGREED on day 1" in overall


def test_refunds_are_credits_the_host_agrees_with(tmp_path: Path) -> None:
    """The refund scenario (online, offline and cash refunds), which ends with an end of day the
    host agrees with: the card refunds are the host's credits, the cash refund only the Z's."""
    assert (SCENARIOS / "refunds.pitill").read_text().rstrip().endswith('"Host agrees"')
    data = tmp_path / "data"
    result = run_scenario("refunds.pitill", data)
    assert result.returncode == 0, result.stdout + result.stderr
    z = json.loads(report(data, "--day", "1", "--json").stdout)[0]
    assert z["refunds"] == {"count": 4, "amount_minor": 2000}  # 5 + 7 online, 6 offline, 2 cash
    assert z["host_totals"]["credits"] == 3 and z["host_totals"]["credits_minor"] == 1800
    [(_, first, last, *_)] = days(data)  # seqs 0800s took are among the day's (one counter)
    host = day_totals(ledger(data), "PITILL01", Batch(1, first, last))
    assert Reconciliation(**z["host_totals"]) == host
    assert "kind                      count     amount" in report(data, "--day", "1").stdout


def test_a_bad_day_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_scenario("end_of_day_mismatch.pitill", data).returncode != 0  # no stray: agrees
    missing = report(data, "--day", "9")
    assert missing.returncode != 0 and "--day 9: no such day" in missing.stderr
    assert "Traceback" not in missing.stderr
    typo = report(data, "--day", "30-11-2026")
    assert typo.returncode != 0 and "YYYY-MM-DD" in typo.stderr
    assert len(typo.stderr.strip().splitlines()) == 1


def test_a_day_closed_offline_is_checked_once_its_sales_are_through(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_scenario("end_of_day_offline.pitill", data)
    assert result.returncode == 0, result.stdout + result.stderr
    [(day, first, _, *verdict)] = days(data)  # its one sale's seq follows an echo's
    assert (day, first, *verdict) == (1, 1, "agreed", "00", "")
    entries = ledger(data)
    assert [e["mti"] for e in entries] == ["0220"]  # the advice; the 0500 is not a ledger line


def test_a_refund_the_sandbox_host_refused_is_its_own_z_line_and_the_day_agrees(
    tmp_path: Path,
) -> None:
    """The sandbox acquirer (the `pitill acquirer` server, in the simulator's world) declines
    advices by its issuer rules: an offline refund of 5.51 gets 51 after the fact. The Z report
    (screen, --day, JSON) shows it as refunds refused by host, not as declined after, and the
    0500 holds it no more than the host's ledger does: the host agrees."""
    wait_s = 10.0

    async def scenario() -> str:
        world = SimWorld(Config(), tmp_path)
        world.host.advice_policy = decide_sale  # as `pitill drill`: advices by the issuer rules
        await world.start()
        try:
            driver = Driver(world)
            assert await driver.until_link(LinkStatus.ONLINE, wait_s)
            sold = await driver.sell(1200, "4111111111111111", "3012", wait_s, tender_extra=0)
            assert sold is Phase.APPROVED
            driver.host("down")
            assert await driver.until_link(LinkStatus.OFFLINE, wait_s)
            await driver.type(Key.FN, *[Key(d) for d in "2580"], Key.OK)
            await driver.type(*[Key(d) for d in "2580"], Key.OK)
            assert await driver.until(lambda: driver.phase is Phase.MENU, wait_s)
            await driver.type(Key("4"))
            assert await driver.until(lambda: driver.phase is Phase.REFUND_PICK, wait_s)
            await driver.type(Key.OK, *amount_keys(551), Key.OK)
            await driver.swipe("4111111111111111", "3012")
            assert await driver.until_screen("OFFLINE - queued", wait_s), driver.screen_text()
            await driver.type(Key.OK)
            driver.host("up")
            journal = world.terminal.journal  # type: ignore[union-attr]
            assert await driver.until(lambda: journal.pending_count() == 0, wait_s)
            await driver.type(Key.FN, *[Key(d) for d in "2580"], Key.OK)
            assert await driver.until(lambda: driver.phase is Phase.MENU, wait_s)
            await driver.type(Key("5"))
            assert await driver.until(lambda: driver.phase is Phase.END_OF_DAY, wait_s)
            await driver.type(Key.OK)
            assert await driver.until_screen("Host agrees", wait_s), driver.screen_text()
            return driver.screen_text()
        finally:
            await world.stop()

    screen = asyncio.run(scenario())
    assert "Refunds refused by host 1 5.51" in screen
    (refund,) = [e for e in ledger(tmp_path) if e["processing_code"] == "200000"]
    assert (refund["mti"], refund["response_code"]) == ("0220", "51")
    assert days(tmp_path)[0][3] == "agreed"
    z = json.loads(report(tmp_path, "--day", "1", "--json").stdout)[0]
    assert z["totals"]["refunds_refused"] == {"count": 1, "amount_minor": 551}
    assert z["totals"]["declined_after"] == {"count": 0, "amount_minor": 0}
    host = day_totals(ledger(tmp_path), "PITILL01", Batch(1, 1, z["day"]["last_seq"]))
    assert Reconciliation(**z["host_totals"]) == host == Reconciliation(debits=1, debits_minor=1200)
    text = report(tmp_path, "--day", "1").stdout
    assert "refunds refused               1       5.51" in text and "owed it" in text

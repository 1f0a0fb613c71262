"""The acceptance story, steps 2 to 5: `pitill sim --script` runs as a person's CI would run it.

Each scenario is a real process with a real SQLite journal, a real pty card reader and the
sandbox host on loopback. Afterwards the host's ledger is compared with the journal. A scenario
with a NAME.toml beside it runs with that config.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pitill.core.txn import stan_for
from pitill.sim.acquirer import LEDGER_NAME, read_ledger
from pitill.sim.reconcile import read_journal, reconcile
from pitill_cli import PITILL, journal_rows, run_scenario


def ledger(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / LEDGER_NAME
    return read_ledger(path) if path.exists() else []


@pytest.mark.parametrize(
    "name",
    [
        "online_approve_decline.pitill",
        "outage_down.pitill",
        "outage_blackhole.pitill",
        "outage_dns.pitill",
        "outage_dns_uncached.pitill",
        "outage_slow.pitill",
        "outage_failing.pitill",
        "offline_cash_change.pitill",
        "nfc_taps.pitill",
        "wedge_stripe.pitill",
    ],
)
def test_scenario_passes(name: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_scenario(name, data)
    assert result.returncode == 0, result.stdout + result.stderr
    # and the host holds exactly what the journal says was sold (pitill.sim.reconcile)
    check = reconcile(
        read_journal(data / "journal.sqlite3"), ledger(data), "PITILL01", settled=False
    )
    assert check.problems() == []


def test_online_sales_are_in_the_ledger_once_each(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_scenario("online_approve_decline.pitill", data).returncode == 0
    sales = [entry for entry in ledger(data) if entry["mti"] == "0200"]
    assert [(e["amount_minor"], e["response_code"]) for e in sales] == [
        (1250, "00"),
        (2051, "51"),
        (3005, "05"),
        (100, "05"),
    ]
    rows = journal_rows(data)
    assert [r["status"] for r in rows] == ["APPROVED", "DECLINED", "DECLINED", "DECLINED"]
    assert all(r["masked_pan"] == "411111******1111" for r in rows[:3])


def test_a_vanished_name_still_sells_online_on_the_remembered_address(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_scenario("outage_dns.pitill", data)
    assert result.returncode == 0, result.stdout + result.stderr
    sales = [(e["amount_minor"], e["response_code"]) for e in ledger(data) if e["mti"] == "0200"]
    assert sales == [(500, "00")]  # authorized by the host while its name did not resolve
    assert [(r["mode"], r["status"]) for r in journal_rows(data)] == [("online", "APPROVED")]
    remembered = json.loads((data / "resolved-hosts.json").read_text())
    assert remembered["hosts"] == {"acquirer.pitill.test": ["127.0.0.1"]}


def test_a_host_failing_every_sale_stops_being_asked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_scenario("outage_failing.pitill", data)
    assert result.returncode == 0, result.stdout + result.stderr
    entries = ledger(data)
    sales = [(e["amount_minor"], e["response_code"]) for e in entries if e["mti"] == "0200"]
    assert sales == [(600, "91")]  # the 7.00 sale came after OFFLINE RETRY: never sent online
    accepted = [
        e["amount_minor"]
        for e in entries
        if e["mti"] in ("0220", "0221") and e["response_code"] == "00" and not e["duplicate"]
    ]
    assert sorted(accepted) == [600, 700]


def test_heal_forwards_each_offline_sale_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    events = tmp_path / "events.jsonl"
    result = run_scenario("heal_forward.pitill", data, "--events", str(events))
    assert result.returncode == 0, result.stdout + result.stderr
    advices = [e for e in ledger(data) if e["mti"] in ("0220", "0221")]
    keys = [(e["terminal_id"], e["stan"]) for e in advices if not e["duplicate"]]
    assert len(keys) == len(set(keys)) == 3
    assert sorted(int(str(e["amount_minor"])) for e in advices if not e["duplicate"]) == [
        150,
        1000,
        2000,
    ]
    assert {r["status"] for r in journal_rows(data)} == {"FORWARDED"}
    backlog = [
        json.loads(line)["pending"]
        for line in events.read_text().splitlines()
        if '"event": "backlog"' in line
    ]
    assert backlog[-1] == 0 and max(backlog) == 3  # the screen's count fell to zero


def test_pending_sales_survive_a_restart_and_go_out_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = run_scenario("restart_part1.pitill", data)
    assert first.returncode == 0, first.stdout + first.stderr
    assert [r["status"] for r in journal_rows(data)] == ["PENDING", "PENDING"]
    assert not [e for e in ledger(data) if e["mti"] in ("0220", "0221")]
    second = run_scenario("restart_part2.pitill", data)
    assert second.returncode == 0, second.stdout + second.stderr
    advices = [e for e in ledger(data) if e["mti"] in ("0220", "0221") and not e["duplicate"]]
    assert sorted(int(str(e["amount_minor"])) for e in advices) == [800, 1200]


def test_failing_expect_names_the_line_and_prints_the_screen(tmp_path: Path) -> None:
    script = tmp_path / "fail.pitill"
    script.write_text('press 1 2 OK\nexpect screen "APPROVED"\n')
    result = run_scenario(str(script), tmp_path / "data", "--expect-timeout", "0.5")
    assert result.returncode == 1
    assert "FAILED line 2" in result.stdout and "SWIPE CARD" in result.stdout


def test_unknown_command_fails_with_its_line_number(tmp_path: Path) -> None:
    script = tmp_path / "bad.pitill"
    script.write_text("# a comment\npress 1\nfly away\n")
    result = run_scenario(str(script), tmp_path / "data")
    assert result.returncode == 2
    assert "line 3" in result.stderr and "unknown command 'fly'" in result.stderr


def test_unknown_key_fails_with_its_line_number(tmp_path: Path) -> None:
    script = tmp_path / "bad.pitill"
    script.write_text("press 1 X\n")
    result = run_scenario(str(script), tmp_path / "data")
    assert result.returncode == 2 and "line 1" in result.stderr and "'X'" in result.stderr


def test_screens_and_events_never_hold_a_full_pan(tmp_path: Path) -> None:
    screens = tmp_path / "screens"
    events = tmp_path / "events.jsonl"
    result = run_scenario(
        "outage_down.pitill", tmp_path / "data", "--screens", str(screens), "--events", str(events)
    )
    assert result.returncode == 0, result.stdout
    assert len(list(screens.glob("*.png"))) >= 4
    text = events.read_text()
    assert "4111111111111111" not in text and "411111******1111" in text
    kinds = {json.loads(line)["event"] for line in text.splitlines()}
    assert {"step", "state", "screen", "link", "journal"} <= kinds


def test_a_missing_script_is_named_without_a_traceback(tmp_path: Path) -> None:
    result = run_scenario(str(tmp_path / "nope.pitill"), tmp_path / "data")
    assert result.returncode == 2
    assert result.stderr == (
        f"pitill: script {tmp_path / 'nope.pitill'} does not exist; check the path "
        "(tests/scenarios/ has examples)\n"
    )


def test_a_pin_lock_survives_a_restart(tmp_path: Path) -> None:
    data, events_file = tmp_path / "data", tmp_path / "ev1.jsonl"
    first = run_scenario("pin_lock_part1.pitill", data, "--events", str(events_file))
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_scenario("pin_lock_part2.pitill", data)
    assert second.returncode == 0, second.stdout + second.stderr
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    checks = [(e["ok"], e["locked_for_s"]) for e in events if e["event"] == "pin"]
    assert checks == [(False, 0)] * 4 + [(False, 60)]
    locked_at = next(i for i, e in enumerate(events) if e.get("locked_for_s"))
    beeps = [e["pattern"] for e in events[locked_at:] if e["event"] == "beep"]
    assert beeps[0] == "alert"  # the lock beeps
    # The PIN is in no file the terminal wrote: the journal holds only its salted hash.
    for path in [*data.iterdir(), events_file]:
        if path.is_file():
            assert b"97531864" not in path.read_bytes(), path


def test_voids_of_an_online_an_offline_and_a_cash_sale(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_scenario("void_sales.pitill", data)
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(data / "journal.sqlite3") as conn:
        rows = conn.execute(
            "SELECT seq, kind, mode, status, amount_minor, reverses_seq, voided_by_seq"
            " FROM txns ORDER BY seq"
        ).fetchall()
    # Seqs and STANs are one counter, and the monitor's echoes take theirs from it: the rows
    # are numbered 1.. here in their order, the links between them with them.
    rank = {row[0]: index for index, row in enumerate(rows, start=1)} | {0: 0}
    first_stan = stan_for(rows[0][0])
    rows = [(rank[r[0]], *r[1:5], rank[r[5]], rank[r[6]]) for r in rows]
    assert rows == [
        (1, "card", "online", "REVERSED", 1200, 0, 2),
        (2, "card", "online", "VOID", 1200, 1, 0),
        (3, "card", "offline", "VOIDED", 800, 0, 4),
        (4, "card", "offline", "VOID", 800, 3, 0),
        (5, "cash", "offline", "VOIDED", 500, 0, 6),
        (6, "cash", "offline", "VOID", 500, 5, 0),
    ]
    entries = ledger(data)
    assert [(e["mti"], e["stan"]) for e in entries] == [("0200", first_stan), ("0420", first_stan)]
    assert entries[1]["reversed"] is True  # the host took the charge back
    check = reconcile(read_journal(data / "journal.sqlite3"), entries, "PITILL01", settled=True)
    assert check.problems() == [] and check.host_net_minor == 0
    report = subprocess.run(
        [*PITILL, "report", "--data-dir", str(data)], capture_output=True, text=True, check=True
    ).stdout
    assert "voids" in report and "25.00" in report.split("voids")[1].splitlines()[0]


def test_receipts_for_every_outcome_say_what_happened(tmp_path: Path) -> None:
    data, receipts = tmp_path / "data", tmp_path / "receipts"
    result = run_scenario("receipts.pitill", data, "--receipts", str(receipts))
    assert result.returncode == 0, result.stdout + result.stderr
    # Named SEQ-outcome; the seqs follow the monitor's echoes (one counter): keyed by outcome.
    named = {p.stem: p.read_text() for p in sorted(receipts.glob("*.txt"))}
    texts = {stem.split("-", 1)[1]: text for stem, text in named.items()}
    assert list(texts) == ["approved", "declined", "pending", "completed", "void"]
    assert "APPROVED" in texts["approved"] and "Auth code" in texts["approved"]
    assert "DECLINED" in texts["declined"]
    offline = texts["pending"]
    assert "APPROVED OFFLINE" in offline and "Will be sent to the bank" in offline
    assert "CASH" in texts["completed"] and "Change 5.00" in texts["completed"]
    assert "VOID" in texts["void"] and "Cash given back" in texts["void"]
    assert len(list(receipts.glob("*.png"))) == 5
    for path in receipts.iterdir():
        for pan in (b"4111111111111111", b"4000000000000002"):
            assert pan not in path.read_bytes(), path

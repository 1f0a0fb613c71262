"""A staffed terminal against `pitill host serve`, real processes on loopback: a cash top-up
from the FN menu, then a sale that spends it with the balance on screen, a balance inquiry online
and its refusal offline, and the terminal's report counting the top-up (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .test_host_with_terminals import PAN, host, pitill, sale, terminal

__all__ = ["host"]  # the fixture, used by name

NEW_PIN = "press FN 2 5 8 0 OK 2 5 8 0 OK\nexpect state MENU\n"
PIN = "press FN 2 5 8 0 OK\nexpect state MENU\n"


def test_top_up_at_the_terminal_then_spend_it_and_ask_the_balance(
    tmp_path: Path, host: tuple[list[str], list[int]]
) -> None:
    store, (port, _) = host
    script = (
        "expect link online\n"
        + NEW_PIN
        + f"press 7 2 0 0 0 OK\nswipe {PAN} 3012\n"
        + 'expect screen "TOPPED UP"\nexpect screen "Balance EUR 20.00"\nexpect drawer 1\n'
        + "press OK\n"
        + sale("1 2 5 0", "Balance EUR 7.50")
        + PIN
        + f'press 8\nswipe {PAN} 3012\nexpect state BALANCE_SHOWN\nexpect screen "EUR 7.50"\n'
        + "press OK\nupstream down\nexpect link offline\n"
        + PIN
        + 'press 8\nexpect screen "Balance unavailable offline"\nexpect state MENU\n'
    )
    terminal(tmp_path, "TERMA001", port, script)
    shown = json.loads(pitill("host", "account", "show", PAN, "--json", *store).stdout)
    assert shown["balance_minor"] == 750
    kinds = [(m["kind"], m["amount_minor"], m["terminal_id"]) for m in reversed(shown["history"])]
    assert kinds == [("topup", 2000, "TERMA001"), ("sale", -1250, "TERMA001")]
    report = json.loads(pitill("report", "--data-dir", str(tmp_path / "TERMA001"), "--json").stdout)
    assert report["topups"] == {"count": 1, "amount_minor": 2000}
    assert report["sold"]["card online"] == {"count": 1, "amount_minor": 1250}


def test_a_top_up_whose_answer_came_too_late_is_reversed_once_and_takes_no_cash(
    tmp_path: Path, host: tuple[list[str], list[int]]
) -> None:
    store, (port, _) = host
    script = (
        "expect link online\n"
        + NEW_PIN
        + "upstream slow\n"  # answers after the request timeout: the host credited, unknown here
        + f"press 7 2 0 0 0 OK\nswipe {PAN} 3012\n"
        + 'expect screen "No answer: no top-up"\nexpect drawer 0\npress OK\n'
        + "upstream up\nexpect link online\nexpect pending 0\n"
    )
    terminal(tmp_path, "TERMA001", port, script)
    shown = json.loads(pitill("host", "account", "show", PAN, "--json", *store).stdout)
    kinds = [(m["kind"], m["amount_minor"]) for m in reversed(shown["history"])]
    assert (shown["balance_minor"], kinds) == (0, [("topup", 2000), ("reversal", -2000)])


def test_a_day_with_the_links_0800s_in_its_range_is_one_the_host_agrees_with(
    tmp_path: Path, host: tuple[list[str], list[int]]
) -> None:
    """The 0800s (echoes, the hotlist's at each reconnect) take seqs from the sales' counter, so
    the day's range (the 0500's stan=A-B) holds seqs no transaction has: the closed-loop host
    totals its own messages in it and still agrees."""
    _, (port, _) = host
    script = (
        "expect link online\n"
        + NEW_PIN
        + f'press 7 2 0 0 0 OK\nswipe {PAN} 3012\nexpect screen "TOPPED UP"\npress OK\n'
        + sale("1 2 5 0", "Balance EUR 7.50")
        + PIN
        + f"press 8\nswipe {PAN} 3012\nexpect state BALANCE_SHOWN\npress OK\n"
        + "upstream down\nexpect link offline\n"
        + sale("5 0 0", "OFFLINE - queued")  # (not the status line's OFFLINE)
        + "upstream up\nexpect link online\nexpect pending 0\n"
        + PIN
        + 'press 5\nexpect screen "END OF DAY?"\npress OK\nexpect screen "Host agrees"\n'
    )
    terminal(tmp_path, "TERMA001", port, script)
    journal = tmp_path / "TERMA001" / "journal.sqlite3"
    with sqlite3.connect(journal) as conn:
        [(first, last, status)] = conn.execute(
            "SELECT first_seq, last_seq, host_status FROM days"
        ).fetchall()
        seqs = [seq for (seq,) in conn.execute("SELECT seq FROM txns ORDER BY seq")]
    assert status == "agreed"
    assert (first, last) == (1, seqs[-1]) and len(seqs) == 4  # top-up, sale, inquiry, offline
    assert len(seqs) < last - first + 1  # 0800s' seqs among them: no row, nothing to total

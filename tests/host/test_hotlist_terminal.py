"""The hotlist end to end, real processes on loopback: the operator blocks a card on `pitill host`,
a simulated terminal receives the list when it connects, keeps it in its journal, and refuses the
card while the host is down; online the host declines it; unblocked, it leaves the list."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .test_host_with_terminals import PAN, host, pitill, sale, terminal

__all__ = ["host"]  # the fixture, used by name


def test_a_blocked_card_is_refused_offline_at_the_terminal(
    tmp_path: Path, host: tuple[list[str], list[int]]
) -> None:
    store, (port, _) = host
    assert pitill("host", "account", "block", PAN, *store).returncode == 0
    terminal(tmp_path, "TERMA001", port, "expect link online\nexpect hotlisted 1\n")
    # Another run, the host unreachable from the start: the list is the journal's.
    offline = "upstream down\nexpect link offline\n" + sale("5 0 0", "CARD BLOCKED")
    terminal(tmp_path, "TERMA001", port, offline)
    terminal(tmp_path, "TERMA001", port, "expect link online\n" + sale("5 0 0", "RESTRICTED"))
    assert pitill("host", "account", "unblock", PAN, *store).returncode == 0
    terminal(tmp_path, "TERMA001", port, "expect link online\nexpect hotlisted 0\n")
    with sqlite3.connect(tmp_path / "TERMA001" / "journal.sqlite3") as journal:
        rows = journal.execute("SELECT mode, status, response_code FROM txns ORDER BY seq")
        assert list(rows) == [("offline", "DECLINED", "Z3"), ("online", "DECLINED", "62")]
    shown = json.loads(pitill("host", "account", "show", PAN, "--json", *store).stdout)
    assert shown["balance_minor"] == 0 and shown["history"] == []

"""Two simulated terminals and two `pitill host serve` processes sharing one store (SQLite, and a
real PostgreSQL), all real processes on loopback: a top-up,
sales that spend the balance, a decline for insufficient funds, an outage in which both
terminals sell offline on the same card past its balance, the heal, and the host's books
showing the debt, every message once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fast_config import write_config
from host_messages import serving_hosts
from pitill_cli import run_pitill as pitill

from .conftest import db_args

PAN = "4111111111111111"


@pytest.fixture
def host(tmp_path: Path, database: str | None) -> Iterator[tuple[list[str], list[int]]]:
    """Two host processes on one store; (the store's arguments, their ports)."""
    store = ["--data-dir", str(tmp_path / "host"), *db_args(database)]
    assert pitill("host", "account", "add", PAN, *store).returncode == 0
    with serving_hosts(*store, count=2) as ports:
        yield store, ports


def terminal(tmp_path: Path, tid: str, port: int, script: str) -> None:
    config = write_config(tmp_path / f"{tid}.toml", {"terminal": {"terminal_id": tid}})
    path = tmp_path / f"{tid}.pitill"
    path.write_text(script, encoding="utf-8")
    result = pitill(
        "sim", "--config", str(config), "--upstream", f"127.0.0.1:{port}",
        "--script", str(path), "--data-dir", str(tmp_path / tid), "--expect-timeout", "10",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def sale(amount_keys: str, outcome: str) -> str:
    return f'press {amount_keys} OK\nswipe {PAN} 3012\nexpect screen "{outcome}"\npress OK\n'


def test_two_terminals_an_outage_and_the_debt_settled_once(
    tmp_path: Path, host: tuple[list[str], list[int]]
) -> None:
    store, (port_a, port_b) = host
    assert "balance 20.00" in pitill("host", "account", "topup", PAN, "20", *store).stdout
    terminal(
        tmp_path, "TERMA001", port_a, "expect link online\n" + sale("1 2 5 0", "Balance EUR 7.50")
    )
    terminal(tmp_path, "TERMB001", port_b, "expect link online\n" + sale("1 0 0 0", "INSUFFICIENT"))
    outage = (
        "expect link online\nupstream down\nexpect link offline\n"
        + sale("5 0 0", "OFFLINE")
        + "upstream up\nexpect link online\nexpect pending 0\n"
    )
    terminal(tmp_path, "TERMA001", port_a, outage)
    terminal(tmp_path, "TERMB001", port_b, outage)
    showing = pitill("host", "account", "show", PAN, "--json", *store)
    assert showing.returncode == 0, showing.stderr
    shown = json.loads(showing.stdout)
    assert (shown["balance_minor"], shown["debt_minor"]) == (-250, 250)
    kinds = [(m["kind"], m["amount_minor"], m["flag"]) for m in reversed(shown["history"])]
    assert kinds == [
        ("topup", 2000, ""),
        ("sale", -1250, ""),
        ("offline_sale", -500, ""),
        ("offline_sale", -500, "debt"),
    ]
    report = json.loads(pitill("host", "report", "--json", *store).stdout)
    assert report["debts_minor"] == 250 and report["losses"]["count"] == 0

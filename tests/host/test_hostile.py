"""A hostile user against the host: amounts past what the wire and the store can hold, from the
dashboard, the command line and a terminal, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from host_messages import PAN, request, reversal_of
from pitill.core.settlement import Reconciliation
from pitill.errors import ConfigError
from pitill.host.cards import parse_card
from pitill.host.operators import add_operator, remove_operator
from pitill.host.settlement import day_totals
from pitill.host.store import MAX_BALANCE_MINOR, HostStore
from pitill.upstream.messages import Batch
from pitill_cli import PITILL

from .conftest import db_args
from .test_dashboard import ADMIN_PW, CASHIER_PW, Browser, account_id, dashboard
from .test_host import Host, balance_of, run

FLASH = re.compile(r"class='flash'>([^<]*)<")


def test_a_cashier_cannot_top_up_past_what_a_balance_holds(
    tmp_path: Path, database: str | None
) -> None:
    """SQLite turned 92233720368547758.07 + 10.00 into a float: the account's page, the today
    page and `account show` failed from then on (and PostgreSQL answered 500)."""

    async def main() -> None:
        async with dashboard(tmp_path, database) as (board, store):
            cashier = Browser(board.url.rstrip("/"))
            try:
                await cashier.login("cas", CASHIER_PW)
                target = f"/accounts/{account_id(store)}"
                await cashier.get(target)
                for amount in ("92233720368547758.07", "9" * 30, "10000000000.00"):
                    status, page = await cashier.post(f"{target}/topup", {"amount": amount})
                    assert status == 200, (amount, page[:200])
                    said = FLASH.search(page)
                    assert said and "refused: amount" in said.group(1), page[:300]
                    assert "at most 9999999999.99" in said.group(1)
                # up to the ceiling, and not one cent past it
                status, page = await cashier.post(f"{target}/topup", {"amount": "9999999989.99"})
                assert "balance 9999999999.99" in page
                status, page = await cashier.post(f"{target}/topup", {"amount": "0.01"})
                said = FLASH.search(page)
                assert said and "would take the balance past 9999999999.99" in said.group(1)
                assert balance_of(store) == MAX_BALANCE_MINOR
                assert (await cashier.get("/"))[0] == 200
            finally:
                await cashier.close()

    run(main())


def test_the_store_and_the_command_line_refuse_an_amount_past_12_digits(
    tmp_path: Path, database: str | None
) -> None:
    store_args = ["--data-dir", str(tmp_path), *db_args(database)]
    added = subprocess.run(
        [*PITILL, "host", "account", "add", PAN, "--balance", "9" * 25, *store_args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert added.returncode == 2, added.stderr
    assert "at most 9999999999.99" in added.stderr and "unexpected" not in added.stderr
    added = subprocess.run(
        [*PITILL, "host", "account", "add", PAN, "--balance", "9999999999.99", *store_args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    topup = subprocess.run(
        [*PITILL, "host", "account", "topup", PAN, "0.01", *store_args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert topup.returncode == 2 and "past 9999999999.99" in topup.stderr, topup.stderr
    shown = subprocess.run(
        [*PITILL, "host", "account", "show", PAN, *store_args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0 and "balance 9999999999.99" in shown.stdout, shown.stderr


def test_a_terminal_top_up_past_the_ceiling_is_declined_and_moves_nothing(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), MAX_BALANCE_MINOR - 100)
            over, under = await host.send(
                request("0200", 1, 101, **{"3": "210000"}),
                request("0200", 2, 100, **{"3": "210000"}),
            )
            assert over["39"] == "13"
            assert under["39"] == "00" and under["54"].endswith("C999999999999")
            assert balance_of(host.store) == MAX_BALANCE_MINOR
            with pytest.raises(ConfigError, match=r"past 9999999999\.99"):
                host.store.topup(parse_card(PAN), 1)

    run(main())


def test_a_new_password_or_a_name_added_again_ends_the_old_sessions(
    tmp_path: Path, database: str | None
) -> None:
    """An admin who resets a leaked password shuts the one who used it out at once (the session
    was bound to the name only and went on with the new password set)."""

    async def main() -> None:
        async with dashboard(tmp_path, database) as (board, store):
            thief, again, same = (Browser(board.url.rstrip("/")) for _ in range(3))
            try:
                await thief.login("cas", CASHIER_PW)
                await same.login("ada", ADMIN_PW)
                add_operator(store, "cas", "cashier", "a brand new password")
                async with thief.http.get(thief.base + "/", allow_redirects=False) as r:
                    assert (r.status, r.headers.get("Location")) == (303, "/login")
                # removed and added again under the same name and password, between two
                # requests: a new hash, a new person as far as the session can tell
                await again.login("cas", "a brand new password")
                remove_operator(store, "cas")
                add_operator(store, "cas", "admin", "a brand new password")
                async with again.http.get(again.base + "/", allow_redirects=False) as r:
                    assert (r.status, r.headers.get("Location")) == (303, "/login")
                # a role given again with the same password keeps the session
                add_operator(store, "ada", "admin", ADMIN_PW)
                status, page = await same.get("/operators")
                assert status == 200 and "ada (admin)" in page
            finally:
                for browser in (thief, again, same):
                    await browser.close()

    run(main())


def test_a_terminal_name_is_one_printable_line(tmp_path: Path) -> None:
    """An escape in NAME reached the operator's terminal through `terminal list` and the
    report, and broke the terminal.toml comment it is written into (unexpected TOMLDecodeError,
    exit 70)."""
    for name in ("till\x1b[2J", "two\nlines", "x" * 81):
        odd = subprocess.run(
            [*PITILL, "host", "terminal", "add", name, "--id", "TILL0001",
             "--data-dir", str(tmp_path), "--out", str(tmp_path / "t")],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert odd.returncode == 2 and odd.stderr.count("\n") == 1, odd.stderr
        assert "terminal name" in odd.stderr and "printable characters, one line" in odd.stderr
    assert not (tmp_path / "t").exists()


def test_serve_refuses_plain_iso_8583_on_a_network_address(tmp_path: Path) -> None:
    """Plain ISO 8583 names no sender: on 0.0.0.0 without --tls anyone on the network topped up
    a card by 9999.99 with one 0200 (processing code 21) and got 00."""
    for listen in ("0.0.0.0:0", "[::]:0"):
        served = subprocess.Popen(
            [*PITILL, "host", "serve", "--data-dir", str(tmp_path), "--listen", listen],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            first = served.stdout.readline() if served.stdout else ""  # "listening" or EOF
            assert "listening" not in first, f"{listen}: served plain ISO 8583 on the network"
            _, stderr = served.communicate(timeout=60)
        finally:
            served.kill()
            served.wait(timeout=10)
        assert served.returncode == 2, stderr
        assert stderr.count("\n") == 1 and "add --tls" in stderr, stderr


def test_a_reversed_top_up_is_no_spending_a_refund_can_give_back(
    tmp_path: Path, database: str | None
) -> None:
    """A top-up whose answer was lost is reversed (money off the card again, a "reversal" with a
    negative amount); the refund cap counted it as spending there, so a card that never bought
    anything at that terminal was refunded money it never paid."""

    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card(PAN), 1000)
            topup = request("0200", 1, 5000, **{"3": "210000"})
            answers = await host.send(
                topup,
                reversal_of(topup, 2),  # the top-up taken back: 10.00 again, nothing spent
                request("0200", 3, 5000, **{"3": "200000"}),  # a refund of nothing bought
                request("0200", 4, 1000),  # a real sale, then its refund: still allowed
                request("0200", 5, 1000, **{"3": "200000"}),
                request("0200", 6, 1, **{"3": "200000"}),  # and not a cent more
            )
            assert [a["39"] for a in answers] == ["00", "00", "13", "00", "00", "13"]
            assert balance_of(host.store) == 1000

    run(main())


def test_a_period_ending_on_the_last_day_python_knows_is_refused_not_a_crash(
    tmp_path: Path, database: str | None
) -> None:
    """--to 9999-12-31: the range's end (the next day) overflowed; the dashboard answered 500
    and `pitill host report` 'unexpected OverflowError', exit 70."""

    async def main() -> None:
        async with dashboard(tmp_path, database) as (board, _):
            cashier = Browser(board.url.rstrip("/"))
            try:
                await cashier.login("cas", CASHIER_PW)
                status, page = await cashier.get("/settlement?from=2026-01-01&to=9999-12-31")
                assert status == 200 and "give a date before 9999-12-31" in page
                status, page = await cashier.get("/settlement.csv?to=9999-12-31")
                assert status == 400 and "give a date before 9999-12-31" in page
            finally:
                await cashier.close()

    run(main())
    for when in (["--to", "9999-12-31"], ["--day", "9999-12-31"]):
        report = subprocess.run(
            [*PITILL, "host", "report", *when, "--data-dir", str(tmp_path), *db_args(database)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert report.returncode == 2 and "give a date before" in report.stderr, report.stderr


def test_an_end_of_day_reads_its_own_stans_not_every_message_ever(
    tmp_path: Path, database: str | None
) -> None:
    """day_totals fetched every message the terminal ever sent and kept the batch's in Python:
    0.6 s of the store's one worker per 0500 after 300,000 of them (every terminal's sale waited;
    an enrolled terminal could send 0500s in a loop). It reads the batch's STANs, a wrapped
    range too."""
    store = HostStore.open(tmp_path, database)
    try:
        with store.transaction():
            for stan in (*range(1000, 3000), 999_998, 999_999, 1, 2):
                store.execute(
                    "INSERT INTO messages (terminal_id, class, stan, local_datetime, mti, "
                    "transmission, amount_minor, response_code, auth_code, balance_minor, "
                    "movement_id, at, reason) VALUES ('PITILL01', 'advice', ?, '1130000000', "
                    "'0220', '1130000000', 100, '00', '', NULL, NULL, '', '')",
                    (stan,),
                )
        fetched = []
        execute = store.execute

        def counting(sql: str, params: tuple[Any, ...] = ()) -> Any:
            rows = execute(sql, params).fetchall()
            fetched.append(len(rows))
            return _Rows(rows)

        store.execute = counting  # type: ignore[method-assign]
        # approved, no money moved: counted as inquiries (field 80), the 4 of the wrapped range
        assert day_totals(store, "PITILL01", Batch(1, 999_998, 2)) == Reconciliation(inquiries=4)
        assert sum(fetched) <= 4, fetched
    finally:
        store.close()


class _Rows:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def fetchall(self) -> list[Any]:
        return self.rows

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

"""The host's dashboard over real HTTP on loopback (aiohttp's client against a Dashboard on an
ephemeral port), on SQLite and a real PostgreSQL: logins and lockout, roles, CSRF, sessions, the
loopback Host rule, the pages' figures, and no card number beyond first 6 and last 4 anywhere."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from host_messages import OTHER, PAN, request
from pitill.host.cards import parse_card
from pitill.host.dashboard import IP_MAX_FAILURES, SESSION_IDLE_S, Dashboard
from pitill.host.operators import (
    LOCKOUT_S,
    MAX_FAILURES,
    REFUSED,
    add_operator,
    login,
    password_matches,
)
from pitill.host.store import HostStore
from pitill.web.bind import BindAddress
from pitill_cli import PITILL

from .conftest import db_args
from .test_host import Host, run

ADMIN_PW = "admin password 1"
CASHIER_PW = "cashier password 1"
FULL_PAN = re.compile(r"\d{12,19}")
MORE_THAN_6_AND_4 = re.compile(r"\d{7,}\*|\*\d{5,}")  # a masked card showing too much


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Browser:
    """One operator's cookie jar against the dashboard; the CSRF token read from each page."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), auto_decompress=True
        )
        self.csrf = ""

    async def get(self, path: str, **kw: Any) -> tuple[int, str]:
        async with self.http.get(self.base + path, **kw) as response:
            text = await response.text()
            if found := re.search(r"name='csrf' value='([^']+)'", text):
                self.csrf = found.group(1)
            return response.status, text

    async def post(
        self, path: str, data: dict[str, str], *, csrf: str | None = None, **kw: Any
    ) -> tuple[int, str]:
        form = {"csrf": self.csrf if csrf is None else csrf, **data}
        async with self.http.post(self.base + path, data=form, **kw) as response:
            text = await response.text()
            if found := re.search(r"name='csrf' value='([^']+)'", text):
                self.csrf = found.group(1)
            return response.status, text

    async def login(self, name: str, password: str) -> tuple[int, str]:
        await self.get("/login")
        return await self.post("/login", {"name": name, "password": password})

    async def close(self) -> None:
        await self.http.close()


@asynccontextmanager
async def dashboard(
    data_dir: Path,
    database: str | None,
    clock: Callable[[], datetime] | None = None,
    monotonic: Callable[[], float] | None = None,
) -> AsyncIterator[tuple[Dashboard, HostStore]]:
    store = HostStore.open(data_dir, database)
    add_operator(store, "ada", "admin", ADMIN_PW)
    add_operator(store, "cas", "cashier", CASHIER_PW)
    store.add_account(parse_card(PAN), 1000, "Ada Lovelace")
    store.add_account(parse_card(OTHER), 500, "Bob")
    board = Dashboard(
        BindAddress("127.0.0.1", 0),
        lambda: HostStore.open(data_dir, database),
        **({"clock": clock} if clock else {}),
        **({"monotonic": monotonic} if monotonic else {}),
    )
    await board.start()
    try:
        yield board, store
    finally:
        await board.close()
        store.close()


# Cards the dashboard fixture does not add (it adds PAN and OTHER), for a test that reads it.
CARD, BLOCKED = "6011111111111117", "378282246310005"


async def today_page(data_dir: Path, database: str | None) -> str:
    """The today page as a cashier sees it (the fixture adds PAN's and OTHER's accounts)."""
    async with dashboard(data_dir, database) as (board, _):
        browser = Browser(board.url.rstrip("/"))
        try:
            await browser.login("cas", CASHIER_PW)
            return (await browser.get("/"))[1]
        finally:
            await browser.close()


def account_id(store: HostStore, pan: str = PAN) -> int:
    return store.require(parse_card(pan)).id


def test_pages_need_a_login_and_a_session_is_a_strict_httponly_cookie(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with dashboard(tmp_path, database) as (board, _):
            browser = Browser(board.url.rstrip("/"))
            try:
                for path in ("/", "/terminals", "/accounts", "/settlement", "/outages"):
                    async with browser.http.get(browser.base + path, allow_redirects=False) as r:
                        assert (r.status, r.headers["Location"]) == (303, "/login"), path
                        assert "form-action 'self'" in r.headers["Content-Security-Policy"]
                await browser.get("/login")
                async with browser.http.post(
                    browser.base + "/login",
                    data={"csrf": browser.csrf, "name": "cas", "password": CASHIER_PW},
                    allow_redirects=False,
                ) as r:
                    assert r.status == 303
                    cookie = r.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
                status, page = await browser.get("/")
                assert status == 200 and "cas (cashier)" in page
                assert "href='/operators'" not in page  # a cashier's menu has no admin page
                status, page = await browser.post("/logout", {})
                assert status == 200 and "Log in" in page
                async with browser.http.get(browser.base + "/", allow_redirects=False) as r:
                    assert r.status == 303  # the session ended with the logout
            finally:
                await browser.close()

    run(main())


def test_a_forged_post_is_refused_and_changes_nothing(tmp_path: Path, database: str | None) -> None:
    async def main() -> None:
        async with dashboard(tmp_path, database) as (board, store):
            browser = Browser(board.url.rstrip("/"))
            try:
                await browser.login("ada", ADMIN_PW)
                target = f"/accounts/{account_id(store)}"
                await browser.get(target)
                for csrf, headers in (
                    ("", {}),  # no token
                    ("forged-" + browser.csrf[:10], {}),  # a wrong token
                    (browser.csrf, {"Origin": "http://evil.example"}),  # another site's page
                ):
                    status, _ = await browser.post(
                        f"{target}/topup", {"amount": "5"}, csrf=csrf, headers=headers
                    )
                    assert status == 403
                    status, _ = await browser.post(
                        f"{target}/block", {}, csrf=csrf, headers=headers
                    )
                    assert status == 403
                account = store.require(parse_card(PAN))
                assert (account.balance_minor, account.status) == (1000, "active")
                # with the page's own token it goes through
                status, page = await browser.post(f"{target}/topup", {"amount": "5"})
                assert status == 200 and "topped up 5.00" in page
                assert store.require(parse_card(PAN)).balance_minor == 1500
                # the login form has a token of its own: a post from elsewhere is refused
                other = Browser(browser.base)
                try:
                    status, _ = await other.post(
                        "/login", {"name": "ada", "password": ADMIN_PW}, csrf="x"
                    )
                    assert status == 403
                finally:
                    await other.close()
            finally:
                await browser.close()

    run(main())


def test_roles_a_cashier_tops_up_but_may_not_block_pay_out_replace_or_manage(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with dashboard(tmp_path, database) as (board, store):
            cashier, admin = Browser(board.url.rstrip("/")), Browser(board.url.rstrip("/"))
            try:
                await cashier.login("cas", CASHIER_PW)
                target = f"/accounts/{account_id(store)}"
                status, page = await cashier.get(target)
                assert "Top up" in page and "Block card" not in page and "Pay out" not in page
                status, page = await cashier.post(f"{target}/topup", {"amount": "2.50"})
                assert status == 200 and "balance 12.50" in page
                for action, data in (
                    ("block", {}),
                    ("unblock", {}),
                    ("payout", {"amount": "1"}),
                    ("replace", {"card": "6280001234567895"}),
                ):
                    status, page = await cashier.post(f"{target}/{action}", data)
                    assert status == 403, action
                    assert "may not" in page
                status, _ = await cashier.get("/operators")
                assert status == 403
                status, _ = await cashier.post(
                    "/operators", {"name": "eve", "role": "admin", "password": "x" * 12}
                )
                assert status == 403
                account = store.require(parse_card(PAN))
                assert (account.balance_minor, account.status) == (1250, "active")

                await admin.login("ada", ADMIN_PW)
                status, page = await admin.post(f"{target}/block", {})
                assert status == 200 and "is blocked" in page
                assert store.require(parse_card(PAN)).status == "blocked"
                # the terminals' hotlist lists the card (the same entry the command line makes)
                listed = store.execute("SELECT entry, listed FROM hotlist_changes").fetchall()
                assert [(e, int(n)) for e, n in listed] == [
                    (store.hotlist_entry(parse_card(PAN)), 1)
                ]
                _, page = await admin.get("/accounts")
                blocked = page.split("aria-label='blocked cards'")[1]
                assert "411111******1111" in blocked and "555555******4444" not in blocked
                status, page = await admin.post(f"{target}/payout", {"amount": "99"})
                assert "refused: card 411111******1111: the balance 12.50 is less" in page
                status, page = await admin.post(f"{target}/unblock", {})
                assert store.require(parse_card(PAN)).status == "active"
                status, page = await admin.post(f"{target}/replace", {"card": "6280001234567895"})
                assert status == 200 and "balance moved to 628000******7895" in page
                moved = store.require(parse_card("6280001234567895"))
                assert moved.balance_minor == 1250
                assert store.require(parse_card(PAN)).status == "replaced"
                status, page = await admin.post(
                    "/operators", {"name": "eve", "role": "cashier", "password": "eve password"}
                )
                assert "operator eve (cashier) saved" in page
                (who,) = store.execute(
                    "SELECT operator FROM operator_actions WHERE action = 'topup'"
                ).fetchone()
                assert who == "cas"
            finally:
                await cashier.close()
                await admin.close()

    run(main())


def test_wrong_passwords_lock_the_name_and_too_many_lock_the_address(
    tmp_path: Path, database: str | None
) -> None:
    clock = Clock()

    async def main() -> None:
        async with dashboard(tmp_path, database, clock) as (board, _):
            browser = Browser(board.url.rstrip("/"))
            try:
                for _ in range(MAX_FAILURES):
                    status, page = await browser.login("cas", "not the password")
                    assert status == 401 and "wrong name or password" in page
                status, page = await browser.login("cas", CASHIER_PW)  # the right one, too late
                assert status == 401 and REFUSED in page
                assert "locked until" not in page  # a locked name would tell a guesser it exists
                status, page = await browser.login("nobody", "whatever it is")
                assert status == 401 and REFUSED in page  # the same answer: no name is revealed
                clock.now += timedelta(seconds=LOCKOUT_S + 1)
                status, page = await browser.login("cas", CASHIER_PW)
                assert status == 200 and "cas (cashier)" in page
                # one address trying many names is stopped whatever the names
                for n in range(IP_MAX_FAILURES - MAX_FAILURES - 2):  # 7 failed so far
                    status, _ = await browser.login(f"guess{n}", "not the password")
                    assert status == 401
                status, page = await browser.login("ada", ADMIN_PW)
                assert status == 429 and "too many failed logins" in page
            finally:
                await browser.close()

    run(main())


def test_the_loopback_host_rule(tmp_path: Path, database: str | None) -> None:
    async def main() -> None:
        async with dashboard(tmp_path, database) as (board, _), aiohttp.ClientSession() as http:
            rebound = {"Host": f"rebind.example:{board.port}"}
            async with http.get(board.url + "login", headers=rebound) as r:
                assert r.status == 403

    run(main())


def test_no_page_shows_a_card_number_beyond_first_6_and_last_4(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            # a terminal's day: sales online and offline, a debt, a loss
            host.store.add_account(parse_card("6280001234567895"), 100)
            await host.send(
                request("0200", 1, 300, terminal_id="TERMA001"),
                request("0220", 2, 900, terminal_id="TERMA001"),
                request("0220", 3, 5, pan="6280001234567895", terminal_id="TERMA001"),
            )
        async with dashboard(tmp_path, database) as (board, _):
            admin = Browser(board.url.rstrip("/"))
            try:
                await admin.login("ada", ADMIN_PW)
                seen: dict[str, str] = {}
                queue = ["/"]
                # every page the menu and the pages link to, and a search by each full number
                while queue and len(seen) < 100:
                    path = queue.pop()
                    if path in seen:
                        continue
                    status, page = await admin.get(path)
                    assert status == 200, path
                    seen[path] = page
                    queue += [
                        link for link in re.findall(r"href='(/[^']*)'", page) if link not in seen
                    ]
                for number in (PAN, OTHER, "6280001234567895", PAN[-4:], "Ada"):
                    status, page = await admin.post("/accounts", {"q": number})
                    assert status == 200 and "found" in page
                    seen[f"search {number}"] = page
                    queue += re.findall(r"href='(/accounts/\d+)'", page)
                for path in set(queue) - set(seen):
                    seen[path] = (await admin.get(path))[1]
                assert {"/", "/terminals", "/outages", "/operators"} <= set(seen)
                assert sum(path.startswith("/accounts/") for path in seen) >= 3
                assert "411111******1111" in seen[f"search {PAN}"]
                assert "TERMA001" in seen["/terminals"] and "TERMA001" in seen["/outages"]
                for path, page in seen.items():
                    assert FULL_PAN.search(page) is None, (path, FULL_PAN.search(page))
                    assert MORE_THAN_6_AND_4.search(page) is None, path
                    for number in (PAN, OTHER, "6280001234567895"):
                        assert number not in page, path
            finally:
                await admin.close()

    run(main())


def test_the_today_page_and_settlement_show_the_store_figures(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with Host(tmp_path, database) as host:
            host.store.add_account(parse_card("6280001234567895"), 2000)
            await host.send(
                request("0200", 1, 300, pan="6280001234567895", terminal_id="TERMA001"),
                request("0220", 2, 200, pan="6280001234567895", terminal_id="TERMA001"),
                request("0220", 3, 2000, pan="6280001234567895", terminal_id="TERMA001"),
            )
        async with dashboard(tmp_path, database) as (board, _):
            browser = Browser(board.url.rstrip("/"))
            try:
                await browser.login("cas", CASHIER_PW)
                _, page = await browser.get("/")
                assert "<dd id='net-sales'>25.00</dd>" in page
                assert "<dt>Debts owed</dt><dd>5.00 (1 accounts)</dd>" in page
                _, page = await browser.get("/accounts")
                owing = page.split("aria-label='accounts owing'")[1].split("</table>")[0]
                assert "628000******7895" in owing and "<td>-5.00</td><td>5.00</td>" in owing
                _, page = await browser.get("/settlement?from=2099-01-01&to=2099-01-02")
                assert "<td>Net sales</td><td>0.00</td>" in page
                _, page = await browser.get("/settlement?from=bad")
                assert "give a date as YYYY-MM-DD" in page
                async with browser.http.get(browser.base + "/settlement.csv") as r:
                    assert r.headers["Content-Type"].startswith("text/csv")
                    rows = list(csv.DictReader(io.StringIO(await r.text())))
                assert [row["terminal"] for row in rows] == ["TERMA001", "host", "program"]
                assert rows[-1]["net_sales_minor"] == "2500"
            finally:
                await browser.close()

    run(main())


def test_passwords_are_salted_scrypt_and_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = HostStore.open(tmp_path)
    try:
        add_operator(store, "one", "cashier", "the same password")
        add_operator(store, "two", "cashier", "the same password")
        hashes = [h for (h,) in store.execute("SELECT password_hash FROM operators")]
        assert all(h.startswith("scrypt$32768$8$1$") for h in hashes)
        assert hashes[0] != hashes[1]  # salted
        assert all("the same password" not in h for h in hashes)
        assert password_matches("the same password", hashes[0])
        assert not password_matches("the same passwore", hashes[0])
        with caplog.at_level(logging.DEBUG):
            login(store, "one", "the same password", datetime.now(UTC))

            async def attempt() -> None:
                async with dashboard(tmp_path / "b", None) as (board, _):
                    browser = Browser(board.url.rstrip("/"))
                    try:
                        await browser.login("ada", "a wrong secret here")
                        await browser.login("ada", ADMIN_PW)
                    finally:
                        await browser.close()

            asyncio.run(attempt())
        logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
        assert "login_refused" in logged
        for secret in ("the same password", "a wrong secret here", ADMIN_PW):
            assert secret not in logged
    finally:
        store.close()


def test_the_operator_command(tmp_path: Path, database: str | None) -> None:
    store = ["--data-dir", str(tmp_path), *db_args(database)]

    def host(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PITILL, "host", *args, *store],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    added = host("operator", "add", "ada", "--role", "admin", stdin="a long password\n")
    assert added.returncode == 0 and "operator ada (admin) saved" in added.stdout, added.stderr
    short = host("operator", "add", "bob", "--role", "cashier", stdin="short\n")
    assert short.returncode == 2 and "give 10 to" in short.stderr
    bad = host("operator", "add", "bo b", "--role", "cashier", stdin="a long password\n")
    assert bad.returncode == 2 and "letters, digits" in bad.stderr
    listed = host("operator", "list")
    assert listed.stdout.split() == ["ada", "admin"]
    assert "a long password" not in added.stdout + added.stderr + listed.stdout
    removed = host("operator", "remove", "ada")
    assert removed.returncode == 0 and host("operator", "list").stdout == ""


def test_an_operator_removed_or_given_another_role_is_so_at_once(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with dashboard(tmp_path, database) as (board, store):
            admin, other = Browser(board.url.rstrip("/")), Browser(board.url.rstrip("/"))
            try:
                add_operator(store, "bea", "admin", "bea password 1")
                await other.login("bea", "bea password 1")
                assert (await other.get("/operators"))[0] == 200
                add_operator(store, "bea", "cashier", "bea password 1")  # the command line
                assert (await other.get("/operators"))[0] == 403
                await admin.login("ada", ADMIN_PW)
                await admin.get("/operators")
                _, page = await admin.post("/operators/bea/remove", {})
                assert "operator bea removed" in page
                async with other.http.get(other.base + "/", allow_redirects=False) as r:
                    assert (r.status, r.headers["Location"]) == (303, "/login")
                _, page = await admin.post("/operators/ada/remove", {})
                assert "you cannot remove yourself" in page
            finally:
                await admin.close()
                await other.close()

    run(main())


def test_logins_sent_at_once_cannot_pass_the_address_limit(
    tmp_path: Path, database: str | None
) -> None:
    async def main() -> None:
        async with dashboard(tmp_path, database) as (board, _):
            browsers = [Browser(board.url.rstrip("/")) for _ in range(IP_MAX_FAILURES + 5)]
            try:
                for browser in browsers:
                    await browser.get("/login")
                answers = await asyncio.gather(
                    *(b.post("/login", {"name": f"n{i}", "password": "wrong password"})
                      for i, b in enumerate(browsers))
                )  # fmt: skip
                statuses = sorted(status for status, _ in answers)
                assert statuses == [401] * IP_MAX_FAILURES + [429] * 5
            finally:
                for browser in browsers:
                    await browser.close()

    run(main())


def test_an_idle_session_ends(tmp_path: Path, database: str | None) -> None:
    ticks = [1000.0]

    async def main() -> None:
        async with dashboard(tmp_path, database, monotonic=lambda: ticks[0]) as (board, _):
            browser = Browser(board.url.rstrip("/"))
            try:
                await browser.login("cas", CASHIER_PW)
                ticks[0] += SESSION_IDLE_S - 1
                assert "cas (cashier)" in (await browser.get("/"))[1]  # a request renews it
                ticks[0] += SESSION_IDLE_S + 1
                async with browser.http.get(browser.base + "/", allow_redirects=False) as r:
                    assert (r.status, r.headers["Location"]) == (303, "/login")
                assert board.sessions == {}
            finally:
                await browser.close()

    run(main())

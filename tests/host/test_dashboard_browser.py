"""The host's dashboard in a real browser: Debian's Chromium driven by Playwright, against a real
`pitill host serve --web` process (SQLite on disk) that a terminal has talked to over TCP.

A cashier logs in, sees the terminal, searches an account, tops it up, is refused an admin
action, and logs out; an admin blocks the card. No request leaves the page's own address. A
screenshot of the Today page is saved (PITILL_WRITE_DOCS=1 also writes it to
docs/screens/host-dashboard.png for the README).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from host_messages import PAN, request
from pitill.upstream.framing import frame, read_frame
from pitill.upstream.messages import Message, decode, encode
from pitill_cli import PITILL

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 15_000
CASHIER_PW = "cashier password 1"
ADMIN_PW = "admin password 1"

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError("Chromium is missing: .ci/run installs Debian's chromium package")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


def host_cli(data_dir: Path, *args: str, stdin: str = "") -> None:
    done = subprocess.run(
        [*PITILL, "host", *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def send(port: int, *messages: Message) -> list[str]:
    """A terminal's connection: each message, each answer's response code."""

    async def main() -> list[str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        codes = []
        try:
            for message in messages:
                writer.write(frame(encode(message)))
                await writer.drain()
                data = await read_frame(reader)
                assert data is not None
                codes.append(decode(data)["39"])
        finally:
            writer.close()
            await writer.wait_closed()
        return codes

    return asyncio.run(main())


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """`pitill host serve --web` on ephemeral loopback ports; (dashboard url, terminal port)."""
    data = tmp_path / "host"
    host_cli(data, "account", "add", PAN, "--balance", "20.00", "--holder", "Ada Lovelace")
    host_cli(data, "operator", "add", "cas", "--role", "cashier", stdin=CASHIER_PW + "\n")
    host_cli(data, "operator", "add", "ada", "--role", "admin", stdin=ADMIN_PW + "\n")
    serve = ["serve", "--data-dir", str(data), "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0"]
    process = subprocess.Popen(
        [*PITILL, "host", *serve],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        listening, web = process.stdout.readline(), process.stdout.readline()
        assert "listening on" in listening and "dashboard at" in web, (listening, web)
        yield web.split("dashboard at ", 1)[1].strip(), int(listening.rsplit(":", 1)[1])
    finally:
        process.send_signal(signal.SIGTERM)
        code, logged = process.wait(timeout=30), process.stderr.read()
        assert code == 0, logged
        assert "event=login operator=cas" in logged  # logged, without the password
        assert CASHIER_PW not in logged and ADMIN_PW not in logged


def test_operators_at_work_in_the_dashboard(host: tuple[str, int], tmp_path: Path) -> None:
    url, port = host
    # a terminal's morning: a sale online, then three offline during an outage (one overdraws)
    codes = send(
        port,
        request("0200", 1, 750, terminal_id="TILL0001"),
        request("0220", 2, 600, terminal_id="TILL0001"),
        request("0220", 3, 500, terminal_id="TILL0001"),
        request("0220", 4, 400, terminal_id="TILL0001"),
    )
    assert codes == ["00", "00", "00", "00"]
    origin = url.rstrip("/")
    requests: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        try:
            expect = playwright_api.expect
            page = browser.new_page(viewport={"width": 1200, "height": 820})
            page.on("request", lambda r: requests.append(r.url))

            def log_in(name: str, password: str) -> None:
                page.goto(url)
                expect(page).to_have_url(origin + "/login")
                page.get_by_label("Name").fill(name)
                page.get_by_label("Password").fill(password)
                page.get_by_role("button", name="Log in").click()
                expect(page.locator("#operator")).to_contain_text(name, timeout=WAIT_MS)

            # the cashier: the terminal, an account found, a top-up
            log_in("cas", CASHIER_PW)
            expect(page.locator("#net-sales")).to_have_text("22.50")
            page.get_by_role("link", name="Terminals").click()
            terminals = page.get_by_role("table", name="terminals")
            expect(terminals).to_contain_text("TILL0001")
            expect(terminals).to_contain_text("000004")  # its last STAN
            page.get_by_role("link", name="Outages").click()
            expect(page.get_by_role("table", name="outages")).to_contain_text("15.00")
            page.get_by_role("link", name="Accounts").click()
            page.get_by_label("Card number, last 4 digits, uid:HEX or holder").fill("1111")
            page.get_by_role("button", name="Search").click()
            page.get_by_role("link", name="411111******1111").click()
            expect(page.locator("#balance")).to_have_text("-2.50")
            expect(page.locator("#debt")).to_have_text("2.50")
            expect(page.get_by_role("button", name="Block card")).to_have_count(0)
            page.get_by_label("Amount").fill("10")
            page.get_by_role("button", name="Top up").click()
            expect(page.get_by_role("status")).to_contain_text("paid off a debt of 2.50")
            expect(page.locator("#balance")).to_have_text("7.50")
            account_url = page.url
            # an admin action, even with the page's own CSRF token, is refused to a cashier
            token = page.locator("input[name=csrf]").first.get_attribute("value")
            refused = page.request.post(
                account_url + "/block", form={"csrf": token or ""}, max_redirects=0
            )
            assert refused.status == 403 and "may not block" in refused.text()
            page.goto(origin + "/operators")
            expect(page.locator("body")).to_contain_text("may not operators")
            page.goto(account_url)
            expect(page.locator("#status")).to_have_text("active")
            page.get_by_role("button", name="Log out").click()
            expect(page).to_have_url(origin + "/login")
            page.goto(account_url)
            expect(page).to_have_url(origin + "/login")  # the session is gone

            # the admin blocks the card
            log_in("ada", ADMIN_PW)
            page.get_by_role("link", name="Accounts").click()
            page.get_by_label("Card number, last 4 digits, uid:HEX or holder").fill("Ada")
            page.get_by_role("button", name="Search").click()
            page.get_by_role("link", name="411111******1111").click()
            page.get_by_role("button", name="Block card").click()
            expect(page.locator("#status")).to_have_text("blocked")
            expect(page.get_by_role("button", name="Unblock card")).to_be_visible()
            page.get_by_role("link", name="Today").click()
            expect(page.locator("#net-sales")).to_have_text("22.50")
            shot = tmp_path / "host-dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("PITILL_WRITE_DOCS") == "1":
                shutil.copy(shot, ROOT / "docs" / "screens" / "host-dashboard.png")
        finally:
            browser.close()
    assert requests and all(r.startswith(origin + "/") for r in requests), requests
    # the card is refused at the terminal now
    assert send(port, request("0200", 5, 100, terminal_id="TILL0001")) == ["62"]

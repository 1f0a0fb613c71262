"""The workshop page in a real browser: Debian's Chromium driven by Playwright, against a real
`pitill sim --no-tui --web` process (its sandbox host on loopback, its journal on disk).

A cashier's story through the page's own buttons: a sale online, the host going down, a sale
approved offline, the heal and the backlog forwarded. Checked on the way: the status text, the
chart's current node, the canvas showing the renderer's pixels (the gallery PNG's), that no
request leaves the page's own address, and the --events file. A screenshot mid-outage is saved
(PITILL_WRITE_DOCS=1 also writes it to docs/screens/web-mirror.png for the README).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from pitill.gallery import core_gallery
from pitill_cli import PITILL

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
GALLERY_SCALE = 3  # docs/screens are the renderer's pixels scaled 3x (tools/record-demo)
WAIT_MS = 15_000

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError("Chromium is missing: .ci/run installs Debian's chromium package")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A headless simulator serving its page on an ephemeral loopback port; (url, events)."""
    events = tmp_path / "events.jsonl"
    process = subprocess.Popen(
        [
            *PITILL,
            "sim",
            "--no-tui",
            "--web",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "d"),
            "--events",
            str(events),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    url = ""
    deadline = time.monotonic() + 30
    while not url and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        if match := re.search(r"live at (http://\S+)", line):
            url = match.group(1)
    try:
        assert url, "the simulator never said where its page is"
        yield url, events
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, process.stderr.read()


def canvas_pixels(page: object) -> Image.Image:
    data_url = page.evaluate("document.getElementById('oled').toDataURL('image/png')")  # type: ignore[attr-defined]
    raw = base64.b64decode(data_url.split(",", 1)[1])
    return Image.open(io.BytesIO(raw)).convert("L")


def gallery_pixels(name: str) -> Image.Image:
    with Image.open(ROOT / "docs" / "screens" / f"{name}.png") as scaled:
        width, height = scaled.size
        return scaled.convert("L").resize(
            (width // GALLERY_SCALE, height // GALLERY_SCALE), Image.Resampling.NEAREST
        )


def test_a_sale_an_outage_and_a_heal_from_the_page(sim: tuple[str, Path], tmp_path: Path) -> None:
    url, events = sim
    origin = url.split("/", 3)[:3]
    requests: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(url)
            expect = playwright_api.expect
            status = page.get_by_role("status")
            expect(page.locator("#link")).to_have_text("ONLINE", timeout=WAIT_MS)

            def press(*names: str) -> None:
                for name in names:
                    page.get_by_role("button", name=name, exact=True).click()

            # the amount screen: the canvas holds the gallery's pixels for the same screen
            press("1", "2", "5", "0")
            amount = core_gallery()["amount"]
            expect(status).to_have_text(amount.text(), timeout=WAIT_MS)
            page.wait_for_timeout(200)  # the canvas is drawn in the same frame as the text
            difference = ImageChops.difference(canvas_pixels(page), gallery_pixels("amount"))
            assert difference.getbbox() is None, "the canvas is not the renderer's pixels"

            press("OK")
            page.get_by_role("button", name="Swipe approved card").click()
            expect(status).to_contain_text("APPROVED", timeout=WAIT_MS)
            current = page.locator(".chart .state.current")
            expect(current).to_have_id("state-APPROVED")
            expect(current).to_have_attribute("aria-current", "true")
            expect(page.locator("#led-green")).to_have_attribute("aria-label", "green LED on")
            press("OK")
            expect(current).to_have_id("state-IDLE", timeout=WAIT_MS)

            page.get_by_role("button", name="Host down").click()
            expect(page.locator("#link")).to_have_text("OFFLINE", timeout=WAIT_MS)
            expect(page.locator("#led-red")).to_have_attribute("aria-label", "red LED on")
            press("1", "8", "0", "0", "OK")
            page.get_by_role("button", name="Swipe approved card").click()
            expect(status).to_contain_text("OFFLINE", timeout=WAIT_MS)
            expect(current).to_have_id("state-OFFLINE_APPROVED", timeout=WAIT_MS)
            expect(page.locator("#backlog")).to_have_text("1", timeout=WAIT_MS)
            page.screenshot(path=str(tmp_path / "web-mirror.png"))
            if os.environ.get("PITILL_WRITE_DOCS") == "1":
                shutil.copy(tmp_path / "web-mirror.png", ROOT / "docs" / "screens")
            log_text = page.get_by_role("log").inner_text()
            assert "journal" in log_text and "PENDING" in log_text
            assert re.search(r"\d{16}", log_text) is None, "a full card number in the events log"
            press("OK")

            page.get_by_role("button", name="Heal host").click()
            expect(page.locator("#link")).to_have_text("ONLINE", timeout=WAIT_MS)
            expect(page.locator("#backlog")).to_have_text("0", timeout=WAIT_MS)
        finally:
            browser.close()

    foreign = [r for r in requests if r.split("/", 3)[:3] != origin]
    assert foreign == [], f"the page asked for something elsewhere: {foreign}"
    kinds = {json.loads(line)["event"] for line in events.read_text().splitlines()}
    assert {"screen", "journal", "link", "state"} <= kinds  # --events works with --no-tui --web
